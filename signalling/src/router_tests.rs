//! Case-by-case tests of the routing core against `signalling.md` sections
//! 2–7 and 9, without sockets. Every step checks the registry invariants.

use super::*;
use proto::close;
use serde_json::json;

// ----- harness -------------------------------------------------------------------

/// One output of the router, comparable as text (field order included).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Send(ConnId, String),
    Close(ConnId, u16, String),
}

/// The expected `Send` of a JSON message (compared as text, so in field order).
fn to(conn: ConnId, message: Value) -> Out {
    Out::Send(conn, message.to_string())
}

fn closed(conn: ConnId, code: u16, reason: &str) -> Out {
    Out::Close(conn, code, reason.to_string())
}

/// Turn actions into comparable outputs; every frame must be a JSON object
/// with a string `type`.
fn outs(actions: Vec<Action>) -> Vec<Out> {
    actions
        .into_iter()
        .map(|a| match a {
            Action::Send { to, frame } => {
                let text = String::from_utf8(frame.to_vec()).expect("frame is UTF-8");
                let value: Value = serde_json::from_str(&text).expect("frame is JSON");
                assert!(value.get("type").and_then(Value::as_str).is_some(), "frame without type: {text}");
                Out::Send(to, text)
            }
            Action::Close { conn, code, reason } => Out::Close(conn, code, reason),
        })
        .collect()
}

struct Harness {
    router: Router,
}

impl Harness {
    fn new() -> Self {
        Self::with(RouterOptions::default())
    }

    fn with(options: RouterOptions) -> Self {
        Harness { router: Router::new(options) }
    }

    fn max_players(n: usize) -> Self {
        Self::with(RouterOptions { max_players: n, ..RouterOptions::default() })
    }

    fn check(&self) {
        if let Err(e) = self.router.registry().check_invariants() {
            panic!("registry invariant broken: {e}");
        }
    }

    fn connect_greeted(&mut self, role: Role) -> (ConnId, Vec<Out>) {
        let (conn, actions) = self.router.connect(role, "127.0.0.1:5000".to_string());
        self.check();
        (conn, outs(actions))
    }

    /// Connect and discard the greeting.
    fn connect(&mut self, role: Role) -> ConnId {
        self.connect_greeted(role).0
    }

    fn send_text(&mut self, conn: ConnId, text: &str) -> Vec<Out> {
        let actions = self.router.receive(conn, Bytes::copy_from_slice(text.as_bytes()));
        self.check();
        outs(actions)
    }

    fn send(&mut self, conn: ConnId, message: Value) -> Vec<Out> {
        self.send_text(conn, &message.to_string())
    }

    fn disconnect(&mut self, conn: ConnId) -> Vec<Out> {
        let actions = self.router.disconnect(conn);
        self.check();
        outs(actions)
    }

    /// A streamer (or SFU) that has identified as `id` and got exactly that id.
    fn identified(&mut self, role: Role, id: &str) -> ConnId {
        let conn = self.connect(role);
        let got = self.send(conn, json!({"type": "endpointId", "id": id}));
        assert_eq!(got, vec![to(conn, json!({"type": "endpointIdConfirm", "committedId": id}))]);
        conn
    }

    fn streamer(&mut self, id: &str) -> ConnId {
        self.identified(Role::Streamer, id)
    }

    /// A streaming SFU with the streamer id `id`.
    fn sfu(&mut self, id: &str) -> ConnId {
        let sfu = self.identified(Role::Sfu, id);
        assert_eq!(self.send(sfu, json!({"type": "startStreaming"})), vec![]);
        sfu
    }

    fn player(&mut self) -> ConnId {
        self.connect(Role::Player)
    }

    fn player_id(&self, conn: ConnId) -> String {
        self.router.registry().get(conn).and_then(|e| e.player_id.clone()).expect("a player id")
    }

    fn streamer_id(&self, conn: ConnId) -> String {
        self.router.registry().get(conn).and_then(|e| e.streamer_id.clone()).expect("a streamer id")
    }

    /// Subscribe and check the streamer got `playerConnected`.
    fn subscribed(&mut self, player: ConnId, streamer: ConnId) {
        let sid = self.streamer_id(streamer);
        let pid = self.player_id(player);
        let sfu = self.router.registry().get(player).map(|e| e.role) == Some(Role::Sfu);
        let got = self.send(player, json!({"type": "subscribe", "streamerId": sid}));
        assert_eq!(
            got,
            vec![to(streamer, json!({"type": "playerConnected", "playerId": pid, "dataChannel": true, "sfu": sfu}))]
        );
    }

