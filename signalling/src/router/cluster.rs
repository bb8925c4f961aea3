//! The router's side of a cluster: other nodes' streamers in the listing,
//! subscriptions that cross nodes, and what to do when a node goes.
//!
//! A local player subscribed to a streamer of node A has a
//! [`RemoteSubscription`]; what it sends its streamer goes to A as
//! [`NodeMessage::FromPlayer`]. On A the player is a remote connection (an
//! entry with `node` set) that the usual rules route; what A's router sends
//! or closes there leaves as [`NodeMessage::ToPlayer`] / [`NodeMessage::ClosePlayer`]
//! (mapped in [`Router::finish`]). The router never waits on the bus: it
//! returns [`Action::ToNode`] and takes [`Router::receive_from_node`].

use bytes::Bytes;
use proto::close::Close;
use proto::{Incoming, Message};
use tracing::{info, warn};

use super::{Action, Router};
use crate::cluster::{Directory, NodeMessage, StreamerRecord};
use crate::registry::{ConnId, RemoteSubscription, Role};

/// The cluster's answer to a streamer's `endpointId`, asked before the
/// router sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This id (the requested one, or the first free `requested1`, `requested2`, …
    /// over every node) is now this streamer's; `order` is its place in listings.
    Granted { id: String, order: u64 },
    /// `--streamer_ids`: the exact id is held on another node.
    Taken,
}

/// One of this node's identified streamers, as it publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStreamer {
    pub conn: ConnId,
    pub id: String,
    pub order: Option<u64>,
    pub listed: bool,
    pub sfu: bool,
    pub subscribers: usize,
}

impl Router {
    /// This node's name, in a cluster.
    pub fn node_id(&self) -> Option<&str> {
        self.options.node_id.as_deref()
    }

    /// Replace what is known of other nodes' streamers (every heartbeat), and
    /// sweep remote connections [`Router::finish`] did not get to.
    pub fn set_directory(&mut self, directory: Directory) {
        self.directory = directory;
        self.sweep_remote();
    }

