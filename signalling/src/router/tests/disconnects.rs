//! Disconnects (§6): `disconnectPlayer` and sockets that close.

use super::*;

#[test]
fn disconnect_player_closes_1011_with_reason_then_tells_streamer() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.player();
    let q = h.player();
    h.subscribed(p, s);
    h.subscribed(q, s);
    let pid = h.player_id(p);
    let got = h.send(s, json!({"type": "disconnectPlayer", "playerId": pid, "reason": "kicked"}));
    assert_eq!(
        got,
        vec![closed(p, close::SERVER_ERROR, "kicked"), to(s, json!({"type": "playerDisconnected", "playerId": pid}))]
    );
    assert_eq!(close::SERVER_ERROR, 1011);
    assert!(!h.is_connected(p));
    assert_eq!(h.disconnect(p), vec![]);
    // Without a reason: still 1011, some reason.
    let qid = h.player_id(q);
    let got = h.send(s, json!({"type": "disconnectPlayer", "playerId": qid}));
    assert_eq!(
        got,
        vec![
            closed(q, 1011, Close::DisconnectedByStreamer(None).reason()),
            to(s, json!({"type": "playerDisconnected", "playerId": qid}))
        ]
    );
    assert_eq!(h.router.registry().len(), 1);
}

#[test]
fn disconnect_player_for_someone_elses_player_is_dropped() {
    let mut h = Harness::new();
    let a = h.streamer("A");
    let b = h.streamer("B");
    let p = h.subscriber(a);
    let pid = h.player_id(p);
    assert_eq!(h.send(b, json!({"type": "disconnectPlayer", "playerId": pid})), vec![]);
    assert_eq!(h.send(b, json!({"type": "disconnectPlayer", "playerId": "Player77"})), vec![]);
    assert!(h.is_connected(p));
    assert_eq!(h.router.registry().get(p).unwrap().subscribed_to, Some(a));
    assert_eq!(h.dropped_for("not_subscriber"), 1);
    assert_eq!(h.dropped_for("no_such_player"), 1);
}

#[test]
fn disconnect_player_socket_close_tells_streamer() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.subscriber(s);
    let pid = h.player_id(p);
    assert_eq!(h.disconnect(p), vec![to(s, json!({"type": "playerDisconnected", "playerId": pid}))]);
    assert!(h.router.registry().get(s).unwrap().subscribers.is_empty());
    assert_eq!(h.router.registry().len(), 1);
    // Twice is a no-op; an unsubscribed player's close tells nobody.
    assert_eq!(h.disconnect(p), vec![]);
    let q = h.player();
    assert_eq!(h.disconnect(q), vec![]);
}

#[test]
fn disconnect_streamer_tells_players_then_closes_them_1000() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let other = h.streamer("B");
    let p1 = h.player();
    let p2 = h.player();
    let idle = h.player();
    let elsewhere = h.player();
    h.subscribed(p1, s);
    h.subscribed(p2, s);
    h.subscribed(elsewhere, other);
    let got = h.disconnect(s);
    assert_eq!(
        got,
        vec![
            to(p1, json!({"type": "streamerDisconnected"})),
            closed(p1, close::NORMAL, Close::StreamerDisconnected.reason()),
            to(p2, json!({"type": "streamerDisconnected"})),
            closed(p2, close::NORMAL, Close::StreamerDisconnected.reason()),
        ]
    );
    assert!(!h.is_connected(p1) && !h.is_connected(p2) && !h.is_connected(s));
    assert!(h.is_connected(idle) && h.is_connected(elsewhere));
    assert_eq!(h.router.registry().len(), 3);
    // The id is free again and unlisted meanwhile.
    assert_eq!(h.list(idle), json!(["B"]));
    h.streamer("A");
    for c in [other, idle, elsewhere] {
        h.disconnect(c);
    }
    assert_eq!(h.router.registry().len(), 1);
}

#[test]
fn disconnect_streamer_sfu_subscribers_stay_unlisted_and_their_players_close() {
    let mut h = Harness::new();
    let (s, sfu, p1) = h.through_sfu();
    let p2 = h.subscriber(sfu);
    let direct = h.subscriber(s);
    let (pid1, pid2) = (h.player_id(p1), h.player_id(p2));
    let got = h.disconnect(s);
    assert_eq!(
        got,
        vec![
            to(sfu, json!({"type": "streamerDisconnected"})),
            to(p1, json!({"type": "streamerDisconnected"})),
            to(sfu, json!({"type": "playerDisconnected", "playerId": pid1})),
            closed(p1, 1000, Close::StreamerDisconnected.reason()),
            to(p2, json!({"type": "streamerDisconnected"})),
            to(sfu, json!({"type": "playerDisconnected", "playerId": pid2})),
            closed(p2, 1000, Close::StreamerDisconnected.reason()),
            to(direct, json!({"type": "streamerDisconnected"})),
            closed(direct, 1000, Close::StreamerDisconnected.reason()),
        ]
    );
    assert!(h.is_connected(sfu));
    let e = h.router.registry().get(sfu).unwrap();
    assert!(!e.sfu_streaming && e.subscribed_to.is_none() && e.subscribers.is_empty());
    assert_eq!(h.router.registry().len(), 1);
    let q = h.player();
    assert_eq!(h.list(q), json!([]));
    h.disconnect(q);
    assert_eq!(h.disconnect(sfu), vec![]);
    assert_eq!(h.router.registry().len(), 0);
    assert!(h.router.registry().is_empty());
}

#[test]
fn disconnect_sfu_tells_its_streamer_and_closes_its_players() {
    let mut h = Harness::new();
    let (s, sfu, p) = h.through_sfu();
    let sfu_pid = h.player_id(sfu);
    let got = h.disconnect(sfu);
    assert_eq!(
        got,
        vec![
            to(s, json!({"type": "playerDisconnected", "playerId": sfu_pid})),
            to(p, json!({"type": "streamerDisconnected"})),
            closed(p, 1000, Close::StreamerDisconnected.reason()),
        ]
    );
    assert_eq!(h.router.registry().len(), 1);
}
