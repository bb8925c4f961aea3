//! The JSON signalling messages: exact wire shapes, parse errors, forwarding
//! fidelity, and no panics on any input.

use proptest::prelude::*;
use proto::message::KNOWN_TYPES;
use proto::{IceCandidate, Incoming, Message, ParseError};
use serde_json::{json, Value};

fn every_message() -> Vec<Message> {
    let cand = IceCandidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: Some("abcd".into()),
    };
    vec![
        Message::config(json!({"iceServers": []})),
        Message::Identify,
        Message::EndpointId { id: Some("S".into()), protocol_version: Some("1.3.0".into()) },
        Message::EndpointIdConfirm { committed_id: "S".into() },
        Message::StreamerIdChanged { new_id: "S1".into() },
        Message::ListStreamers,
        Message::StreamerList { ids: vec!["A".into(), "B".into()] },
        Message::Subscribe { streamer_id: "A".into() },
        Message::Unsubscribe,
        Message::SubscribeFailed { message: "Streamer X does not exist.".into() },
        Message::PlayerConnected { player_id: "Player0".into(), data_channel: true, sfu: false },
        Message::PlayerDisconnected { player_id: "Player0".into() },
        Message::Offer {
            sdp: "v=0".into(),
            player_id: Some("Player0".into()),
            sfu: Some(true),
            multiplex: Some(false),
            scalability_mode: Some("L1T3".into()),
        },
        Message::Answer { sdp: "v=0".into(), player_id: None, min_bitrate_bps: Some(1), max_bitrate_bps: Some(2) },
        Message::IceCandidate { candidate: cand, player_id: Some("Player0".into()) },
        Message::DisconnectPlayer { player_id: "Player0".into(), reason: Some("bye".into()) },
        Message::Ping { time: Some(1_732_000_000_000) },
        Message::Pong { time: 1_732_000_000_000 },
        Message::StreamerDisconnected,
        Message::LayerPreference { spatial_layer: 1, temporal_layer: 0, player_id: None },
        Message::DataChannelRequest { player_id: None },
        Message::PeerDataChannels { player_id: Some("Player0".into()), send_stream_id: 2, recv_stream_id: 3 },
        Message::PeerDataChannelsReady { player_id: None },
        Message::StreamerDataChannels {
            sfu_id: Some("Player1".into()),
            player_id: "Player0".into(),
            send_stream_id: 3,
            recv_stream_id: 2,
        },
        Message::StartStreaming,
        Message::StopStreaming,
        Message::PlayerCount { count: 3 },
        Message::Stats { data: json!("fps=30") },
    ]
}

#[test]
fn every_type_round_trips_and_is_known() {
    let all = every_message();
    assert_eq!(all.len(), KNOWN_TYPES.len(), "one example per type");
    for m in all {
        let text = m.to_json();
        let back = Incoming::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(back.message, m, "{text}");
        assert_eq!(back.get("type"), Some(Value::from(m.type_name())));
        assert!(KNOWN_TYPES.contains(&m.type_name()));
    }
}