    fn list(&mut self, conn: ConnId) -> Value {
        let got = self.send(conn, json!({"type": "listStreamers"}));
        assert_eq!(got.len(), 1, "{got:?}");
        match &got[0] {
            Out::Send(c, text) if *c == conn => {
                let v: Value = serde_json::from_str(text).unwrap();
                assert_eq!(v["type"], "streamerList");
                v["ids"].clone()
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn dropped(&self) -> u64 {
        self.router.counters().dropped_total()
    }

    fn dropped_for(&self, reason: &str) -> u64 {
        self.router.counters().dropped.get(reason).copied().unwrap_or(0)
    }

    fn is_connected(&self, conn: ConnId) -> bool {
        self.router.registry().get(conn).is_some()
    }
}

fn config_of(peer: Value) -> Value {
    json!({"type": "config", "peerConnectionOptions": peer, "protocolVersion": "1.3.0"})
}

// ----- 2. on connect ------------------------------------------------------------------

#[test]
fn connect_streamer_and_sfu_get_config_then_identify() {
    let peer = json!({"iceServers": [{"urls": ["stun:stun.example.org:19302"]}]});
    let mut h =
        Harness::with(RouterOptions { peer_options: peer.as_object().unwrap().clone(), ..RouterOptions::default() });
    for role in [Role::Streamer, Role::Sfu] {
        let (conn, got) = h.connect_greeted(role);
        assert_eq!(got, vec![to(conn, config_of(peer.clone())), to(conn, json!({"type": "identify"}))]);
    }
}

#[test]
fn connect_config_defaults_to_empty_peer_connection_options() {
    let mut h = Harness::new();
    let (conn, got) = h.connect_greeted(Role::Streamer);
    assert_eq!(
        got[0],
        Out::Send(conn, r#"{"type":"config","peerConnectionOptions":{},"protocolVersion":"1.3.0"}"#.into())
    );
}

#[test]
fn connect_player_gets_config_then_player_count_of_players_only() {
    let mut h = Harness::new();
    h.connect(Role::Sfu);
    h.connect(Role::Streamer);
    let (p1, got) = h.connect_greeted(Role::Player);
    assert_eq!(got, vec![to(p1, config_of(json!({}))), to(p1, json!({"type": "playerCount", "count": 1}))]);
    h.connect(Role::Sfu);
    let (p2, got) = h.connect_greeted(Role::Player);
    assert_eq!(got, vec![to(p2, config_of(json!({}))), to(p2, json!({"type": "playerCount", "count": 2}))]);
    h.disconnect(p1);
    let (p3, got) = h.connect_greeted(Role::Player);
    assert_eq!(got[1], to(p3, json!({"type": "playerCount", "count": 2})));
}

#[test]
fn connect_player_without_player_count_option_gets_only_config() {
    let mut h = Harness::with(RouterOptions { send_player_count: false, ..RouterOptions::default() });
    let (p, got) = h.connect_greeted(Role::Player);
    assert_eq!(got, vec![to(p, config_of(json!({})))]);
}

#[test]
fn connect_default_router_greets_with_a_real_config() {
    let mut router = Router::default();
    let (conn, actions) = router.connect(Role::Player, "x".into());
    assert_eq!(
        outs(actions),
        vec![to(conn, config_of(json!({}))), to(conn, json!({"type": "playerCount", "count": 1}))]
    );
}

// ----- 3. streamer identity ------------------------------------------------------------

#[test]
fn identity_streamer_unlisted_until_endpoint_id() {
    let mut h = Harness::new();
    let s = h.connect(Role::Streamer);
    let p = h.player();
    assert_eq!(h.list(p), json!([]));
    let temp = h.streamer_id(s);
    let got = h.send(p, json!({"type": "subscribe", "streamerId": temp}));
    assert_eq!(
        got,
        vec![to(p, json!({"type": "subscribeFailed", "message": format!("Streamer {temp} does not exist.")}))]
    );
    let got = h.send(s, json!({"type": "endpointId", "id": "A", "protocolVersion": "1.3.0"}));
    assert_eq!(got, vec![to(s, json!({"type": "endpointIdConfirm", "committedId": "A"}))]);
    assert_eq!(h.list(p), json!(["A"]));
}

#[test]
fn identity_collisions_get_numbered() {
    let mut h = Harness::new();
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let s = h.connect(Role::Streamer);
            let got = h.send(s, json!({"type": "endpointId", "id": "A"}));
            assert_eq!(got.len(), 1);
            h.streamer_id(s)
        })
        .collect();
    assert_eq!(ids, ["A", "A1", "A2"]);
    let p = h.player();
    assert_eq!(h.list(p), json!(["A", "A1", "A2"]));
}

#[test]
fn identity_resending_own_id_keeps_it_fix() {
    let mut h = Harness::new();
    let a = h.streamer("A");
    let a1 = h.connect(Role::Streamer);
    assert_eq!(
        h.send(a1, json!({"type": "endpointId", "id": "A"})),
        vec![to(a1, json!({"type": "endpointIdConfirm", "committedId": "A1"}))]
    );
    // Same connection, same id: kept, no rename.
    assert_eq!(
        h.send(a, json!({"type": "endpointId", "id": "A"})),
        vec![to(a, json!({"type": "endpointIdConfirm", "committedId": "A"}))]
    );
    // The holder of A1 asking again for A keeps A1 (it already holds a variant).
    let p = h.player();
    h.subscribed(p, a1);
    assert_eq!(
        h.send(a1, json!({"type": "endpointId", "id": "A"})),
        vec![to(a1, json!({"type": "endpointIdConfirm", "committedId": "A1"}))]
    );
    assert_eq!(
        h.send(a1, json!({"type": "endpointId", "id": "A1"})),
        vec![to(a1, json!({"type": "endpointIdConfirm", "committedId": "A1"}))]
    );
    assert_eq!(h.list(p), json!(["A", "A1"]));
}

#[test]
fn identity_never_hands_out_a_duplicate() {
    let mut h = Harness::new();
    // Wilbur lets two B5s coexist: B, B1, …, then someone asks for "B5" and
    // another gets B5 by numbering. Ours never does.
    let mut conns = Vec::new();
    for requested in ["B", "B", "B", "B", "B", "B5", "B", "B5", "B51", ""] {
        let s = h.connect(Role::Streamer);
        h.send(s, json!({"type": "endpointId", "id": requested}));
        conns.push(s);
    }
    let p = h.player();
    let ids = h.list(p);
    let ids: Vec<&str> = ids.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), 10);
    assert_eq!(unique.len(), 10, "duplicate ids: {ids:?}");
    assert_eq!(&ids[..5], ["B", "B1", "B2", "B3", "B4"]);
    assert_eq!(ids[5], "B5");
    assert_eq!(ids[6], "B6");
}

