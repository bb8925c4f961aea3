//! Property tests: random sessions (connects, frames of any shape, operator
//! closes, disconnects) keep the registry's invariants, route only where the
//! contract allows and leave nothing behind; the parser takes any bytes.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
enum Op {
    Connect(u8),
    Disconnect(usize),
    Send(usize, String),
    /// A plausible message: (connection, kind, streamer id pick, player id pick, extra field).
    Message(usize, u8, usize, usize, bool),
    /// Any JSON at all, often with a known `type`.
    Json(usize, Value),
    /// The operator closes a connection (admin API).
    AdminClose(usize),
}

const TYPES: &[&str] = proto::message::KNOWN_TYPES;
const FIELDS: &[&str] =
    &["type", "id", "streamerId", "playerId", "sdp", "candidate", "time", "reason", "sfuId", "newID", "x"];

/// Arbitrary JSON: scalars, nested arrays and objects whose keys are mostly
/// the protocol's own field names (so that type confusion is exercised).
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9 ]{0,8}".prop_map(Value::from),
        prop::sample::select(TYPES).prop_map(Value::from),
        Just(Value::from("Player0")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// A message with a known type and arbitrary values in its fields.
fn typed_json() -> impl Strategy<Value = Value> {
    (prop::sample::select(TYPES), prop::collection::vec((prop::sample::select(FIELDS), arb_json()), 0..5)).prop_map(
        |(t, kv)| {
            let mut map: Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            map.insert("type".into(), Value::from(t));
            Value::Object(map)
        },
    )
}

const STREAMER_IDS: &[&str] = &["A", "B", "SFU", "A", "B", "SFU", "A1", "UnknownStreamer", "", "Player0"];

/// A plausible message; ids are mostly picked among the live ones so
/// that subscriptions and routes actually happen.
fn plausible(router: &Router, conn: ConnId, role: Role, kind: u8, sid: usize, pid: usize, extra: bool) -> String {
    let snapshot = router.snapshot();
    let live_sids: Vec<String> = snapshot.streamers.iter().map(|s| s.streamer_id.clone()).collect();
    let live_pids: Vec<String> = snapshot.players.iter().map(|p| p.player_id.clone()).collect();
    let sid = match sid % 3 {
        1 | 2 if !live_sids.is_empty() => live_sids[(sid / 3) % live_sids.len()].clone(),
        _ => STREAMER_IDS[(sid / 3) % STREAMER_IDS.len()].to_string(),
    };
    let own_pids: Vec<String> = router
        .registry()
        .get(conn)
        .map(|e| e.subscribers.iter().filter_map(|c| router.registry().get(*c)?.player_id.clone()).collect())
        .unwrap_or_default();
    let pid = match pid % 4 {
        1 | 2 if !own_pids.is_empty() => own_pids[(pid / 4) % own_pids.len()].clone(),
        3 if !live_pids.is_empty() => live_pids[(pid / 4) % live_pids.len()].clone(),
        _ => format!("Player{}", (pid / 4) % 8),
    };
    let any = |n: u8| match n % 28 {
        0 | 24 => json!({"type": "endpointId", "id": sid}),
        1 => json!({"type": "endpointId"}),
        2 => json!({"type": "listStreamers"}),
        3 | 25 | 26 | 27 => json!({"type": "subscribe", "streamerId": sid}),
        4 => json!({"type": "subscribe"}),
        5 => json!({"type": "unsubscribe"}),
        6 => json!({"type": "offer", "sdp": "v=0"}),
        7 => json!({"type": "offer", "sdp": "v=0", "playerId": pid}),
        8 => json!({"type": "answer", "sdp": "v=0"}),
        9 => json!({"type": "answer", "sdp": "v=0", "playerId": pid}),
        10 => json!({"type": "iceCandidate", "candidate": {"candidate": "c"}, "playerId": pid}),
        11 => json!({"type": "iceCandidate", "candidate": {"candidate": "c"}}),
        12 => json!({"type": "disconnectPlayer", "playerId": pid, "reason": "r"}),
        13 => json!({"type": "ping", "time": 1732000000000i64}),
        14 => {
            json!({"type": "layerPreference", "spatialLayer": 1, "temporalLayer": 1, "playerId": pid})
        }
        15 => json!({"type": "dataChannelRequest"}),
        16 => {
            json!({"type": "peerDataChannels", "playerId": pid, "sendStreamId": 1, "recvStreamId": 2})
        }
        17 => json!({"type": "peerDataChannelsReady"}),
        18 => {
            json!({"type": "streamerDataChannels", "playerId": pid, "sendStreamId": 1, "recvStreamId": 2})
        }
        19 | 20 => json!({"type": "startStreaming"}),
        21 => json!({"type": "stopStreaming"}),
        22 => json!({"type": "stats", "data": "x"}),
        _ => json!({"type": "noSuchType"}),
    };
    // Mostly what this kind of peer would send, sometimes anything.
    let typical: &[u8] = match role {
        Role::Streamer => &[0, 0, 1, 7, 9, 10, 12, 14],
        Role::Player => &[2, 3, 3, 3, 5, 6, 8, 11, 15, 17, 14],
        Role::Sfu => &[0, 0, 2, 3, 3, 3, 5, 19, 19, 21, 7, 8, 9, 16, 18, 10, 11, 12],
    };
    let mut v = if kind >= 200 { any(kind) } else { any(typical[kind as usize % typical.len()]) };
    if extra {
        v.as_object_mut().unwrap().insert("x".into(), json!({"y": [1, 2]}));
    }
    v.to_string()
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u8..5).prop_map(Op::Connect),
        1 => any::<usize>().prop_map(Op::Disconnect),
        12 => (any::<usize>(), any::<u8>(), any::<usize>(), any::<usize>(), any::<bool>())
            .prop_map(|(c, k, s, p, e)| Op::Message(c, k, s, p, e)),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(c, bytes)| Op::Send(c, String::from_utf8_lossy(&bytes).into_owned())),
        1 => (any::<usize>(), prop::sample::select(vec!["null", "[]", "1", "{}", "{\"type\":1}", "{\"type\":\"subscribe\",\"streamerId\":[]}"]))
            .prop_map(|(c, t)| Op::Send(c, t.to_string())),
        2 => (any::<usize>(), prop_oneof![arb_json(), typed_json(), typed_json()]).prop_map(|(c, v)| Op::Json(c, v)),
        1 => any::<usize>().prop_map(Op::AdminClose),
    ]
}

