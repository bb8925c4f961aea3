//! Routing (§5): who may send what to whom, and how frames are rewritten.

use super::*;

#[test]
fn route_streamer_to_player_keeps_message_as_sent() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.subscriber(s);
    for text in [
        r#"{"type":"offer","playerId":"Player0","sdp":"v=0","x":1,"nested":{"a":[1,2]}}"#,
        r#"{"type":"answer","sdp":"v=0","playerId":"Player0"}"#,
        r#"{"type":"iceCandidate","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0},"playerId":"Player0","z":true}"#,
    ] {
        assert_eq!(h.send_text(s, text), vec![Out::Send(p, text.to_string())]);
    }
}

#[test]
fn route_player_to_streamer_sets_player_id() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.subscriber(s);
    let cases = [
        (r#"{"type":"offer","sdp":"v=0"}"#, r#"{"type":"offer","sdp":"v=0","playerId":"Player0"}"#),
        (
            r#"{"type":"answer","sdp":"v=0","minBitrateBps":1}"#,
            r#"{"type":"answer","sdp":"v=0","minBitrateBps":1,"playerId":"Player0"}"#,
        ),
        (
            r#"{"type":"iceCandidate","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}"#,
            r#"{"type":"iceCandidate","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0},"playerId":"Player0"}"#,
        ),
        (r#"{"type":"dataChannelRequest"}"#, r#"{"type":"dataChannelRequest","playerId":"Player0"}"#),
        (r#"{"type":"peerDataChannelsReady"}"#, r#"{"type":"peerDataChannelsReady","playerId":"Player0"}"#),
        (
            r#"{"type":"layerPreference","spatialLayer":1,"temporalLayer":2}"#,
            r#"{"type":"layerPreference","spatialLayer":1,"temporalLayer":2,"playerId":"Player0"}"#,
        ),
        // A playerId the player made up is overwritten in place.
        (
            r#"{"type":"answer","playerId":"Player7","sdp":"v=0"}"#,
            r#"{"type":"answer","playerId":"Player0","sdp":"v=0"}"#,
        ),
        (
            r#"{"type":"dataChannelRequest","playerId":"Bogus","x":1}"#,
            r#"{"type":"dataChannelRequest","playerId":"Player0","x":1}"#,
        ),
    ];
    for (sent, forwarded) in cases {
        assert_eq!(h.send_text(p, sent), vec![Out::Send(s, forwarded.to_string())], "for {sent}");
    }
}

#[test]
fn route_forward_keeps_unknown_fields_in_order() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.subscriber(s);
    let got = h.send_text(
        p,
        r#"{"type":"answer","x":1,"sdp":"s","nested":{"a":[1,2]},"playerId":"Bogus","z":null,"w":"end"}"#,
    );
    assert_eq!(
        got,
        vec![Out::Send(
            s,
            r#"{"type":"answer","x":1,"sdp":"s","nested":{"a":[1,2]},"playerId":"Player0","z":null,"w":"end"}"#.into()
        )]
    );
    let text =
        r#"{"zz":0,"type":"offer","sdp":"s","x":1,"nested":{"b":{"c":[1,{"d":2}]},"a":[1,2]},"playerId":"Player0"}"#;
    assert_eq!(h.send_text(s, text), vec![Out::Send(p, text.into())]);
}

#[test]
fn route_sfu_to_player_removes_player_id() {
    let mut h = Harness::new();
    let sfu = h.sfu("SFU");
    let p = h.subscriber(sfu);
    let got = h.send_text(sfu, r#"{"type":"offer","playerId":"Player1","sdp":"v=0","sfu":true,"x":[1]}"#);
    assert_eq!(got, vec![Out::Send(p, r#"{"type":"offer","sdp":"v=0","sfu":true,"x":[1]}"#.into())]);
    let got =
        h.send_text(sfu, r#"{"type":"peerDataChannels","playerId":"Player1","sendStreamId":3,"recvStreamId":4,"x":1}"#);
    assert_eq!(
        got,
        vec![Out::Send(p, r#"{"type":"peerDataChannels","sendStreamId":3,"recvStreamId":4,"x":1}"#.into())]
    );
}

#[test]
fn route_sfu_answer_keeps_own_player_id_else_sfu_player_id() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let sfu = h.sfu("SFU");
    h.subscribed(sfu, s);
    let sfu_pid = h.player_id(sfu);
    let text = r#"{"type":"answer","playerId":"Player42","sdp":"v=0","x":1}"#;
    assert_eq!(h.send_text(sfu, text), vec![Out::Send(s, text.into())]);
    let got = h.send_text(sfu, r#"{"type":"answer","sdp":"v=0","x":1}"#);
    assert_eq!(got, vec![Out::Send(s, format!(r#"{{"type":"answer","sdp":"v=0","x":1,"playerId":"{sfu_pid}"}}"#))]);
}

#[test]
fn route_sfu_streamer_data_channels_adds_sfu_id() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let sfu = h.sfu("SFU");
    h.subscribed(sfu, s);
    let sfu_pid = h.player_id(sfu);
    let got = h.send_text(
        sfu,
        r#"{"type":"streamerDataChannels","playerId":"Player9","sendStreamId":1,"recvStreamId":2,"x":1}"#,
    );
    assert_eq!(
        got,
        vec![Out::Send(
            s,
            format!(
                r#"{{"type":"streamerDataChannels","playerId":"Player9","sendStreamId":1,"recvStreamId":2,"x":1,"sfuId":"{sfu_pid}"}}"#
            )
        )]
    );
}

#[test]
fn route_streamer_layer_preference_to_every_subscribed_sfu() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let sfu1 = h.sfu("SFU");
    let p = h.player();
    let sfu2 = h.sfu("SFU2");
    let _other_sfu = h.sfu("SFU3");
    h.subscribed(sfu1, s);
    h.subscribed(p, s);
    h.subscribed(sfu2, s);
    let text = r#"{"type":"layerPreference","spatialLayer":0,"temporalLayer":1,"playerId":"Player5","x":1}"#;
    assert_eq!(h.send_text(s, text), vec![Out::Send(sfu1, text.into()), Out::Send(sfu2, text.into())]);
}

#[test]
fn route_streamer_to_another_streamers_player_is_dropped() {
    let mut h = Harness::new();
    let a = h.streamer("A");
    let b = h.streamer("B");
    let p = h.player();
    let unsubscribed = h.player();
    h.subscribed(p, a);
    let before = h.dropped_for("not_subscriber");
    assert_eq!(h.send(b, json!({"type": "offer", "sdp": "x", "playerId": h.player_id(p)})), vec![]);
    assert_eq!(h.send(b, json!({"type": "iceCandidate", "candidate": {"candidate": "c", "sdpMid": "0", "sdpMLineIndex": 0}, "playerId": h.player_id(p)})), vec![]);
    assert_eq!(h.send(a, json!({"type": "answer", "sdp": "x", "playerId": h.player_id(unsubscribed)})), vec![]);
    assert_eq!(h.dropped_for("not_subscriber"), before + 3);
    // SFUs are held to the same rule.
    let sfu = h.sfu("SFU");
    assert_eq!(h.send(sfu, json!({"type": "offer", "sdp": "x", "playerId": h.player_id(p)})), vec![]);
    assert_eq!(
        h.send(
            sfu,
            json!({"type": "peerDataChannels", "playerId": h.player_id(p), "sendStreamId": 1, "recvStreamId": 2})
        ),
        vec![]
    );
    assert_eq!(h.dropped_for("not_subscriber"), before + 5);
}

#[test]
fn route_unknown_or_missing_player_id_is_dropped() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    h.subscriber(s);
    assert_eq!(h.send(s, json!({"type": "offer", "sdp": "x", "playerId": "Player99"})), vec![]);
    assert_eq!(h.dropped_for("no_such_player"), 1);
    assert_eq!(h.send(s, json!({"type": "offer", "sdp": "x"})), vec![]);
    assert_eq!(h.send(s, json!({"type": "answer", "sdp": "x"})), vec![]);
    assert_eq!(h.send(s, json!({"type": "iceCandidate", "candidate": {"candidate": "c"}})), vec![]);
    assert_eq!(h.dropped_for("missing_player_id"), 3);
    let sfu = h.sfu("SFU");
    assert_eq!(h.send(sfu, json!({"type": "offer", "sdp": "x"})), vec![]);
    assert_eq!(h.dropped_for("missing_player_id"), 4);
    // A player that is not subscribed has nowhere to send to.
    let q = h.player();
    assert_eq!(h.send(q, json!({"type": "answer", "sdp": "x"})), vec![]);
    assert_eq!(h.send(q, json!({"type": "dataChannelRequest"})), vec![]);
    assert_eq!(h.dropped_for("not_subscribed"), 2);
}

#[test]
fn route_multiple_streamers_offers_never_cross() {
    let mut h = Harness::new();
    let a = h.streamer("A");
    let b = h.streamer("B");
    let pa: Vec<ConnId> = (0..2).map(|_| h.player()).collect();
    let pb: Vec<ConnId> = (0..2).map(|_| h.player()).collect();
    for &p in &pa {
        h.subscribed(p, a);
    }
    for &p in &pb {
        h.subscribed(p, b);
    }
    for (streamer, mine, theirs) in [(a, &pa, &pb), (b, &pb, &pa)] {
        for &p in mine {
            let text = format!(r#"{{"type":"offer","sdp":"from {}","playerId":"{}"}}"#, streamer.0, h.player_id(p));
            assert_eq!(h.send_text(streamer, &text), vec![Out::Send(p, text.clone())]);
            let got = h.send_text(p, r#"{"type":"answer","sdp":"ok"}"#);
            assert_eq!(
                got,
                vec![Out::Send(streamer, format!(r#"{{"type":"answer","sdp":"ok","playerId":"{}"}}"#, h.player_id(p)))]
            );
        }
        for &p in theirs {
            let text = format!(r#"{{"type":"offer","sdp":"x","playerId":"{}"}}"#, h.player_id(p));
            assert_eq!(h.send_text(streamer, &text), vec![]);
        }
    }
}
