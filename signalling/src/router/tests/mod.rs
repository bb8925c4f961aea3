//! Case-by-case tests of the routing core against `signalling.md` sections
//! 2–7 and 9, without sockets, one file per section, plus a property test.
//! Every step checks the registry invariants. The harness below is shared.

use super::*;
use proto::close::{self, Close};
use serde_json::json;

mod bad_input;
mod cluster;
mod connect;
mod disconnects;
mod identity;
mod keepalive;
mod players;
mod property;
mod routing;
mod sfu;

// ----- harness -------------------------------------------------------------------

/// One output of the router, comparable as text (field order included).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Send(ConnId, String),
    Close(ConnId, u16, String),
    /// To another node of a cluster: the node and the message as published.
    ToNode(String, String),
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
            Action::Close { conn, close } => Out::Close(conn, close.code(), close.reason().to_string()),
            Action::ToNode { node, message } => Out::ToNode(node, crate::cluster::wire::encode("test", &message)),
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

    /// A new player, subscribed to `streamer`.
    fn subscriber(&mut self, streamer: ConnId) -> ConnId {
        let player = self.player();
        self.subscribed(player, streamer);
        player
    }

    /// Streamer `A`, the streaming SFU `SFU` subscribed to it, and a player
    /// subscribed to the SFU: (streamer, SFU, player).
    fn through_sfu(&mut self) -> (ConnId, ConnId, ConnId) {
        let streamer = self.streamer("A");
        let sfu = self.sfu("SFU");
        self.subscribed(sfu, streamer);
        let player = self.subscriber(sfu);
        (streamer, sfu, player)
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