#[test]
fn identity_empty_or_missing_id_gets_a_generated_one() {
    let mut h = Harness::new();
    let mut got_ids = Vec::new();
    for message in [
        json!({"type": "endpointId"}),
        json!({"type": "endpointId", "id": ""}),
        json!({"type": "endpointId", "id": null}),
        json!({"type": "endpointId", "id": "   "}),
    ] {
        let s = h.connect(Role::Streamer);
        let got = h.send(s, message);
        let id = h.streamer_id(s);
        assert!(!id.trim().is_empty());
        assert_eq!(got, vec![to(s, json!({"type": "endpointIdConfirm", "committedId": id}))]);
        got_ids.push(id);
    }
    let p = h.player();
    assert_eq!(h.list(p), json!(got_ids));
}

#[test]
fn identity_change_tells_subscribers_before_confirm() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p1 = h.player();
    let sfu = h.identified(Role::Sfu, "SFU");
    let p2 = h.player();
    h.subscribed(p1, s);
    h.subscribed(sfu, s);
    h.subscribed(p2, s);
    let got = h.send(s, json!({"type": "endpointId", "id": "B"}));
    assert_eq!(
        got,
        vec![
            to(p1, json!({"type": "streamerIdChanged", "newID": "B"})),
            to(sfu, json!({"type": "streamerIdChanged", "newID": "B"})),
            to(p2, json!({"type": "streamerIdChanged", "newID": "B"})),
            to(s, json!({"type": "endpointIdConfirm", "committedId": "B"})),
        ]
    );
    let q = h.player();
    assert_eq!(h.list(q), json!(["B"]));
    // The old id is free again.
    h.streamer("A");
}

