//! 200 players subscribing to one streamer at the same time.

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_players_each_get_their_own_offer() {
    const N: usize = 200;
    let h = default_server().await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let player_addr = h.player_addr();

    let players: Vec<_> = (0..N)
        .map(|i| {
            let id = id.clone();
            tokio::spawn(async move {
                let mut p = Client::connect(player_addr, &format!("p{i}")).await;
                // `config` is always first.
                assert_eq!(p.recv().await["type"], "config");
                assert_eq!(p.recv().await["type"], "playerCount");
                p.send(json!({"type": "subscribe", "streamerId": id})).await;
                // The streamer answers each playerConnected with an offer whose
                // sdp names the player: it must reach exactly this player.
                let offer = p.expect_type("offer").await;
                // Echo an answer back so the streamer can check the playerId rule.
                p.send(json!({"type": "answer", "sdp": offer["sdp"]})).await;
                (p, offer["sdp"].as_str().unwrap().to_string())
            })
        })
        .collect();

    let mut connected = HashSet::new();
    let mut answered = HashSet::new();
    while answered.len() < N {
        let m = s.recv().await;
        let pid = m["playerId"].as_str().expect("playerId").to_string();
        match m["type"].as_str() {
            Some("playerConnected") => {
                assert!(connected.insert(pid.clone()), "duplicate playerConnected for {pid}");
                s.send(json!({"type": "offer", "sdp": format!("sdp-for-{pid}"), "playerId": pid})).await;
            }
            Some("answer") => {
                assert_eq!(m["sdp"], format!("sdp-for-{pid}"), "answer came back from the wrong player");
                assert!(answered.insert(pid));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(connected.len(), N);
    let mut sdps = HashSet::new();
    let mut alive = Vec::new();
    for p in players {
        let (p, sdp) = p.await.expect("player task");
        assert!(sdps.insert(sdp));
        alive.push(p);
    }
    assert_eq!(h.snapshot().streamers[0].subscribers.len(), N);
    h.shutdown().await;
}
