//! Routers of several nodes, wired by an in-order message pump instead of
//! Redis: subscriptions across nodes, leaving, nodes dying, the bus down.

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::cluster::Directory;

/// Named routers and the messages between them, delivered in order.
struct Nodes {
    routers: BTreeMap<&'static str, Router>,
    /// What each node's connections were sent or told, in order.
    local: BTreeMap<&'static str, Vec<Action>>,
}

impl Nodes {
    fn new(names: &[&'static str]) -> Nodes {
        let routers = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut r = Router::new(RouterOptions { node_id: Some(n.to_string()), ..RouterOptions::default() });
                // Distinct per node, as the cluster's counter makes them.
                let base = (i as u64 + 1) * 1_000_000;
                r.use_cluster_player_ids(base..base + 1_000_000);
                (*n, r)
            })
            .collect();
        Nodes { routers, local: BTreeMap::new() }
    }

    fn r(&mut self, node: &str) -> &mut Router {
        self.routers.get_mut(node).expect("node")
    }

    /// Run `f` on `node`'s router and deliver every message between nodes
    /// that follows, until the cluster is quiet.
    fn run(&mut self, node: &'static str, f: impl FnOnce(&mut Router) -> Vec<Action>) {
        let first = f(self.r(node));
        let mut queue: VecDeque<(&'static str, Action)> = first.into_iter().map(|a| (node, a)).collect();
        while let Some((from, action)) = queue.pop_front() {
            match action {
                Action::ToNode { node: to, message } => {
                    let to: &'static str = self.routers.keys().find(|k| **k == to).copied().expect("known node");
                    let out = self.r(to).receive_from_node(from, message);
                    queue.extend(out.into_iter().map(|a| (to, a)));
                }
                local => self.local.entry(from).or_default().push(local),
            }
        }
        for r in self.routers.values() {
            if let Err(e) = r.registry().check_invariants() {
                panic!("registry invariant broken: {e}");
            }
        }
    }

    /// Local actions of `node` since the last call, as comparable outputs.
    fn take(&mut self, node: &str) -> Vec<Out> {
        outs(self.local.remove(node).unwrap_or_default())
    }

    /// Every node's directory: the other nodes' identified streamers.
    fn publish_directories(&mut self) {
        let mut records = Vec::new();
        for (name, r) in &self.routers {
            for (i, s) in r.local_streamers().into_iter().enumerate() {
                records.push(s.record(name, s.order.unwrap_or(i as u64)));
            }
        }
        for (name, r) in self.routers.iter_mut() {
            r.set_directory(Directory::new(records.iter().filter(|s| s.node != *name).cloned()));
        }
    }

    fn connect(&mut self, node: &'static str, role: Role) -> ConnId {
        let (conn, _) = self.r(node).connect(role, "127.0.0.1:5000".into());
        conn
    }

    fn send(&mut self, node: &'static str, conn: ConnId, message: Value) {
        let frame = Bytes::from(message.to_string());
        self.run(node, |r| r.receive(conn, frame));
    }

    fn streamer(&mut self, node: &'static str, id: &str, order: u64) -> ConnId {
        self.streamer_as(node, Role::Streamer, id, order)
    }

    fn streamer_as(&mut self, node: &'static str, role: Role, id: &str, order: u64) -> ConnId {
        let s = self.connect(node, role);
        let frame = Bytes::from(json!({"type": "endpointId", "id": id}).to_string());
        self.run(node, |r| r.receive_claimed(s, frame, Some(Claim::Granted { id: id.into(), order })));
        self.take(node);
        self.publish_directories();
        s
    }

    fn player_id(&self, node: &str, conn: ConnId) -> String {
        self.routers[node].registry().get(conn).and_then(|e| e.player_id.clone()).expect("player id")
    }
}

#[test]
fn a_player_on_one_node_watches_a_streamer_on_another() {
    let mut n = Nodes::new(&["a", "b"]);
    let s = n.streamer("a", "A", 1);
    let p = n.connect("b", Role::Player);
    let pid = n.player_id("b", p);
    assert_eq!(pid, "Player2000000", "numbered from b's own range");

    n.send("b", p, json!({"type": "listStreamers"}));
    assert_eq!(n.take("b"), vec![to(p, json!({"type": "streamerList", "ids": ["A"]}))]);

    n.send("b", p, json!({"type": "subscribe", "streamerId": "A"}));
    assert_eq!(
        n.take("a"),
        vec![to(s, json!({"type": "playerConnected", "playerId": pid, "dataChannel": true, "sfu": false}))]
    );
    assert_eq!(n.take("b"), vec![]);

    // Streamer → player: the frame as the streamer sent it, playerId included.
    let offer = json!({"type": "offer", "playerId": pid, "sdp": "v=0 offer", "extra": {"kept": [1, 2.5]}});
    n.send("a", s, offer.clone());
    assert_eq!(n.take("b"), vec![to(p, offer)]);

    // Player → streamer: with the player's id set, every other field kept.
    n.send("b", p, json!({"type": "answer", "sdp": "v=0 answer", "minBitrate": 1}));
    assert_eq!(
        n.take("a"),
        vec![to(s, json!({"type": "answer", "sdp": "v=0 answer", "minBitrate": 1, "playerId": pid}))]
    );
    n.send("b", p, json!({"type": "dataChannelRequest"}));
    assert_eq!(n.take("a"), vec![to(s, json!({"type": "dataChannelRequest", "playerId": pid}))]);

    // The player leaves its node: the streamer hears of it.
    n.run("b", |r| r.disconnect(p));
    assert_eq!(n.take("a"), vec![to(s, json!({"type": "playerDisconnected", "playerId": pid}))]);
    assert_eq!(n.routers["a"].registry().len(), 1, "the remote connection is gone with it");
}

