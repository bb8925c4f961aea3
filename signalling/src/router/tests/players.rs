//! Players (§4): listing, subscribing, unsubscribing, legacy offers.

use super::*;

#[test]
fn list_streamers_in_connect_order_sfu_only_when_streaming() {
    let mut h = Harness::new();
    let s1 = h.connect(Role::Streamer);
    let sfu = h.connect(Role::Sfu);
    let s2 = h.connect(Role::Streamer);
    let s3 = h.connect(Role::Streamer);
    let p = h.player();
    h.send(s3, json!({"type": "endpointId", "id": "C"}));
    h.send(s1, json!({"type": "endpointId", "id": "A"}));
    h.send(sfu, json!({"type": "endpointId", "id": "SFU"}));
    assert_eq!(h.list(p), json!(["A", "C"]));
    h.send(sfu, json!({"type": "startStreaming"}));
    assert_eq!(h.list(p), json!(["A", "SFU", "C"]));
    h.send(s2, json!({"type": "endpointId", "id": "B"}));
    assert_eq!(h.list(p), json!(["A", "SFU", "B", "C"]));
    h.send(sfu, json!({"type": "stopStreaming"}));
    assert_eq!(h.list(p), json!(["A", "B", "C"]));
}

#[test]
fn list_streamers_sfu_asking_gets_every_registered_id() {
    let mut h = Harness::new();
    h.streamer("A");
    let sfu = h.identified(Role::Sfu, "SFU");
    h.identified(Role::Sfu, "SFU2");
    let p = h.player();
    assert_eq!(h.list(p), json!(["A"]));
    assert_eq!(h.list(sfu), json!(["A", "SFU", "SFU2"]));
}

#[test]
fn subscribe_unknown_streamer_fails_with_exact_text() {
    let mut h = Harness::new();
    h.streamer("A");
    let p = h.player();
    let got = h.send(p, json!({"type": "subscribe", "streamerId": "Nope"}));
    assert_eq!(got, vec![to(p, json!({"type": "subscribeFailed", "message": "Streamer Nope does not exist."}))]);
}

#[test]
fn subscribe_success_streamer_gets_exact_player_connected_and_player_nothing() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.player();
    let got = h.send(p, json!({"type": "subscribe", "streamerId": "A"}));
    assert_eq!(
        got,
        vec![Out::Send(s, r#"{"type":"playerConnected","playerId":"Player0","dataChannel":true,"sfu":false}"#.into())]
    );
    assert_eq!(h.router.registry().get(p).unwrap().subscribed_to, Some(s));
}

#[test]
fn subscribe_again_old_streamer_gets_player_disconnected_first() {
    let mut h = Harness::new();
    let a = h.streamer("A");
    let b = h.streamer("B");
    let p = h.player();
    let pid = h.player_id(p);
    h.subscribed(p, a);
    // Same streamer again.
    let got = h.send(p, json!({"type": "subscribe", "streamerId": "A"}));
    assert_eq!(
        got,
        vec![
            to(a, json!({"type": "playerDisconnected", "playerId": pid})),
            to(a, json!({"type": "playerConnected", "playerId": pid, "dataChannel": true, "sfu": false})),
        ]
    );
    // Another streamer.
    let got = h.send(p, json!({"type": "subscribe", "streamerId": "B"}));
    assert_eq!(
        got,
        vec![
            to(a, json!({"type": "playerDisconnected", "playerId": pid})),
            to(b, json!({"type": "playerConnected", "playerId": pid, "dataChannel": true, "sfu": false})),
        ]
    );
    assert!(h.router.registry().get(a).unwrap().subscribers.is_empty());
    // Unknown id: the existing subscription stays.
    let got = h.send(p, json!({"type": "subscribe", "streamerId": "Z"}));
    assert_eq!(got, vec![to(p, json!({"type": "subscribeFailed", "message": "Streamer Z does not exist."}))]);
    assert_eq!(h.router.registry().get(p).unwrap().subscribed_to, Some(b));
}

#[test]
fn subscribe_full_streamer_fails_with_exact_text() {
    let mut h = Harness::max_players(1);
    let a = h.streamer("A");
    let b = h.streamer("B");
    let p1 = h.player();
    let p2 = h.player();
    h.subscribed(p1, a);
    let got = h.send(p2, json!({"type": "subscribe", "streamerId": "A"}));
    assert_eq!(
        got,
        vec![to(p2, json!({"type": "subscribeFailed", "message": "Streamer A is full. Max players = 1."}))]
    );
    // Already subscribed elsewhere: the old streamer is told first, then the refusal.
    h.subscribed(p2, b);
    let pid2 = h.player_id(p2);
    let got = h.send(p2, json!({"type": "subscribe", "streamerId": "A"}));
    assert_eq!(
        got,
        vec![
            to(b, json!({"type": "playerDisconnected", "playerId": pid2})),
            to(p2, json!({"type": "subscribeFailed", "message": "Streamer A is full. Max players = 1."})),
        ]
    );
    // The one subscriber re-subscribing to its own full streamer works.
    let pid1 = h.player_id(p1);
    let got = h.send(p1, json!({"type": "subscribe", "streamerId": "A"}));
    assert_eq!(
        got,
        vec![
            to(a, json!({"type": "playerDisconnected", "playerId": pid1})),
            to(a, json!({"type": "playerConnected", "playerId": pid1, "dataChannel": true, "sfu": false})),
        ]
    );
    // SFUs count as subscribers too.
    let sfu = h.identified(Role::Sfu, "SFU");
    let got = h.send(sfu, json!({"type": "subscribe", "streamerId": "A"}));
    assert_eq!(
        got,
        vec![to(sfu, json!({"type": "subscribeFailed", "message": "Streamer A is full. Max players = 1."}))]
    );
}

#[test]
fn unsubscribe_tells_streamer_and_keeps_socket_open() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.player();
    let pid = h.player_id(p);
    h.subscribed(p, s);
    assert_eq!(
        h.send(p, json!({"type": "unsubscribe"})),
        vec![to(s, json!({"type": "playerDisconnected", "playerId": pid}))]
    );
    assert!(h.is_connected(p));
    assert_eq!(h.router.registry().get(p).unwrap().subscribed_to, None);
    // Not subscribed: nothing.
    assert_eq!(h.send(p, json!({"type": "unsubscribe"})), vec![]);
    // And it may subscribe again.
    h.subscribed(p, s);
}

