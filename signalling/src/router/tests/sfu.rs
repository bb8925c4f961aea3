//! The SFU (§7): a streamer to players and a player to its streamer.

use super::*;

#[test]
fn sfu_full_flow_with_data_channels() {
    let mut h = Harness::new();
    let s = h.streamer("DefaultStreamer");
    let (sfu, greeting) = h.connect_greeted(Role::Sfu);
    assert_eq!(greeting, vec![to(sfu, config_of(json!({}))), to(sfu, json!({"type": "identify"}))]);
    assert_eq!(
        h.send(sfu, json!({"type": "endpointId", "id": "SFU"})),
        vec![to(sfu, json!({"type": "endpointIdConfirm", "committedId": "SFU"}))]
    );
    assert_eq!(h.list(sfu), json!(["DefaultStreamer", "SFU"]));
    let sfu_pid = h.player_id(sfu);
    assert_eq!(
        h.send(sfu, json!({"type": "subscribe", "streamerId": "DefaultStreamer"})),
        vec![to(s, json!({"type": "playerConnected", "playerId": sfu_pid, "dataChannel": true, "sfu": true}))]
    );
    // Streamer ↔ SFU negotiation.
    let offer = format!(r#"{{"type":"offer","sdp":"v=0","playerId":"{sfu_pid}","sfu":true}}"#);
    assert_eq!(h.send_text(s, &offer), vec![Out::Send(sfu, offer.clone())]);
    let p = h.player();
    assert_eq!(h.list(p), json!(["DefaultStreamer"]));
    assert_eq!(h.send(sfu, json!({"type": "startStreaming"})), vec![]);
    assert_eq!(h.list(p), json!(["DefaultStreamer", "SFU"]));
    h.subscribed(p, sfu);
    let pid = h.player_id(p);
    // Data channels through the SFU.
    assert_eq!(
        h.send_text(p, r#"{"type":"dataChannelRequest"}"#),
        vec![Out::Send(sfu, format!(r#"{{"type":"dataChannelRequest","playerId":"{pid}"}}"#))]
    );
    assert_eq!(
        h.send_text(
            sfu,
            &format!(r#"{{"type":"peerDataChannels","playerId":"{pid}","sendStreamId":1,"recvStreamId":2}}"#)
        ),
        vec![Out::Send(p, r#"{"type":"peerDataChannels","sendStreamId":1,"recvStreamId":2}"#.into())]
    );
    assert_eq!(
        h.send_text(p, r#"{"type":"peerDataChannelsReady"}"#),
        vec![Out::Send(sfu, format!(r#"{{"type":"peerDataChannelsReady","playerId":"{pid}"}}"#))]
    );
    assert_eq!(
        h.send_text(
            sfu,
            &format!(r#"{{"type":"streamerDataChannels","playerId":"{pid}","sendStreamId":2,"recvStreamId":1}}"#)
        ),
        vec![Out::Send(
            s,
            format!(
                r#"{{"type":"streamerDataChannels","playerId":"{pid}","sendStreamId":2,"recvStreamId":1,"sfuId":"{sfu_pid}"}}"#
            )
        )]
    );
    // layerPreference from the player reaches the SFU with the player's id.
    assert_eq!(
        h.send_text(p, r#"{"type":"layerPreference","spatialLayer":2,"temporalLayer":0}"#),
        vec![Out::Send(
            sfu,
            format!(r#"{{"type":"layerPreference","spatialLayer":2,"temporalLayer":0,"playerId":"{pid}"}}"#)
        )]
    );
}

#[test]
fn sfu_stop_streaming_unlists_and_closes_its_players() {
    let mut h = Harness::new();
    let (s, sfu, p1) = h.through_sfu();
    let p2 = h.subscriber(sfu);
    let (pid1, pid2) = (h.player_id(p1), h.player_id(p2));
    let got = h.send(sfu, json!({"type": "stopStreaming"}));
    assert_eq!(
        got,
        vec![
            to(p1, json!({"type": "streamerDisconnected"})),
            to(sfu, json!({"type": "playerDisconnected", "playerId": pid1})),
            closed(p1, 1000, Close::SfuStopped.reason()),
            to(p2, json!({"type": "streamerDisconnected"})),
            to(sfu, json!({"type": "playerDisconnected", "playerId": pid2})),
            closed(p2, 1000, Close::SfuStopped.reason()),
        ]
    );
    assert!(!h.is_connected(p1) && !h.is_connected(p2));
    // The SFU stays subscribed to its streamer and connected, but unlisted.
    assert_eq!(h.router.registry().get(sfu).unwrap().subscribed_to, Some(s));
    let q = h.player();
    assert_eq!(h.list(q), json!(["A"]));
    let got = h.send(q, json!({"type": "subscribe", "streamerId": "SFU"}));
    assert_eq!(got, vec![to(q, json!({"type": "subscribeFailed", "message": "Streamer SFU does not exist."}))]);
    // Streaming again lists it again.
    h.send(sfu, json!({"type": "startStreaming"}));
    assert_eq!(h.list(q), json!(["A", "SFU"]));
}

#[test]
fn sfu_disconnect_player_and_unsubscribe() {
    let mut h = Harness::new();
    let (s, sfu, p) = h.through_sfu();
    let pid = h.player_id(p);
    // The SFU, as a streamer, disconnects its own player.
    let got = h.send(sfu, json!({"type": "disconnectPlayer", "playerId": pid, "reason": "bye"}));
    assert_eq!(got, vec![closed(p, 1011, "bye"), to(sfu, json!({"type": "playerDisconnected", "playerId": pid}))]);
    // The SFU, as a player, unsubscribes: its streamer is told with the SFU's player id.
    let sfu_pid = h.player_id(sfu);
    assert_eq!(
        h.send(sfu, json!({"type": "unsubscribe"})),
        vec![to(s, json!({"type": "playerDisconnected", "playerId": sfu_pid}))]
    );
    assert!(h.is_connected(sfu));
}

#[test]
fn sfu_disconnected_by_its_streamer_closes_its_players() {
    let mut h = Harness::new();
    let (s, sfu, p) = h.through_sfu();
    let sfu_pid = h.player_id(sfu);
    let got = h.send(s, json!({"type": "disconnectPlayer", "playerId": sfu_pid}));
    assert_eq!(
        got,
        vec![
            closed(sfu, 1011, Close::DisconnectedByStreamer(None).reason()),
            to(s, json!({"type": "playerDisconnected", "playerId": sfu_pid})),
            to(p, json!({"type": "streamerDisconnected"})),
            closed(p, 1000, Close::StreamerDisconnected.reason()),
        ]
    );
    assert_eq!(h.router.registry().len(), 1);
}

#[test]
fn sfu_ice_candidate_goes_to_its_player_or_upstream() {
    // Extension: Epic's SFU never trickles, but a candidate is routed sensibly.
    let mut h = Harness::new();
    let (s, sfu, p) = h.through_sfu();
    let pid = h.player_id(p);
    let sfu_pid = h.player_id(sfu);
    let got =
        h.send_text(sfu, &format!(r#"{{"type":"iceCandidate","playerId":"{pid}","candidate":{{"candidate":"c"}}}}"#));
    assert_eq!(got, vec![Out::Send(p, r#"{"type":"iceCandidate","candidate":{"candidate":"c"}}"#.into())]);
    let got = h.send_text(sfu, r#"{"type":"iceCandidate","candidate":{"candidate":"c"}}"#);
    assert_eq!(
        got,
        vec![Out::Send(
            s,
            format!(r#"{{"type":"iceCandidate","candidate":{{"candidate":"c"}},"playerId":"{sfu_pid}"}}"#)
        )]
    );
}

#[test]
fn sfu_cycle_stop_streaming_sends_nothing_after_a_close() {
    // Three SFUs subscribed in a ring plus a player on the first: ending the
    // subscriptions must not address a connection it already closed.
    let mut h = Harness::new();
    let a = h.sfu("SFUA");
    let b = h.sfu("SFUB");
    let p = h.player();
    let d = h.sfu("SFUD");
    h.subscribed(b, a);
    h.subscribed(p, a);
    h.subscribed(d, b);
    h.subscribed(a, d);
    let got = h.send(a, json!({"type": "stopStreaming"}));
    assert_no_traffic_after_close(&got);
    assert!(!h.is_connected(p));
    let closes = got.iter().filter(|o| matches!(o, Out::Close(..))).count();
    assert_eq!(closes, 1, "{got:?}");
    for c in [a, b, d] {
        h.disconnect(c);
    }
    assert!(h.router.registry().is_empty());
}

fn assert_no_traffic_after_close(got: &[Out]) {
    let mut closed_conns = std::collections::HashSet::new();
    for out in got {
        match out {
            Out::Send(c, text) => assert!(!closed_conns.contains(c), "send to closed {c:?}: {text} in {got:?}"),
            Out::Close(c, ..) => assert!(closed_conns.insert(*c), "closed twice {c:?} in {got:?}"),
            Out::ToNode(node, _) => panic!("one node addressed node {node}"),
        }
    }
}