// ----- 4. players ---------------------------------------------------------------------

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
    let p1 = h.player();
    h.subscribed(p1, s);
    let p2 = h.player();
    let got = h.send(p2, json!({"type": "offer", "sdp": "v=0"}));
    assert!(!got.is_empty());
    for out in &got {
        let c = match out {
            Out::Send(c, _) | Out::Close(c, _, _) => *c,
        };
        assert_eq!(c, p2, "only the legacy player is affected: {got:?}");
    }
    assert!(matches!(got.last(), Some(Out::Close(c, _, _)) if *c == p2));
    assert!(!h.is_connected(p2));
    assert!(h.is_connected(p1) && h.is_connected(s));
    assert_eq!(h.router.registry().get(p1).unwrap().subscribed_to, Some(s));
}

// ----- 5. routing ---------------------------------------------------------------------

#[test]
fn route_streamer_to_player_keeps_message_as_sent() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.player();
    h.subscribed(p, s);
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
    let p = h.player();
    h.subscribed(p, s);
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
    let p = h.player();
    h.subscribed(p, s);
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
    let p = h.player();
    h.subscribed(p, sfu);
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
    let p = h.player();
    h.subscribed(p, s);
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

// ----- 6. disconnects -----------------------------------------------------------------

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
            closed(q, 1011, reasons::DISCONNECTED_BY_STREAMER),
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
    let p = h.player();
    h.subscribed(p, a);
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
    let p = h.player();
    h.subscribed(p, s);
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
            closed(p1, close::NORMAL, reasons::STREAMER_DISCONNECTED),
            to(p2, json!({"type": "streamerDisconnected"})),
            closed(p2, close::NORMAL, reasons::STREAMER_DISCONNECTED),
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
    let s = h.streamer("A");
    let sfu = h.sfu("SFU");
    h.subscribed(sfu, s);
    let p1 = h.player();
    let p2 = h.player();
    h.subscribed(p1, sfu);
    h.subscribed(p2, sfu);
    let direct = h.player();
    h.subscribed(direct, s);
    let (pid1, pid2) = (h.player_id(p1), h.player_id(p2));
    let got = h.disconnect(s);
    assert_eq!(
        got,
        vec![
            to(sfu, json!({"type": "streamerDisconnected"})),
            to(p1, json!({"type": "streamerDisconnected"})),
            to(sfu, json!({"type": "playerDisconnected", "playerId": pid1})),
            closed(p1, 1000, reasons::STREAMER_DISCONNECTED),
            to(p2, json!({"type": "streamerDisconnected"})),
            to(sfu, json!({"type": "playerDisconnected", "playerId": pid2})),
            closed(p2, 1000, reasons::STREAMER_DISCONNECTED),
            to(direct, json!({"type": "streamerDisconnected"})),
            closed(direct, 1000, reasons::STREAMER_DISCONNECTED),
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
    let s = h.streamer("A");
    let sfu = h.sfu("SFU");
    h.subscribed(sfu, s);
    let p = h.player();
    h.subscribed(p, sfu);
    let sfu_pid = h.player_id(sfu);
    let got = h.disconnect(sfu);
    assert_eq!(
        got,
        vec![
            to(s, json!({"type": "playerDisconnected", "playerId": sfu_pid})),
            to(p, json!({"type": "streamerDisconnected"})),
            closed(p, 1000, reasons::STREAMER_DISCONNECTED),
        ]
    );
    assert_eq!(h.router.registry().len(), 1);
}

// ----- 7. SFU -------------------------------------------------------------------------

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
    let s = h.streamer("A");
    let sfu = h.sfu("SFU");
    h.subscribed(sfu, s);
    let p1 = h.player();
    let p2 = h.player();
    h.subscribed(p1, sfu);
    h.subscribed(p2, sfu);
    let (pid1, pid2) = (h.player_id(p1), h.player_id(p2));
    let got = h.send(sfu, json!({"type": "stopStreaming"}));
    assert_eq!(
        got,
        vec![
            to(p1, json!({"type": "streamerDisconnected"})),
            to(sfu, json!({"type": "playerDisconnected", "playerId": pid1})),
            closed(p1, 1000, reasons::SFU_STOPPED),
            to(p2, json!({"type": "streamerDisconnected"})),
            to(sfu, json!({"type": "playerDisconnected", "playerId": pid2})),
            closed(p2, 1000, reasons::SFU_STOPPED),
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
    let s = h.streamer("A");
    let sfu = h.sfu("SFU");
    h.subscribed(sfu, s);
    let p = h.player();
    h.subscribed(p, sfu);
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
    let s = h.streamer("A");
    let sfu = h.sfu("SFU");
    h.subscribed(sfu, s);
    let p = h.player();
    h.subscribed(p, sfu);
    let sfu_pid = h.player_id(sfu);
    let got = h.send(s, json!({"type": "disconnectPlayer", "playerId": sfu_pid}));
    assert_eq!(
        got,
        vec![
            closed(sfu, 1011, reasons::DISCONNECTED_BY_STREAMER),
            to(s, json!({"type": "playerDisconnected", "playerId": sfu_pid})),
            to(p, json!({"type": "streamerDisconnected"})),
            closed(p, 1000, reasons::STREAMER_DISCONNECTED),
        ]
    );
    assert_eq!(h.router.registry().len(), 1);
}

#[test]
fn sfu_ice_candidate_goes_to_its_player_or_upstream() {
    // Extension: Epic's SFU never trickles, but a candidate is routed sensibly.
    let mut h = Harness::new();
    let s = h.streamer("A");
    let sfu = h.sfu("SFU");
    h.subscribed(sfu, s);
    let p = h.player();
    h.subscribed(p, sfu);
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
        }
    }
}

