//! A player that stops reading is closed when its queue fills; nobody else waits.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use signalling::ServerConfig;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_that_never_reads_is_closed_and_others_keep_flowing() {
    let mut config = ServerConfig::ephemeral();
    config.send_queue_len = 32;
    config.rate_limit_per_sec = 0;
    let h = server(config).await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let mut stuck = dead_player(h.player_addr()).await;
    stuck.write_all(&masked_text_frame(br#"{"type":"subscribe","streamerId":"S"}"#)).await.unwrap();
    let stuck_id = s.expect_type("playerConnected").await["playerId"].as_str().unwrap().to_string();
    let (mut good, good_id) = Client::subscribed_player(&h, &mut s, &id).await;

    // Megabytes towards the stuck player, interleaved with small messages to
    // the good one, whose delivery must stay prompt.
    let big_sdp = "a".repeat(64 * 1024);
    let mut worst = Duration::ZERO;
    let mut disconnected = false;
    for i in 0..200 {
        s.send(json!({"type": "offer", "sdp": big_sdp, "playerId": stuck_id})).await;
        let sent = Instant::now();
        s.send(json!({"type": "offer", "sdp": format!("small-{i}"), "playerId": good_id})).await;
        assert_eq!(good.recv().await["sdp"], format!("small-{i}"));
        worst = worst.max(sent.elapsed());
        if h.snapshot().players.iter().all(|p| p.player_id != stuck_id) {
            disconnected = true;
            break;
        }
    }
    assert!(disconnected, "the stuck player was never closed");
    assert_eq!(s.recv().await, json!({"type": "playerDisconnected", "playerId": stuck_id}));
    // Generous bound for a noisy 2-core machine; the point is "not blocked".
    assert!(worst < Duration::from_millis(500), "good player waited {worst:?}");
    h.shutdown().await;
}