    /// Forget remote connections that are no longer subscribed here (the
    /// ones [`Router::finish`] did not see go).
    pub fn sweep_remote(&mut self) {
        for conn in self.registry.unsubscribed_remote_conns() {
            self.registry.remove(conn);
        }
        let registry = &self.registry;
        self.remote_index.retain(|conn, _| registry.get(*conn).is_some());
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Whether the bus works; while it does not, subscribing to another
    /// node's streamer fails at once with a reason.
    pub fn set_bus_up(&mut self, up: bool) {
        self.bus_up = up;
    }

    /// Number players from cluster-granted blocks, and from `fallback` when
    /// they run out while the bus is down.
    pub fn use_cluster_player_ids(&mut self, fallback: std::ops::Range<u64>) {
        self.registry.use_cluster_player_ids(fallback);
    }

    pub fn grant_player_ids(&mut self, block: std::ops::Range<u64>) {
        self.registry.grant_player_ids(block);
    }

    pub fn player_ids_left(&self) -> u64 {
        self.registry.player_ids_left()
    }

    /// This node's identified streamers and SFUs, in connect order.
    pub fn local_streamers(&self) -> Vec<LocalStreamer> {
        self.registry
            .streamer_side()
            .filter(|(_, e)| e.identified)
            .filter_map(|(conn, e)| {
                Some(LocalStreamer {
                    conn,
                    id: e.streamer_id.clone()?,
                    order: e.order,
                    listed: e.listed(),
                    sfu: e.role == Role::Sfu,
                    subscribers: e.subscribers.len(),
                })
            })
            .collect()
    }

    /// Record the cluster-wide order of a streamer registered after the fact
    /// (its id was decided while the bus was down).
    pub fn set_order(&mut self, conn: ConnId, order: u64) {
        if let Some(e) = self.registry.get_mut(conn) {
            e.order = Some(order);
        }
    }

    /// The ids a player (or, with `asking_sfu`, an SFU) is offered: this
    /// node's and the directory's, in registration order (connect order for
    /// ids registered while the bus was down, after the others).
    pub(super) fn listed_ids(&self, asking_sfu: bool) -> Vec<String> {
        let mut ids: Vec<(u64, usize, String)> = self
            .registry
            .streamer_side()
            .filter(|(_, e)| e.identified && (asking_sfu || e.listed()))
            .enumerate()
            .filter_map(|(seq, (_, e))| Some((e.order.unwrap_or(u64::MAX), seq, e.streamer_id.clone()?)))
            .collect();
        let local = ids.len();
        ids.extend(
            self.directory
                .records()
                // While the bus is down other nodes' streamers cannot be reached: not offered.
                .filter(|r| self.bus_up && (asking_sfu || r.listed) && self.registry.streamer_by_id(&r.id).is_none())
                .map(|r| (r.order, local, r.id.clone())),
        );
        ids.sort();
        ids.into_iter().map(|(_, _, id)| id).collect()
    }

    /// Subscribe a local player to another node's streamer, if `streamer_id`
    /// is one; false to let the caller answer "does not exist".
    pub(super) fn subscribe_remote(
        &mut self,
        from: ConnId,
        streamer_id: &str,
        asking_sfu: bool,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(own) = self.options.node_id.as_deref() else { return false };
        let Some(record) = self.directory.get(streamer_id) else { return false };
        // A remote connection subscribes only to this node's streamers.
        let local_peer = self.registry.get(from).is_some_and(|e| e.node.is_none());
        if record.node == own || !(asking_sfu || record.listed) || !local_peer {
            return false;
        }
        let node = record.node.clone();
        if !self.bus_up {
            self.drop_frame("bus_down");
            let message = Message::SubscribeFailed {
                message: format!("Streamer {streamer_id} is on node {node}, which cannot be reached now."),
            };
            out.push(self.send(from, &message));
            return true;
        }
        self.unsubscribe(from, out);
        let Some(entry) = self.registry.get_mut(from) else { return true };
        entry.remote_subscription =
            Some(RemoteSubscription { node: node.clone(), streamer_id: streamer_id.to_string() });
        let player_id = entry.player_id.clone().unwrap_or_default();
        let remote_address = entry.remote_address.clone();
        info!("{player_id} subscribes to {streamer_id} on node {node}");
        out.push(Action::ToNode {
            node,
            message: NodeMessage::Subscribe {
                player_id,
                sfu: asking_sfu,
                remote_address,
                streamer_id: streamer_id.into(),
            },
        });
        true
    }

    /// A frame a remotely subscribed player sends its streamer goes to the
    /// streamer's node; false when `from` is not subscribed remotely.
    pub(super) fn relay_to_remote_streamer(
        &mut self,
        from: ConnId,
        frame: impl FnOnce() -> String,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(entry) = self.registry.get(from) else { return false };
        let Some(remote) = &entry.remote_subscription else { return false };
        let (node, player_id) = (remote.node.clone(), entry.player_id.clone().unwrap_or_default());
        self.counters.forwarded += 1;
        out.push(Action::ToNode { node, message: NodeMessage::FromPlayer { player_id, frame: frame() } });
        true
    }

    /// End a local player's remote subscription, telling the streamer's node.
    pub(super) fn leave_remote(&mut self, player: ConnId, out: &mut Vec<Action>) {
        let Some(entry) = self.registry.get_mut(player) else { return };
        let Some(remote) = entry.remote_subscription.take() else { return };
        let player_id = entry.player_id.clone().unwrap_or_default();
        out.push(Action::ToNode { node: remote.node, message: NodeMessage::Leave { player_id } });
    }

    /// A message from node `node`.
    pub fn receive_from_node(&mut self, node: &str, message: NodeMessage) -> Vec<Action> {
        let mut out = Vec::new();
        match message {
            NodeMessage::Subscribe { player_id, sfu, remote_address, streamer_id } => {
                let conn = match self.registry.remote_player(node, &player_id) {
                    Some(conn) => Some(conn),
                    None => {
                        let role = if sfu { Role::Sfu } else { Role::Player };
                        let conn = self.registry.add_remote(role, remote_address, &player_id, node);
                        if let Some(conn) = conn {
                            self.remote_index.insert(conn, (node.to_string(), player_id.clone()));
                        }
                        conn
                    }
                };
                match conn {
                    Some(conn) => self.subscribe(conn, &streamer_id, &mut out),
                    None => {
                        warn!("node {node} subscribes {player_id}, an id held here; dropped");
                        self.drop_frame("remote_id_clash");
                    }
                }
            }
            NodeMessage::FromPlayer { player_id, frame } => match self.registry.remote_player(node, &player_id) {
                Some(conn) => out = self.receive_inner(conn, Bytes::from(frame), None),
                None => self.stale(node, "from_player", &player_id),
            },
            NodeMessage::Leave { player_id } => match self.registry.remote_player(node, &player_id) {
                Some(conn) => {
                    self.remove(conn, &mut out);
                    self.recheck.push(conn);
                }
                None => self.stale(node, "leave", &player_id),
            },
            NodeMessage::ToPlayer { player_id, frame } => match self.remotely_subscribed(node, &player_id) {
                Some(player) => self.deliver(player, Bytes::from(frame), &mut out),
                None => self.stale(node, "to_player", &player_id),
            },
            NodeMessage::ClosePlayer { player_id, close } => match self.remotely_subscribed(node, &player_id) {
                Some(player) => {
                    if let Some(e) = self.registry.get_mut(player) {
                        e.remote_subscription = None;
                    }
                    out.push(Action::Close { conn: player, close });
                    self.remove(player, &mut out);
                }
                None => self.stale(node, "close_player", &player_id),
            },
            NodeMessage::DirectoryChanged => {}
        }
        self.finish(out)
    }

    /// The local player `player_id`, if it is subscribed to a streamer of `node`.
    fn remotely_subscribed(&self, node: &str, player_id: &str) -> Option<ConnId> {
        let conn = self.registry.local_player(player_id)?;
        let subscribed = self.registry.get(conn)?.remote_subscription.as_ref().is_some_and(|r| r.node == node);
        subscribed.then_some(conn)
    }

    /// A message about a player the sender and this node no longer share
    /// (it left while the message was on its way): dropped and counted.
    fn stale(&mut self, node: &str, what: &str, player_id: &str) {
        tracing::debug!("{what} from node {node} for {player_id}, no longer shared; dropped");
        self.drop_frame("stale_remote");
    }

    /// A frame from a remote streamer to a local player, with what it means
    /// for the subscription applied first.
    fn deliver(&mut self, player: ConnId, frame: Bytes, out: &mut Vec<Action>) {
        let message = match Incoming::parse_frame(frame.clone()) {
            Ok(incoming) => incoming.message,
            Err(err) => {
                warn!(peer = %self.label(player), error = %err, "invalid frame from another node; dropped");
                self.drop_frame("bus_invalid_frame");
                return;
            }
        };
        let type_name = message.type_name();
        let sfu = self.registry.get(player).map(|e| e.role) == Some(Role::Sfu);
        match &message {
            // A player whose streamer went is closed next ([`NodeMessage::ClosePlayer`]),
            // addressed by the subscription: it stays until then.
            Message::StreamerDisconnected if !sfu => {}
            Message::StreamerDisconnected | Message::SubscribeFailed { .. } => {
                if let Some(e) = self.registry.get_mut(player) {
                    e.remote_subscription = None;
                }
            }
            Message::StreamerIdChanged { new_id } => {
                if let Some(remote) = self.registry.get_mut(player).and_then(|e| e.remote_subscription.as_mut()) {
                    remote.streamer_id = new_id.clone();
                }
            }
            _ => {}
        }
        out.push(self.forward(player, type_name, frame));
        // An SFU stays connected when its streamer goes: it is unlisted and its own players end.
        if sfu && matches!(message, Message::StreamerDisconnected) {
            if let Some(e) = self.registry.get_mut(player) {
                e.sfu_streaming = false;
            }
            self.end_subscriptions(player, &Close::StreamerDisconnected, true, out);
        }
    }

    /// Node `node` is gone (its heartbeat expired): its players leave our
    /// streamers, and ours subscribed to its streamers are ended as if each
    /// streamer had disconnected.
    pub fn node_gone(&mut self, node: &str) -> Vec<Action> {
        let mut out = Vec::new();
        for conn in self.registry.remote_conns_of(node) {
            self.remove(conn, &mut out);
            self.recheck.push(conn);
        }
        for player in self.registry.subscribed_on(node) {
            if let Some(e) = self.registry.get_mut(player) {
                e.remote_subscription = None;
            }
            out.push(self.send(player, &Message::StreamerDisconnected));
            if self.registry.get(player).map(|e| e.role) == Some(Role::Sfu) {
                if let Some(e) = self.registry.get_mut(player) {
                    e.sfu_streaming = false;
                }
                self.end_subscriptions(player, &Close::StreamerDisconnected, true, &mut out);
            } else {
                out.push(Action::Close { conn: player, close: Close::StreamerDisconnected });
                self.remove(player, &mut out);
            }
        }
        self.directory.remove_node(node);
        self.finish(out)
    }

    /// Rename a streamer whose id another node registered first (the
    /// cluster's conflict rule): its subscribers get `streamerIdChanged`, the
    /// streamer `endpointIdConfirm` with the id it now has.
    pub fn rename_streamer(&mut self, conn: ConnId, new_id: &str, order: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(old) = self.registry.force_streamer_id(conn, new_id) else { return out };
        warn!("streamer {old} is now {new_id}: another node registered {old} first");
        self.set_order(conn, order);
        let subscribers: Vec<ConnId> =
            self.registry.get(conn).map(|e| e.subscribers.iter().copied().collect()).unwrap_or_default();
        for s in subscribers {
            out.push(self.send(s, &Message::StreamerIdChanged { new_id: new_id.to_string() }));
        }
        out.push(self.send(conn, &Message::EndpointIdConfirm { committed_id: new_id.to_string() }));
        self.finish(out)
    }

    /// Address what goes to remote connections to their nodes, and forget
    /// remote connections that are no longer subscribed here. Proportional to
    /// the actions, not to the registry: this runs for every frame routed.
    pub(super) fn finish(&mut self, out: Vec<Action>) -> Vec<Action> {
        if self.remote_index.is_empty() {
            return out;
        }
        let mut touched = std::mem::take(&mut self.recheck);
        let out = out
            .into_iter()
            .map(|action| match action {
                Action::Send { to, frame } => match self.remote_index.get(&to) {
                    Some((node, player_id)) => {
                        touched.push(to);
                        Action::ToNode {
                            node: node.clone(),
                            message: NodeMessage::ToPlayer {
                                player_id: player_id.clone(),
                                frame: String::from_utf8_lossy(&frame).into_owned(),
                            },
                        }
                    }
                    None => Action::Send { to, frame },
                },
                Action::Close { conn, close } => match self.remote_index.get(&conn) {
                    Some((node, player_id)) => {
                        touched.push(conn);
                        Action::ToNode {
                            node: node.clone(),
                            message: NodeMessage::ClosePlayer { player_id: player_id.clone(), close },
                        }
                    }
                    None => Action::Close { conn, close },
                },
                other => other,
            })
            .collect();
        for conn in touched {
            match self.registry.get(conn) {
                None => drop(self.remote_index.remove(&conn)),
                Some(e) if e.node.is_some() && e.subscribed_to.is_none() => {
                    self.registry.remove(conn);
                    self.remote_index.remove(&conn);
                }
                Some(_) => {}
            }
        }
        out
    }
}

/// What a node publishes of one of its streamers.
impl LocalStreamer {
    pub fn record(&self, node: &str, order: u64) -> StreamerRecord {
        StreamerRecord {
            id: self.id.clone(),
            node: node.to_string(),
            order,
            listed: self.listed,
            sfu: self.sfu,
            subscribers: self.subscribers,
        }
    }
}
