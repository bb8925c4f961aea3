//! Bad input (§9): dropped, counted, and the connection stays.

use super::*;

/// One peer of each role: streamer `A`, a player subscribed to it and the
/// streaming SFU `SFU` (not subscribed).
fn one_of_each() -> (Harness, ConnId, ConnId, ConnId) {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.player();
    let sfu = h.sfu("SFU");
    h.subscribed(p, s);
    (h, s, p, sfu)
}

#[test]
fn bad_input_is_dropped_counted_and_the_connection_stays() {
    let (mut h, s, p, sfu) = one_of_each();
    let garbage = [
        "not json",
        "{\"type\":",
        "",
        "null",
        "42",
        "\"offer\"",
        "[1,2]",
        "true",
        "{}",
        r#"{"sdp":"x"}"#,
        r#"{"type":7}"#,
        r#"{"type":null}"#,
        r#"{"type":"noSuchType"}"#,
        r#"{"type":"OFFER","sdp":"x"}"#,
    ];
    for c in [s, p, sfu] {
        for text in garbage {
            let before = h.dropped();
            assert_eq!(h.send_text(c, text), vec![], "for {text:?}");
            assert_eq!(h.dropped(), before + 1, "not counted: {text:?}");
            assert!(h.is_connected(c));
        }
    }
    assert!(h.dropped_for("not_json") >= 3);
    assert!(h.dropped_for("unknown_type") >= 3);
    // Other peers are unaffected.
    assert_eq!(h.router.registry().get(p).unwrap().subscribed_to, Some(s));
}

#[test]
fn bad_input_type_not_allowed_for_this_peer_is_dropped() {
    let (mut h, s, p, sfu) = one_of_each();
    let pid = h.player_id(p);
    let cases: Vec<(ConnId, Value)> = vec![
        (p, json!({"type": "disconnectPlayer", "playerId": pid})),
        (p, json!({"type": "endpointId", "id": "X"})),
        (p, json!({"type": "startStreaming"})),
        (p, json!({"type": "streamerDataChannels", "playerId": pid, "sendStreamId": 1, "recvStreamId": 2})),
        (p, json!({"type": "peerDataChannels", "playerId": pid, "sendStreamId": 1, "recvStreamId": 2})),
        (p, json!({"type": "config", "peerConnectionOptions": {}})),
        (p, json!({"type": "playerConnected", "playerId": pid, "dataChannel": true, "sfu": false})),
        (s, json!({"type": "subscribe", "streamerId": "A"})),
        (s, json!({"type": "listStreamers"})),
        (s, json!({"type": "unsubscribe"})),
        (s, json!({"type": "startStreaming"})),
        (s, json!({"type": "dataChannelRequest"})),
        (s, json!({"type": "streamerList", "ids": []})),
        (sfu, json!({"type": "identify"})),
        (sfu, json!({"type": "endpointIdConfirm", "committedId": "x"})),
        (sfu, json!({"type": "dataChannelRequest"})),
    ];
    for (c, message) in cases {
        let before = h.dropped_for("not_allowed");
        assert_eq!(h.send(c, message.clone()), vec![], "for {message}");
        assert_eq!(h.dropped_for("not_allowed"), before + 1, "not counted: {message}");
    }
    assert!(h.is_connected(p));
    assert_eq!(h.router.registry().get(p).unwrap().subscribed_to, Some(s));
    assert_eq!(h.list(p), json!(["A", "SFU"]));
}

#[test]
fn bad_input_subscribe_without_streamer_id_gets_subscribe_failed() {
    let mut h = Harness::new();
    let p = h.player();
    let sfu = h.identified(Role::Sfu, "SFU");
    for c in [p, sfu] {
        for text in [
            r#"{"type":"subscribe"}"#,
            r#"{"type":"subscribe","streamerId":5}"#,
            r#"{"type":"subscribe","streamerId":null}"#,
        ] {
            let before = h.dropped();
            let got = h.send_text(c, text);
            assert_eq!(got.len(), 1, "{got:?}");
            assert!(
                matches!(&got[0], Out::Send(to, t) if *to == c && t.starts_with(r#"{"type":"subscribeFailed","message":"#)),
                "{got:?}"
            );
            assert_eq!(h.dropped(), before + 1);
        }
    }
}

#[test]
fn bad_input_streamer_sending_subscribe_without_id_gets_no_reply() {
    // A streamer may not send subscribe at all: dropped, no answer.
    let mut h = Harness::new();
    let s = h.streamer("A");
    assert_eq!(h.send_text(s, r#"{"type":"subscribe"}"#), vec![]);
    assert_eq!(h.dropped(), 1);
}

#[test]
fn bad_input_known_type_missing_a_field_is_dropped() {
    let (mut h, s, p, sfu) = one_of_each();
    h.subscribed(sfu, s);
    let pid = h.player_id(p);
    let cases: Vec<(ConnId, Value)> = vec![
        (p, json!({"type": "offer"})),
        (p, json!({"type": "answer", "sdp": 5})),
        (p, json!({"type": "iceCandidate"})),
        (p, json!({"type": "layerPreference", "spatialLayer": 1})),
        (s, json!({"type": "offer", "playerId": pid})),
        (s, json!({"type": "disconnectPlayer"})),
        (s, json!({"type": "iceCandidate", "playerId": pid, "candidate": {"sdpMid": "0"}})),
        (sfu, json!({"type": "peerDataChannels", "playerId": pid, "sendStreamId": 1})),
        (sfu, json!({"type": "streamerDataChannels", "playerId": pid})),
    ];
    for (c, message) in cases {
        let before = h.dropped();
        assert_eq!(h.send(c, message.clone()), vec![], "for {message}");
        assert_eq!(h.dropped(), before + 1, "not counted: {message}");
    }
    assert!(h.is_connected(p) && h.is_connected(s) && h.is_connected(sfu));
    assert_eq!(h.router.registry().get(p).unwrap().subscribed_to, Some(s));
}

#[test]
fn bad_input_from_an_unknown_connection_is_ignored() {
    let mut h = Harness::new();
    let p = h.player();
    h.disconnect(p);
    assert_eq!(h.send(p, json!({"type": "listStreamers"})), vec![]);
    assert_eq!(h.disconnect(ConnId(12345)), vec![]);
}