/// Apply actions to the set of open connections: never traffic to a
/// closed one, and a Close means the router forgot it.
fn apply(router: &Router, open: &mut BTreeSet<ConnId>, actions: &[Action]) -> Result<(), TestCaseError> {
    for a in actions {
        match a {
            Action::Send { to, frame } => {
                prop_assert!(open.contains(to), "send to a closed connection {:?}: {:?}", to, frame);
                let v: Value = serde_json::from_slice(frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(v.get("type").and_then(Value::as_str).is_some());
            }
            Action::Close { conn, .. } => {
                prop_assert!(open.remove(conn), "close of a closed connection {:?}", conn);
                prop_assert!(router.registry().get(*conn).is_none(), "closed but still registered");
            }
            Action::ToNode { node, .. } => prop_assert!(false, "a single node addressed node {}", node),
        }
    }
    prop_assert_eq!(router.registry().check_invariants(), Ok(()));
    check_counts(router, open)
}

/// The numbers every view of the registry gives agree: entries = open
/// connections, the REST snapshot lists every player-side connection,
/// subscriber lists add up to the subscriptions, `playerCount` counts
/// players only.
fn check_counts(router: &Router, open: &BTreeSet<ConnId>) -> Result<(), TestCaseError> {
    let reg = router.registry();
    prop_assert_eq!(reg.len(), open.len());
    let entries: Vec<_> = open.iter().filter_map(|c| reg.get(*c)).collect();
    prop_assert_eq!(entries.len(), open.len(), "an open connection is missing from the registry");
    let player_side = entries.iter().filter(|e| e.role.is_player_side()).count();
    let subscribed = entries.iter().filter(|e| e.subscribed_to.is_some()).count();
    let listed_subscribers: usize = entries.iter().map(|e| e.subscribers.len()).sum();
    prop_assert_eq!(listed_subscribers, subscribed, "orphan or missing subscription");
    prop_assert_eq!(reg.player_count(), entries.iter().filter(|e| e.role == Role::Player).count());
    let snapshot = router.snapshot();
    prop_assert_eq!(snapshot.players.len(), player_side);
    let identified = entries.iter().filter(|e| e.role.is_streamer_side() && e.identified).count();
    prop_assert_eq!(snapshot.streamers.len(), identified);
    for s in &snapshot.streamers {
        prop_assert!(s.subscribers.iter().all(|p| p.subscribed_to.as_deref() == Some(s.streamer_id.as_str())));
    }
    Ok(())
}

/// Forwarded messages only travel along a subscription, and what a
/// player sends carries its own id.
fn check_routes(
    router: &Router,
    from: ConnId,
    sender: Option<(Role, Option<String>)>,
    actions: &[Action],
) -> Result<(), TestCaseError> {
    const FORWARDED: &[&str] = &[
        "offer",
        "answer",
        "iceCandidate",
        "dataChannelRequest",
        "peerDataChannels",
        "peerDataChannelsReady",
        "streamerDataChannels",
        "layerPreference",
    ];
    for a in actions {
        let Action::Send { to, frame } = a else {
            continue;
        };
        if *to == from {
            continue;
        }
        let v: Value = serde_json::from_slice(frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let type_name = v["type"].as_str().unwrap_or_default();
        if !FORWARDED.contains(&type_name) {
            continue;
        }
        let down = router.registry().get(*to).and_then(|e| e.subscribed_to) == Some(from);
        let up = router.registry().get(from).and_then(|e| e.subscribed_to) == Some(*to);
        prop_assert!(down || up, "{} from {:?} to {:?}, not subscribed either way", type_name, from, to);
        if let Some((Role::Player, pid)) = &sender {
            prop_assert!(up);
            prop_assert_eq!(v["playerId"].as_str(), pid.as_deref());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
    ))]

    #[test]
    fn random_sessions_keep_invariants_and_leave_nothing_behind(
        ops in proptest::collection::vec(op(), 1..200),
        max_players in 0usize..3,
        max_open in 2usize..8,
        allow_list in any::<bool>(),
        turn in any::<bool>(),
    ) {
        let streamer_ids = allow_list.then(|| ["A", "B", "SFU"].iter().map(|s| s.to_string()).collect());
        let turn = turn.then(|| crate::config::TurnConfig {
            secret: crate::config::Secret::new("s").expect("secret"),
            ttl: std::time::Duration::from_secs(60),
        });
        let peer_options: Map<String, Value> =
            serde_json::from_value(json!({"iceServers": [{"urls": "turn:t"}]})).expect("map");
        let mut router =
            Router::new(RouterOptions { max_players, streamer_ids, turn, peer_options, ..RouterOptions::default() });
        let mut open: BTreeSet<ConnId> = BTreeSet::new();
        for op in ops {
            match op {
                // Few connections at a time, so that each gets many messages.
                Op::Connect(_) if open.len() >= max_open => {}
                Op::Connect(r) => {
                    let role = [Role::Streamer, Role::Player, Role::Sfu, Role::Sfu, Role::Player][r as usize % 5];
                    let (conn, actions) = router.connect_at(role, "1.2.3.4:5".into(), 1_700_000_000);
                    open.insert(conn);
                    apply(&router, &mut open, &actions)?;
                }
                Op::Disconnect(i) => {
                    if let Some(&conn) = open.iter().nth(i % open.len().max(1)) {
                        open.remove(&conn);
                        let actions = router.disconnect(conn);
                        apply(&router, &mut open, &actions)?;
                        prop_assert!(router.registry().get(conn).is_none());
                    }
                }
                Op::Message(i, kind, sid, pid, extra) => {
                    if let Some(&conn) = open.iter().nth(i % open.len().max(1)) {
                        let role = router.registry().get(conn).map_or(Role::Player, |e| e.role);
                        let text = plausible(&router, conn, role, kind, sid, pid, extra);
                        let sender = router.registry().get(conn).map(|e| (e.role, e.player_id.clone()));
                        let actions = router.receive(conn, Bytes::from(text));
                        apply(&router, &mut open, &actions)?;
                        check_routes(&router, conn, sender, &actions)?;
                    }
                }
                Op::Json(i, value) => {
                    if let Some(&conn) = open.iter().nth(i % open.len().max(1)) {
                        let sender = router.registry().get(conn).map(|e| (e.role, e.player_id.clone()));
                        let actions = router.receive(conn, Bytes::from(value.to_string()));
                        apply(&router, &mut open, &actions)?;
                        check_routes(&router, conn, sender, &actions)?;
                    }
                }
                Op::AdminClose(i) => {
                    if let Some(&conn) = open.iter().nth(i % open.len().max(1)) {
                        let actions = router.close_conn(conn, Close::Kicked);
                        prop_assert!(
                            matches!(actions.first(), Some(Action::Close { conn: c, .. }) if *c == conn),
                            "the closed connection's own close comes first"
                        );
                        apply(&router, &mut open, &actions)?;
                        prop_assert!(router.registry().get(conn).is_none());
                        prop_assert!(router.close_conn(conn, Close::Kicked).is_empty());
                    }
                }
                Op::Send(i, text) => {
                    if let Some(&conn) = open.iter().nth(i % open.len().max(1)) {
                        let sender = router.registry().get(conn).map(|e| (e.role, e.player_id.clone()));
                        let actions = router.receive(conn, Bytes::from(text));
                        apply(&router, &mut open, &actions)?;
                        check_routes(&router, conn, sender, &actions)?;
                    }
                }
            }
            prop_assert_eq!(router.registry().len(), open.len());
            if allow_list {
                for st in router.snapshot().streamers.iter().filter(|s| s.kind == crate::snapshot::EndpointKind::Streamer) {
                    prop_assert!(["A", "B", "SFU"].contains(&st.streamer_id.as_str()), "unlisted id {}", st.streamer_id);
                }
            }
        }
        while let Some(&conn) = open.iter().next() {
            open.remove(&conn);
            let actions = router.disconnect(conn);
            apply(&router, &mut open, &actions)?;
        }
        prop_assert_eq!(router.registry().len(), 0);
        prop_assert!(router.registry().is_empty());
    }
}

proptest! {
    // Parsing is cheap: many more cases than the session test.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(4096),
    ))]

    /// The parser never panics on any bytes, and what it accepts is an object with a string type.
    #[test]
    fn parser_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(incoming) = Incoming::parse(&bytes) {
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(v.get("type").and_then(Value::as_str).is_some());
            prop_assert_eq!(incoming.get("type"), v.get("type").cloned());
        }
    }

    /// Any JSON, typed or not: parsing never panics, a parsed message keeps
    /// every field it had, and setting `playerId` touches only `playerId`.
    #[test]
    fn parser_keeps_fields_of_any_json(value in prop_oneof![arb_json(), typed_json()]) {
        let text = value.to_string();
        if let Ok(mut incoming) = Incoming::parse(text.as_bytes()) {
            // Compared with serde_json's own reading of the text: its float
            // parsing may differ from the generated value in the last digit.
            let reparsed: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let Value::Object(original) = &reparsed else {
                return Err(TestCaseError::fail("parsed a non-object"));
            };
            let kept: Value = serde_json::from_str(&incoming.to_json()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&kept, &reparsed);
            prop_assert!(incoming.keys().eq(original.keys().map(String::as_str)), "members keep their order");
            incoming.set_str("playerId", "P");
            let out: Value = serde_json::from_str(&incoming.to_json()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let Value::Object(out) = out else { return Err(TestCaseError::fail("not an object")) };
            prop_assert_eq!(out.get("playerId"), Some(&Value::from("P")));
            for (k, v) in original.iter().filter(|(k, _)| k.as_str() != "playerId") {
                prop_assert_eq!(out.get(k), Some(v));
            }
        }
    }
}