#[test]
fn player_ids_unique_for_the_life_of_the_process() {
    let mut h = Harness::new();
    let mut seen = std::collections::HashSet::new();
    let mut live = Vec::new();
    for round in 0..5 {
        for role in [Role::Player, Role::Sfu, Role::Player] {
            let c = h.connect(role);
            assert!(seen.insert(h.player_id(c)), "player id reused");
            live.push(c);
        }
        if round % 2 == 0 {
            let c = live.remove(0);
            h.disconnect(c);
        }
    }
    assert!(seen.contains("Player0") && seen.contains("Player1"));
}

#[test]
fn legacy_offer_auto_subscribes_to_first_streaming_streamer() {
    let mut h = Harness::new();
    let _unidentified = h.connect(Role::Streamer);
    let _not_streaming_sfu = h.identified(Role::Sfu, "SFU");
    let a = h.streamer("A");
    let _b = h.streamer("B");
    let p = h.player();
    let got = h.send_text(p, r#"{"type":"offer","sdp":"v=0\r\n","x":1}"#);
    assert_eq!(
        got,
        vec![
            to(a, json!({"type": "playerConnected", "playerId": "Player1", "dataChannel": true, "sfu": false})),
            Out::Send(a, r#"{"type":"offer","sdp":"v=0\r\n","x":1,"playerId":"Player1"}"#.into()),
        ]
    );
    assert_eq!(h.router.registry().get(p).unwrap().subscribed_to, Some(a));
    // Once subscribed, a further offer is plain routing.
    let got = h.send_text(p, r#"{"type":"offer","sdp":"again"}"#);
    assert_eq!(got, vec![Out::Send(a, r#"{"type":"offer","sdp":"again","playerId":"Player1"}"#.into())]);
}

#[test]
fn legacy_offer_without_streamer_closes_the_player() {
    let mut h = Harness::new();
    let other = h.player();
    let _unidentified = h.connect(Role::Streamer);
    let p = h.player();
    let got = h.send(p, json!({"type": "offer", "sdp": "v=0"}));
    assert_eq!(got.len(), 1);
    assert!(matches!(&got[0], Out::Close(c, _, _) if *c == p), "{got:?}");
    assert!(!h.is_connected(p));
    assert!(h.is_connected(other));
    assert_eq!(h.disconnect(p), vec![]);
}

#[test]
fn legacy_offer_to_full_streamer_closes_only_that_player_fix() {
    let mut h = Harness::max_players(1);
    let s = h.streamer("A");
    let p1 = h.subscriber(s);
    let p2 = h.player();
    let got = h.send(p2, json!({"type": "offer", "sdp": "v=0"}));
    assert!(!got.is_empty());
    for out in &got {
        let c = match out {
            Out::Send(c, _) | Out::Close(c, _, _) => *c,
            Out::ToNode(node, _) => panic!("one node addressed node {node}"),
        };
        assert_eq!(c, p2, "only the legacy player is affected: {got:?}");
    }
    assert!(matches!(got.last(), Some(Out::Close(c, _, _)) if *c == p2));
    assert!(!h.is_connected(p2));
    assert!(h.is_connected(p1) && h.is_connected(s));
    assert_eq!(h.router.registry().get(p1).unwrap().subscribed_to, Some(s));
}