#[test]
fn exact_wire_shapes_omit_absent_optionals() {
    assert_eq!(
        Message::PlayerConnected { player_id: "Player0".into(), data_channel: true, sfu: false }.to_json(),
        r#"{"type":"playerConnected","playerId":"Player0","dataChannel":true,"sfu":false}"#
    );
    assert_eq!(
        Message::Offer { sdp: "s".into(), player_id: None, sfu: None, multiplex: None, scalability_mode: None }
            .to_json(),
        r#"{"type":"offer","sdp":"s"}"#
    );
    assert_eq!(
        Message::StreamerIdChanged { new_id: "X".into() }.to_json(),
        r#"{"type":"streamerIdChanged","newID":"X"}"#
    );
    assert_eq!(Message::Pong { time: 0 }.to_json(), r#"{"type":"pong","time":0}"#);
    assert_eq!(
        Message::config(json!({})).to_json(),
        r#"{"type":"config","peerConnectionOptions":{},"protocolVersion":"1.3.0"}"#
    );
    assert!(!every_message().iter().any(|m| m.to_json().contains("null")), "never send null");
}

#[test]
fn browsers_null_sdp_mid_is_accepted() {
    let m =
        Incoming::parse(br#"{"type":"iceCandidate","candidate":{"candidate":"c","sdpMid":null,"sdpMLineIndex":null}}"#)
            .expect("parses");
    match m.message {
        Message::IceCandidate { candidate, .. } => assert_eq!(candidate.sdp_mid, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn parse_errors_say_what_is_wrong() {
    let cases: &[(&[u8], ParseError)] = &[
        (b"not json", ParseError::NotJson(String::new())),
        (b"null", ParseError::NotObject("null")),
        (b"12", ParseError::NotObject("a number")),
        (b"[1]", ParseError::NotObject("an array")),
        (b"\"s\"", ParseError::NotObject("a string")),
        (b"{}", ParseError::MissingType),
        (br#"{"type":1}"#, ParseError::TypeNotString),
        (br#"{"type":"nope"}"#, ParseError::UnknownType("nope".into())),
        (
            br#"{"type":"subscribe"}"#,
            ParseError::MissingField { type_name: "subscribe".into(), field: "streamerId".into() },
        ),
    ];
    for (input, expected) in cases {
        let err = Incoming::parse(input).expect_err("must fail");
        match (expected, &err) {
            (ParseError::NotJson(_), ParseError::NotJson(detail)) => assert!(!detail.is_empty()),
            _ => assert_eq!(&err, expected, "{}", String::from_utf8_lossy(input)),
        }
        assert!(!err.to_string().is_empty());
    }
    // Wrong field types.
    let err = Incoming::parse(br#"{"type":"ping","time":"soon"}"#).unwrap_err();
    assert!(matches!(&err, ParseError::InvalidField { type_name, .. } if type_name == "ping"), "{err:?}");
    let err = Incoming::parse(br#"{"type":"offer","sdp":5}"#).unwrap_err();
    assert!(matches!(err, ParseError::InvalidField { .. }));
}

#[test]
fn forwarding_keeps_every_field_in_order_and_touches_only_player_id() {
    let text = r#"{"x":1,"type":"answer","sdp":"a","playerId":"Forged","future":{"nested":[1,{"b":null}]},"z":true}"#;
    let mut m = Incoming::parse(text.as_bytes()).unwrap();
    m.set_str("playerId", "Player7");
    assert_eq!(
        m.to_json(),
        r#"{"x":1,"type":"answer","sdp":"a","playerId":"Player7","future":{"nested":[1,{"b":null}]},"z":true}"#
    );
    // A missing playerId is appended; removing keeps the others in order.
    let mut m = Incoming::parse(br#"{"type":"offer","a":1,"sdp":"s","b":2}"#).unwrap();
    m.set_str("playerId", "Player1");
    assert_eq!(m.to_json(), r#"{"type":"offer","a":1,"sdp":"s","b":2,"playerId":"Player1"}"#);
    m.remove("a");
    assert_eq!(m.to_json(), r#"{"type":"offer","sdp":"s","b":2,"playerId":"Player1"}"#);
    // Unknown fields never reach the typed view, but survive in the object.
    assert_eq!(m.get("b"), Some(Value::from(2)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Incoming::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_plausible_objects(
        type_name in proptest::sample::select(KNOWN_TYPES.to_vec()).prop_map(String::from),
        keys in proptest::collection::vec(prop_oneof![
            Just("playerId"), Just("sdp"), Just("id"), Just("time"), Just("candidate"), Just("streamerId"),
            Just("sendStreamId"), Just("ids"), Just("count"), Just("spatialLayer"), Just("peerConnectionOptions"),
        ], 0..6),
        values in proptest::collection::vec(prop_oneof![
            Just(json!(null)), Just(json!(1)), Just(json!(-1)), Just(json!(1.5)), Just(json!("s")),
            Just(json!([1, "a"])), Just(json!({"candidate": "c"})), Just(json!(true)), Just(json!(u64::MAX)),
        ], 6),
    ) {
        let mut obj = serde_json::Map::new();
        obj.insert("type".into(), Value::String(type_name));
        for (k, v) in keys.iter().zip(values) {
            obj.insert((*k).into(), v);
        }
        let text = Value::Object(obj).to_string();
        if let Ok(m) = Incoming::parse(text.as_bytes()) {
            // Whatever parses re-serialises to something that parses the same.
            let again = Incoming::parse(m.message.to_json().as_bytes()).expect("typed view re-parses");
            prop_assert_eq!(again.message, m.message);
        }
    }
}

#[test]
fn escaped_and_repeated_names_behave_like_json_parse() {
    // An escaped name is the same name: setting playerId replaces it in place.
    let mut m = Incoming::parse(br#"{"type":"answer","sdp":"a","pl\u0061yerId":"Forged","x":1}"#).unwrap();
    m.set_str("playerId", "Player2");
    assert_eq!(m.to_json(), r#"{"type":"answer","sdp":"a","playerId":"Player2","x":1}"#);
    // A repeated name keeps its first place and its last value, as JSON.parse does.
    let m = Incoming::parse(br#"{"type":"offer","sdp":"first","a":1,"sdp":"last"}"#).unwrap();
    assert!(matches!(&m.message, Message::Offer { sdp, .. } if sdp == "last"));
    assert_eq!(m.to_json(), r#"{"type":"offer","sdp":"last","a":1}"#);
    // The same past the size where names are indexed rather than searched.
    let mut text = String::from(r#"{"type":"offer","sdp":"first""#);
    for i in 0..40 {
        text.push_str(&format!(r#","k{i}":{i}"#));
    }
    text.push_str(r#","sdp":"last","k3":"three"}"#);
    let m = Incoming::parse(text.as_bytes()).unwrap();
    assert!(matches!(&m.message, Message::Offer { sdp, .. } if sdp == "last"));
    assert_eq!(m.keys().count(), 42);
    assert_eq!(m.get("k3"), Some(Value::from("three")));
    assert_eq!(m.keys().nth(5), Some("k3"), "a repeated name keeps its first place");
}

#[test]
fn forwarded_values_keep_their_exact_text() {
    // Numbers and string escapes are passed on byte for byte, not re-printed.
    let text =
        r#"{"type":"answer","sdp":"v=0\r\n\u00e9","minBitrateBps":100000,"big":1.0000000000000002e308,"n":-0.0}"#;
    let mut m = Incoming::parse(text.as_bytes()).unwrap();
    m.set_str("playerId", "P\"1");
    assert_eq!(
        m.to_json(),
        r#"{"type":"answer","sdp":"v=0\r\n\u00e9","minBitrateBps":100000,"big":1.0000000000000002e308,"n":-0.0,"playerId":"P\"1"}"#
    );
}

/// The JSON every example serialised to before the type names were written
/// once: the same text, byte for byte, and `KNOWN_TYPES` in the same order.
#[test]
fn every_type_keeps_its_json_and_known_types_their_order() {
    let expected = [
        r#"{"type":"config","peerConnectionOptions":{"iceServers":[]},"protocolVersion":"1.3.0"}"#,
        r#"{"type":"identify"}"#,
        r#"{"type":"endpointId","id":"S","protocolVersion":"1.3.0"}"#,
        r#"{"type":"endpointIdConfirm","committedId":"S"}"#,
        r#"{"type":"streamerIdChanged","newID":"S1"}"#,
        r#"{"type":"listStreamers"}"#,
        r#"{"type":"streamerList","ids":["A","B"]}"#,
        r#"{"type":"subscribe","streamerId":"A"}"#,
        r#"{"type":"unsubscribe"}"#,
        r#"{"type":"subscribeFailed","message":"Streamer X does not exist."}"#,
        r#"{"type":"playerConnected","playerId":"Player0","dataChannel":true,"sfu":false}"#,
        r#"{"type":"playerDisconnected","playerId":"Player0"}"#,
        r#"{"type":"offer","sdp":"v=0","playerId":"Player0","sfu":true,"multiplex":false,"scalabilityMode":"L1T3"}"#,
        r#"{"type":"answer","sdp":"v=0","minBitrateBps":1,"maxBitrateBps":2}"#,
        r#"{"type":"iceCandidate","candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"},"playerId":"Player0"}"#,
        r#"{"type":"disconnectPlayer","playerId":"Player0","reason":"bye"}"#,
        r#"{"type":"ping","time":1732000000000}"#,
        r#"{"type":"pong","time":1732000000000}"#,
        r#"{"type":"streamerDisconnected"}"#,
        r#"{"type":"layerPreference","spatialLayer":1,"temporalLayer":0}"#,
        r#"{"type":"dataChannelRequest"}"#,
        r#"{"type":"peerDataChannels","playerId":"Player0","sendStreamId":2,"recvStreamId":3}"#,
        r#"{"type":"peerDataChannelsReady"}"#,
        r#"{"type":"streamerDataChannels","sfuId":"Player1","playerId":"Player0","sendStreamId":3,"recvStreamId":2}"#,
        r#"{"type":"startStreaming"}"#,
        r#"{"type":"stopStreaming"}"#,
        r#"{"type":"playerCount","count":3}"#,
        r#"{"type":"stats","data":"fps=30"}"#,
    ];
    let all = every_message();
    assert_eq!(all.len(), expected.len());
    for (m, text) in all.iter().zip(expected) {
        assert_eq!(m.to_json(), text);
        assert_eq!(serde_json::from_str::<Message>(text).ok().as_ref(), Some(m));
    }
    assert_eq!(
        KNOWN_TYPES,
        &[
            "config",
            "identify",
            "endpointId",
            "endpointIdConfirm",
            "streamerIdChanged",
            "listStreamers",
            "streamerList",
            "subscribe",
            "unsubscribe",
            "subscribeFailed",
            "playerConnected",
            "playerDisconnected",
            "offer",
            "answer",
            "iceCandidate",
            "disconnectPlayer",
            "ping",
            "pong",
            "streamerDisconnected",
            "layerPreference",
            "dataChannelRequest",
            "peerDataChannels",
            "peerDataChannelsReady",
            "streamerDataChannels",
            "startStreaming",
            "stopStreaming",
            "playerCount",
            "stats"
        ]
    );
    for (m, name) in all.iter().zip(KNOWN_TYPES) {
        assert_eq!(m.type_name(), *name);
    }
}