// ----- 8. keepalive (the router's part) -----------------------------------------------

#[test]
fn keepalive_ping_gets_pong_with_the_same_64_bit_time() {
    let mut h = Harness::new();
    for role in [Role::Player, Role::Streamer, Role::Sfu] {
        let c = h.connect(role);
        assert_eq!(
            h.send_text(c, r#"{"type":"ping","time":1732000000000}"#),
            vec![Out::Send(c, r#"{"type":"pong","time":1732000000000}"#.into())]
        );
        assert_eq!(h.send_text(c, r#"{"type":"ping"}"#), vec![Out::Send(c, r#"{"type":"pong","time":0}"#.into())]);
        // A pong from a peer is accepted silently.
        assert_eq!(h.send_text(c, r#"{"type":"pong","time":5}"#), vec![]);
    }
    assert_eq!(h.dropped(), 0);
}

// ----- 9. bad input -------------------------------------------------------------------

#[test]
fn bad_input_is_dropped_counted_and_the_connection_stays() {
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.player();
    let sfu = h.sfu("SFU");
    h.subscribed(p, s);
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
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.player();
    let sfu = h.sfu("SFU");
    h.subscribed(p, s);
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
    let mut h = Harness::new();
    let s = h.streamer("A");
    let p = h.player();
    let sfu = h.sfu("SFU");
    h.subscribed(p, s);
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

// ----- property test ------------------------------------------------------------------

mod property {
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
                            let actions = router.close_conn(conn, 1008, "kicked");
                            prop_assert!(
                                matches!(actions.first(), Some(Action::Close { conn: c, .. }) if *c == conn),
                                "the closed connection's own close comes first"
                            );
                            apply(&router, &mut open, &actions)?;
                            prop_assert!(router.registry().get(conn).is_none());
                            prop_assert!(router.close_conn(conn, 1008, "again").is_empty());
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
}

#[test]
fn identity_re_requesting_a_taken_id_keeps_the_numbered_one_it_holds() {
    let mut h = Harness::new();
    h.streamer("A");
    let a1 = h.connect(Role::Streamer);
    h.send(a1, json!({"type": "endpointId", "id": "A"}));
    let a2 = h.connect(Role::Streamer);
    h.send(a2, json!({"type": "endpointId", "id": "A"}));
    assert_eq!(h.streamer_id(a2), "A2");
    // A1 goes away; A2 asks for A again and keeps A2 rather than moving to A1.
    h.disconnect(a1);
    let got = h.send(a2, json!({"type": "endpointId", "id": "A"}));
    assert_eq!(got, vec![to(a2, json!({"type": "endpointIdConfirm", "committedId": "A2"}))]);
}