#[test]
fn a_streamer_leaving_ends_its_remote_players_and_disconnect_player_closes_one() {
    let mut n = Nodes::new(&["a", "b"]);
    let s = n.streamer("a", "A", 1);
    let (p1, p2) = (n.connect("b", Role::Player), n.connect("b", Role::Player));
    n.send("b", p1, json!({"type": "subscribe", "streamerId": "A"}));
    n.send("b", p2, json!({"type": "subscribe", "streamerId": "A"}));
    n.take("a");
    let id1 = n.player_id("b", p1);
    n.send("a", s, json!({"type": "disconnectPlayer", "playerId": id1, "reason": "bye"}));
    assert_eq!(n.take("b"), vec![closed(p1, close::SERVER_ERROR, "bye")]);
    assert!(n.routers["b"].registry().get(p1).is_none());

    n.run("a", |r| r.disconnect(s));
    assert_eq!(
        n.take("b"),
        vec![to(p2, json!({"type": "streamerDisconnected"})), closed(p2, close::NORMAL, "streamer disconnected")]
    );
    assert!(n.routers["b"].registry().get(p2).is_none());
    assert_eq!(n.routers["a"].registry().len(), 0);
}

#[test]
fn max_players_counts_subscribers_of_every_node() {
    let mut n = Nodes::new(&["a", "b"]);
    for r in n.routers.values_mut() {
        r.options.max_players = 1;
    }
    n.streamer("a", "A", 1);
    let p1 = n.connect("b", Role::Player);
    n.send("b", p1, json!({"type": "subscribe", "streamerId": "A"}));
    let p2 = n.connect("a", Role::Player);
    n.send("a", p2, json!({"type": "subscribe", "streamerId": "A"}));
    assert_eq!(
        n.take("a").last(),
        Some(&to(p2, json!({"type": "subscribeFailed", "message": "Streamer A is full. Max players = 1."})))
    );
    let p3 = n.connect("b", Role::Player);
    n.send("b", p3, json!({"type": "subscribe", "streamerId": "A"}));
    assert_eq!(
        n.take("b"),
        vec![to(p3, json!({"type": "subscribeFailed", "message": "Streamer A is full. Max players = 1."}))]
    );
    // Refused: p3 is subscribed nowhere, and its frames go nowhere.
    assert!(n.routers["b"].registry().get(p3).is_some_and(|e| e.remote_subscription.is_none()));
}

#[test]
fn a_dead_node_ends_what_crossed_it_and_nothing_else() {
    let mut n = Nodes::new(&["a", "b"]);
    let sa = n.streamer("a", "A", 1);
    let sb = n.streamer("b", "B", 2);
    let pb = n.connect("b", Role::Player);
    n.send("b", pb, json!({"type": "subscribe", "streamerId": "A"}));
    let pa = n.connect("a", Role::Player);
    n.send("a", pa, json!({"type": "subscribe", "streamerId": "B"}));
    let pa_local = n.connect("a", Role::Player);
    n.send("a", pa_local, json!({"type": "subscribe", "streamerId": "A"}));
    n.take("a");
    n.take("b");
    let pa_id = n.player_id("a", pa);

    // b dies, as seen from a.
    n.run("a", |r| r.node_gone("b"));
    assert_eq!(
        n.take("a"),
        vec![
            to(sa, json!({"type": "playerDisconnected", "playerId": n.player_id("b", pb)})),
            to(pa, json!({"type": "streamerDisconnected"})),
            closed(pa, close::NORMAL, "streamer disconnected"),
        ]
    );
    assert!(n.routers["a"].registry().get(pa_local).is_some_and(|e| e.subscribed_to == Some(sa)));
    n.send("a", pa_local, json!({"type": "listStreamers"}));
    assert_eq!(n.take("a"), vec![to(pa_local, json!({"type": "streamerList", "ids": ["A"]}))]);
    let _ = (sb, pa_id);
}

#[test]
fn with_the_bus_down_a_remote_subscribe_fails_at_once_and_local_ones_work() {
    let mut n = Nodes::new(&["a", "b"]);
    n.streamer("a", "A", 1);
    let sb = n.streamer("b", "B", 2);
    n.r("b").set_bus_up(false);
    let p = n.connect("b", Role::Player);
    n.send("b", p, json!({"type": "subscribe", "streamerId": "A"}));
    assert_eq!(
        n.take("b"),
        vec![to(
            p,
            json!({"type": "subscribeFailed", "message": "Streamer A is on node a, which cannot be reached now."})
        )]
    );
    n.send("b", p, json!({"type": "subscribe", "streamerId": "B"}));
    let pid = n.player_id("b", p);
    assert_eq!(
        n.take("b"),
        vec![to(sb, json!({"type": "playerConnected", "playerId": pid, "dataChannel": true, "sfu": false}))]
    );
}

#[test]
fn listing_merges_nodes_in_registration_order() {
    let mut n = Nodes::new(&["a", "b"]);
    n.streamer("b", "First", 1);
    n.streamer("a", "Second", 2);
    n.streamer("b", "Third", 3);
    for node in ["a", "b"] {
        let p = n.connect(node, Role::Player);
        n.send(node, p, json!({"type": "listStreamers"}));
        assert_eq!(n.take(node), vec![to(p, json!({"type": "streamerList", "ids": ["First", "Second", "Third"]}))]);
    }
}

#[test]
fn an_sfu_on_a_third_node_serves_players_of_a_second_from_a_streamer_on_the_first() {
    let mut n = Nodes::new(&["a", "b", "c"]);
    let s = n.streamer("a", "A", 1);
    let sfu = n.streamer_as("c", Role::Sfu, "SFU", 2);
    n.send("c", sfu, json!({"type": "subscribe", "streamerId": "A"}));
    let sfu_pid = n.player_id("c", sfu);
    assert_eq!(
        n.take("a"),
        vec![to(s, json!({"type": "playerConnected", "playerId": sfu_pid, "dataChannel": true, "sfu": true}))]
    );
    n.send("c", sfu, json!({"type": "startStreaming"}));
    n.publish_directories();
    let p = n.connect("b", Role::Player);
    n.send("b", p, json!({"type": "subscribe", "streamerId": "SFU"}));
    let pid = n.player_id("b", p);
    assert_eq!(
        n.take("c"),
        vec![to(sfu, json!({"type": "playerConnected", "playerId": pid, "dataChannel": true, "sfu": false}))]
    );
    // The streamer's layer preference reaches the remote SFU; the SFU's offer its remote player.
    n.send("a", s, json!({"type": "layerPreference", "spatialLayer": 1, "temporalLayer": 0, "playerId": sfu_pid}));
    assert_eq!(
        n.take("c"),
        vec![to(sfu, json!({"type": "layerPreference", "spatialLayer": 1, "temporalLayer": 0, "playerId": sfu_pid}))]
    );
    n.send("c", sfu, json!({"type": "offer", "playerId": pid, "sdp": "v=0"}));
    assert_eq!(n.take("b"), vec![to(p, json!({"type": "offer", "sdp": "v=0"}))]);

    // The streamer goes: the SFU stays (unlisted) and its players on b are ended.
    n.run("a", |r| r.disconnect(s));
    assert_eq!(
        n.take("c"),
        vec![
            to(sfu, json!({"type": "streamerDisconnected"})),
            to(sfu, json!({"type": "playerDisconnected", "playerId": pid})),
        ]
    );
    assert_eq!(
        n.take("b"),
        vec![to(p, json!({"type": "streamerDisconnected"})), closed(p, close::NORMAL, "streamer disconnected")]
    );
    assert!(n.routers["c"].registry().get(sfu).is_some_and(|e| !e.sfu_streaming));
}

#[test]
fn a_conflicting_id_is_renamed_with_notice_to_streamer_and_subscribers() {
    let mut n = Nodes::new(&["a", "b"]);
    let s = n.streamer("b", "A", 5);
    let p = n.connect("b", Role::Player);
    n.send("b", p, json!({"type": "subscribe", "streamerId": "A"}));
    n.take("b");
    n.run("b", |r| r.rename_streamer(s, "A1", 6));
    assert_eq!(
        n.take("b"),
        vec![
            to(p, json!({"type": "streamerIdChanged", "newID": "A1"})),
            to(s, json!({"type": "endpointIdConfirm", "committedId": "A1"})),
        ]
    );
}

#[test]
fn junk_from_another_node_is_counted_not_followed() {
    let mut n = Nodes::new(&["a", "b"]);
    n.streamer("a", "A", 1);
    let before = n.routers["a"].counters().dropped_total();
    n.run("a", |r| {
        let mut out = r.receive_from_node("x", NodeMessage::Leave { player_id: "Player9".into() });
        out.extend(r.receive_from_node("x", NodeMessage::ToPlayer { player_id: "nobody".into(), frame: "{".into() }));
        out.extend(
            r.receive_from_node("x", NodeMessage::FromPlayer { player_id: "Player9".into(), frame: "not json".into() }),
        );
        out
    });
    assert_eq!(n.take("a"), vec![]);
    assert_eq!(n.routers["a"].counters().dropped_total(), before + 3);
}
