//! The routing core: a state machine with no sockets and no clock.
//!
//! The transport feeds it three kinds of input — a connection opened
//! ([`Router::connect`]), a frame received ([`Router::receive`]), a connection
//! gone ([`Router::disconnect`]) — and sends out the [`Action`]s it returns, in
//! order. Everything in sections 2–7 and 9 of `signalling.md` that does not need
//! a socket lives here. An [`Action::Close`] means the router has already
//! forgotten that connection: calling `disconnect` for it later is a no-op.
//!
//! In a cluster ([`cluster`]) the router also takes messages from other nodes
//! and returns [`Action::ToNode`]; it knows other nodes by name only.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use proto::close::Close;
use proto::{Incoming, Message, ParseError};
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use crate::cluster::{Directory, NodeId, NodeMessage};
use crate::config::{ConsoleMessages, TurnConfig};
use crate::registry::{ConnId, Registry, Role};
use crate::snapshot::Snapshot;

mod cluster;
pub use cluster::Claim;

/// One frame of UTF-8 JSON text, cheap to clone (broadcasts share it).
pub type Frame = Bytes;

/// What the transport must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Queue this text frame to that connection.
    Send { to: ConnId, frame: Frame },
    /// Close that connection for this cause (after what is queued).
    Close { conn: ConnId, close: Close },
    /// Tell another node of the cluster.
    ToNode { node: NodeId, message: NodeMessage },
}

/// Behaviour switches that come from the configuration.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    pub max_players: usize,
    pub peer_options: Map<String, Value>,
    pub send_player_count: bool,
    pub console_messages: ConsoleMessages,
    /// Streamer ids a streamer may claim (`--streamer_ids`); `None` = any.
    pub streamer_ids: Option<BTreeSet<String>>,
    /// Mint TURN credentials into each connection's `config`.
    pub turn: Option<TurnConfig>,
    /// In a cluster: this node's name.
    pub node_id: Option<NodeId>,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            max_players: 0,
            peer_options: Map::new(),
            send_player_count: true,
            console_messages: ConsoleMessages::Off,
            streamer_ids: None,
            turn: None,
            node_id: None,
        }
    }
}

/// What the router counted, for logs, metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub received: u64,
    pub forwarded: u64,
    /// Dropped frames by reason (`not_json`, `not_allowed`, `no_such_player`, …).
    pub dropped: BTreeMap<&'static str, u64>,
    /// Parsed incoming messages by type.
    pub received_by_type: BTreeMap<&'static str, u64>,
    /// Outgoing messages (generated and forwarded) by type.
    pub sent_by_type: BTreeMap<&'static str, u64>,
}

impl Counters {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// The registry plus the rules of the protocol.
#[derive(Debug)]
pub struct Router {
    registry: Registry,
    options: RouterOptions,
    counters: Counters,
    /// The `config` frame, identical for every peer: built once.
    config_frame: Frame,
    /// Cluster: other nodes' streamers.
    directory: Directory,
    /// Cluster: the bus to other nodes works (else remote subscribes fail at once).
    bus_up: bool,
    /// Cluster: remote connections' node and player id, kept until the
    /// actions that close them have been addressed.
    remote_index: HashMap<ConnId, (NodeId, String)>,
    /// Cluster: remote connections [`Router::finish`] must look at even if no
    /// action addresses them (gone, or left).
    recheck: Vec<ConnId>,
}

/// Not derived: a derived default would greet every peer with an empty
/// `config` frame.
impl Default for Router {
    fn default() -> Self {
        Router::new(RouterOptions::default())
    }
}

/// Shorthand for a frame from a typed message.
fn frame(message: &Message) -> Frame {
    Bytes::from(message.to_json())
}

impl Router {
    pub fn new(options: RouterOptions) -> Self {
        let config_frame = frame(&Message::config(Value::Object(options.peer_options.clone())));
        Router {
            registry: Registry::default(),
            options,
            counters: Counters::default(),
            config_frame,
            directory: Directory::default(),
            bus_up: true,
            remote_index: HashMap::new(),
            recheck: Vec::new(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn snapshot(&self) -> Snapshot {
        self.registry.snapshot(self.options.node_id.as_deref())
    }

    /// A human label for logs: the player or streamer id.
    pub fn label(&self, conn: ConnId) -> String {
        match self.registry.get(conn) {
            Some(e) => match e.role {
                Role::Player => e.player_id.clone().unwrap_or_default(),
                Role::Streamer | Role::Sfu => e.streamer_id.clone().unwrap_or_default(),
            },
            None => format!("conn{}", conn.0),
        }
    }

    fn drop_frame(&mut self, reason: &'static str) {
        *self.counters.dropped.entry(reason).or_insert(0) += 1;
    }

    /// A new connection on one of the listeners: register it and greet it
    /// (SEED order: `config` then `identify`; `config` then `playerCount`).
    /// At time 0: TURN credentials minted here are already expired, so the
    /// transport uses [`Router::connect_at`]; this is for tests without TURN.
    pub fn connect(&mut self, role: Role, remote_address: String) -> (ConnId, Vec<Action>) {
        self.connect_at(role, remote_address, 0)
    }

    /// [`Router::connect`] at `now_unix` (seconds since 1970), the time TURN
    /// credentials are minted from.
    pub fn connect_at(&mut self, role: Role, remote_address: String, now_unix: u64) -> (ConnId, Vec<Action>) {
        let conn = self.registry.add(role, remote_address);
        self.count_out("config");
        let mut out = vec![Action::Send { to: conn, frame: self.config_frame_for(conn, now_unix) }];
        match role {
            Role::Streamer | Role::Sfu => out.push(self.send(conn, &Message::Identify)),
            Role::Player => {
                if self.options.send_player_count {
                    let count = self.registry.player_count() as u64;
                    out.push(self.send(conn, &Message::PlayerCount { count }));
                }
            }
        }
        debug!(conn = conn.0, role = role.as_str(), id = %self.label(conn), "connected");
        (conn, out)
    }

    /// The shared `config` frame, or one with this connection's own TURN credentials.
    fn config_frame_for(&self, conn: ConnId, now_unix: u64) -> Frame {
        let Some(turn) = &self.options.turn else { return self.config_frame.clone() };
        let (username, credential) = crate::turn::credentials(turn, &self.label(conn), now_unix);
        match crate::turn::inject(&self.options.peer_options, &username, &credential) {
            Some(options) => frame(&Message::config(Value::Object(options))),
            None => self.config_frame.clone(),
        }
    }

    fn count_out(&mut self, type_name: &'static str) {
        *self.counters.sent_by_type.entry(type_name).or_insert(0) += 1;
    }

    fn send(&mut self, to: ConnId, message: &Message) -> Action {
        self.count_out(message.type_name());
        self.log_out(to, message.type_name(), None);
        Action::Send { to, frame: frame(message) }
    }

    fn log_in(&self, from: ConnId, text: &[u8]) {
        match self.options.console_messages {
            ConsoleMessages::Off => {}
            ConsoleMessages::Basic => {
                let kind = Incoming::parse(text).map(|m| m.message.type_name()).unwrap_or("(invalid)");
                info!("◀ {} {}", self.label(from), kind);
            }
            ConsoleMessages::Verbose => info!("◀ {} {}", self.label(from), String::from_utf8_lossy(text)),
            ConsoleMessages::Formatted => {
                let pretty = serde_json::from_slice::<Value>(text)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_else(|| String::from_utf8_lossy(text).into_owned());
                info!("◀ {}\n{}", self.label(from), pretty);
            }
        }
    }

    fn log_out(&self, to: ConnId, type_name: &str, frame: Option<&Frame>) {
        match self.options.console_messages {
            ConsoleMessages::Off => {}
            ConsoleMessages::Basic => info!("▶ {} {}", self.label(to), type_name),
            ConsoleMessages::Verbose | ConsoleMessages::Formatted => match frame {
                Some(f) => info!("▶ {} {}", self.label(to), String::from_utf8_lossy(f)),
                None => info!("▶ {} {}", self.label(to), type_name),
            },
        }
    }

    fn forward(&mut self, to: ConnId, type_name: &'static str, frame: Frame) -> Action {
        self.counters.forwarded += 1;
        self.count_out(type_name);
        self.log_out(to, type_name, Some(&frame));
        Action::Send { to, frame }
    }

    /// One frame from a connection (text, or binary carrying JSON).
    pub fn receive(&mut self, from: ConnId, text: Frame) -> Vec<Action> {
        self.receive_claimed(from, text, None)
    }

    /// [`Router::receive`], with the cluster's answer to an `endpointId` in
    /// the frame (the transport asks the cluster before handing it over).
    pub fn receive_claimed(&mut self, from: ConnId, text: Frame, claim: Option<Claim>) -> Vec<Action> {
        let out = self.receive_inner(from, text, claim);
        self.finish(out)
    }

    fn receive_inner(&mut self, from: ConnId, text: Frame, claim: Option<Claim>) -> Vec<Action> {
        let Some(role) = self.registry.get(from).map(|e| e.role) else {
            return Vec::new();
        };
        self.counters.received += 1;
        self.log_in(from, &text);
        let incoming = match Incoming::parse_frame(text.clone()) {
            Ok(incoming) => incoming,
            Err(err) => return self.bad_input(from, err),
        };
        *self.counters.received_by_type.entry(incoming.message.type_name()).or_insert(0) += 1;
        let mut out = Vec::new();
        match role {
            Role::Streamer => self.route_from_streamer(from, incoming, text, claim, &mut out),
            Role::Player => self.route_from_player(from, incoming, &mut out),
            Role::Sfu => self.route_from_sfu(from, incoming, text, claim, &mut out),
        }
        out
    }

    fn bad_input(&mut self, from: ConnId, err: ParseError) -> Vec<Action> {
        warn!(peer = %self.label(from), error = %err, "dropped invalid message");
        self.drop_frame(err.kind());
        // `subscribe` without a usable id still gets an answer, from a peer
        // that may subscribe (a streamer's `subscribe` is not allowed at all).
        let may_subscribe = self.registry.get(from).is_some_and(|e| e.role.is_player_side());
        if may_subscribe && err.type_name() == Some("subscribe") {
            let message = Message::SubscribeFailed { message: "subscribe needs a streamerId (string).".to_string() };
            return vec![self.send(from, &message)];
        }
        Vec::new()
    }

    fn not_allowed(&mut self, from: ConnId, type_name: &str) {
        let role = self.registry.get(from).map(|e| e.role.as_str()).unwrap_or("?");
        warn!(peer = %self.label(from), "a {role} may not send {type_name}; dropped");
        self.drop_frame("not_allowed");
    }

    // ----- messages any peer may send -------------------------------------

    /// Handle the types every role shares; returns false when `message` is
    /// not one of them.
    fn route_common(&mut self, from: ConnId, message: &Message, out: &mut Vec<Action>) -> bool {
        match message {
            Message::Ping { time } => {
                out.push(self.send(from, &Message::Pong { time: time.unwrap_or(0) }));
                true
            }
            // A reply to a keepalive of the peer's own making: nothing to do.
            Message::Pong { .. } => true,
            Message::Stats { data } => {
                info!(peer = %self.label(from), "stats: {data}");
                true
            }
            _ => false,
        }
    }

    // ----- streamer ---------------------------------------------------------

    fn route_from_streamer(
        &mut self,
        from: ConnId,
        incoming: Incoming,
        text: Frame,
        claim: Option<Claim>,
        out: &mut Vec<Action>,
    ) {
        let message = &incoming.message;
        if self.route_common(from, message, out) {
            return;
        }
        match message {
            Message::EndpointId { id, .. } => self.endpoint_id(from, id.as_deref(), claim, out),
            Message::Offer { .. } | Message::Answer { .. } | Message::IceCandidate { .. } => {
                // Kept as sent, playerId included: forward the original bytes.
                if let Some(player) = self.own_player(from, message) {
                    out.push(self.forward(player, message.type_name(), text));
                }
            }
            Message::DisconnectPlayer { reason, .. } => {
                if let Some(player) = self.own_player(from, message) {
                    self.disconnect_player(player, Close::DisconnectedByStreamer(reason.clone()), out);
                }
            }
            Message::LayerPreference { .. } => {
                let sfus: Vec<ConnId> =
                    self.registry.get(from).map(|e| e.subscribers.iter().copied().collect()).unwrap_or_default();
                for sfu in sfus {
                    if self.registry.get(sfu).map(|e| e.role) == Some(Role::Sfu) {
                        out.push(self.forward(sfu, "layerPreference", text.clone()));
                    }
                }
            }
            other => self.not_allowed(from, other.type_name()),
        }
    }

    /// The subscriber a streamer-side message addresses by `playerId`, if it
    /// exists and is subscribed to `from` (FIX: no addressing other
    /// streamers' players).
    fn own_player(&mut self, from: ConnId, message: &Message) -> Option<ConnId> {
        let Some(player_id) = message.player_id() else {
            warn!(peer = %self.label(from), "{} without playerId; dropped", message.type_name());
            self.drop_frame("missing_player_id");
            return None;
        };
        let Some(player) = self.registry.player_by_id(player_id) else {
            warn!(peer = %self.label(from), "{} for unknown player {player_id}; dropped", message.type_name());
            self.drop_frame("no_such_player");
            return None;
        };
        if self.registry.get(player).and_then(|p| p.subscribed_to) != Some(from) {
            warn!(peer = %self.label(from), "{} for {player_id}, who is not its subscriber; dropped", message.type_name());
            self.drop_frame("not_subscriber");
            return None;
        }
        Some(player)
    }

    fn endpoint_id(&mut self, from: ConnId, requested: Option<&str>, claim: Option<Claim>, out: &mut Vec<Action>) {
        let refusal = match claim {
            Some(Claim::Taken) => Some(Close::StreamerIdInUse),
            _ => self.refuse_streamer_id(from, requested),
        };
        if let Some(close) = refusal {
            warn!(peer = %self.label(from), "{}; closing with {}", close.reason(), close.code());
            self.drop_frame(close.label());
            out.push(Action::Close { conn: from, close });
            self.remove(from, out);
            return;
        }
        let (requested, order) = match &claim {
            // The cluster decided (the same rule, over every node's ids).
            Some(Claim::Granted { id, order }) => (Some(id.as_str()), Some(*order)),
            _ => (requested, None),
        };
        let Some((old, committed)) = self.registry.commit_streamer_id(from, requested) else {
            return;
        };
        if let Some(entry) = self.registry.get_mut(from) {
            entry.order = order.or(entry.order);
        }
        if old != committed {
            info!("streamer {old} is now {committed}");
            // Subscribers learn the new id before the streamer's confirmation.
            let changed = frame(&Message::StreamerIdChanged { new_id: committed.clone() });
            let subscribers: Vec<ConnId> =
                self.registry.get(from).map(|e| e.subscribers.iter().copied().collect()).unwrap_or_default();
            for s in subscribers {
                self.count_out("streamerIdChanged");
                self.log_out(s, "streamerIdChanged", None);
                out.push(Action::Send { to: s, frame: changed.clone() });
            }
        } else {
            info!("streamer {committed} identified");
        }
        out.push(self.send(from, &Message::EndpointIdConfirm { committed_id: committed }));
    }

    /// With `--streamer_ids`, a streamer (SFUs are authorised by their token
    /// instead) may only hold an id on the list, exactly as asked: no
    /// generated id for an empty request and no `A1` when `A` is taken, so
    /// nobody can squat a listed id and nobody gets an unlisted one.
    fn refuse_streamer_id(&self, from: ConnId, requested: Option<&str>) -> Option<Close> {
        let allowed = self.options.streamer_ids.as_ref()?;
        if self.registry.get(from)?.role != Role::Streamer {
            return None;
        }
        let requested = requested.map(str::trim).unwrap_or_default();
        if !allowed.contains(requested) {
            return Some(Close::StreamerIdNotAllowed);
        }
        match self.registry.streamer_by_id(requested) {
            Some(holder) if holder != from => Some(Close::StreamerIdInUse),
            _ => None,
        }
    }

    /// Close a connection on the operator's request (admin API): its peers
    /// are told as if its socket had closed.
    pub fn close_conn(&mut self, conn: ConnId, close: Close) -> Vec<Action> {
        let mut out = Vec::new();
        if self.registry.get(conn).is_some() {
            out.push(Action::Close { conn, close });
            self.remove(conn, &mut out);
        }
        self.finish(out)
    }

    /// Close a player on its streamer's request (1011 + reason), then tell
    /// the streamer it is gone.
    fn disconnect_player(&mut self, player: ConnId, close: Close, out: &mut Vec<Action>) {
        out.push(Action::Close { conn: player, close });
        self.remove(player, out);
    }

    // ----- player -------------------------------------------------------------

    fn route_from_player(&mut self, from: ConnId, incoming: Incoming, out: &mut Vec<Action>) {
        if self.route_common(from, &incoming.message, out) {
            return;
        }
        match &incoming.message {
            Message::ListStreamers => out.push(self.list_streamers(from)),
            Message::Subscribe { streamer_id } => {
                let streamer_id = streamer_id.clone();
                self.subscribe(from, &streamer_id, out);
            }
            Message::Unsubscribe => self.unsubscribe(from, out),
            Message::Offer { .. }
                if self
                    .registry
                    .get(from)
                    .is_some_and(|e| e.subscribed_to.is_none() && e.remote_subscription.is_none()) =>
            {
                self.legacy_offer(from, incoming, out)
            }
            Message::Offer { .. }
            | Message::Answer { .. }
            | Message::IceCandidate { .. }
            | Message::DataChannelRequest { .. }
            | Message::PeerDataChannelsReady { .. }
            | Message::LayerPreference { .. } => self.forward_to_own_streamer(from, incoming, out),
            other => self.not_allowed(from, other.type_name()),
        }
    }

    fn list_streamers(&mut self, from: ConnId) -> Action {
        let asking_sfu = self.registry.get(from).map(|e| e.role) == Some(Role::Sfu);
        let ids = self.listed_ids(asking_sfu);
        self.send(from, &Message::StreamerList { ids })
    }

    fn subscribe(&mut self, from: ConnId, streamer_id: &str, out: &mut Vec<Action>) {
        let asking_sfu = self.registry.get(from).map(|e| e.role) == Some(Role::Sfu);
        let target = self.registry.streamer_by_id(streamer_id).filter(|s| {
            *s != from && self.registry.get(*s).is_some_and(|e| if asking_sfu { e.identified } else { e.listed() })
        });
        let Some(streamer) = target else {
            if self.subscribe_remote(from, streamer_id, asking_sfu, out) {
                return;
            }
            let message = Message::SubscribeFailed { message: format!("Streamer {streamer_id} does not exist.") };
            out.push(self.send(from, &message));
            return;
        };
        // An existing subscription ends first, the same streamer included.
        self.unsubscribe(from, out);
        let max = self.options.max_players;
        let subscribers = self.registry.get(streamer).map_or(0, |e| e.subscribers.len());
        if max > 0 && subscribers >= max {
            let message =
                Message::SubscribeFailed { message: format!("Streamer {streamer_id} is full. Max players = {max}.") };
            out.push(self.send(from, &message));
            return;
        }
        self.registry.subscribe(from, streamer);
        let player_id = self.registry.get(from).and_then(|e| e.player_id.clone()).unwrap_or_default();
        info!("{player_id} subscribed to {streamer_id}");
        let connected = Message::PlayerConnected { player_id, data_channel: true, sfu: asking_sfu };
        out.push(self.send(streamer, &connected));
    }

    fn unsubscribe(&mut self, player: ConnId, out: &mut Vec<Action>) {
        self.leave_remote(player, out);
        if let Some(streamer) = self.registry.unsubscribe(player) {
            let player_id = self.registry.get(player).and_then(|e| e.player_id.clone()).unwrap_or_default();
            out.push(self.send(streamer, &Message::PlayerDisconnected { player_id }));
        }
    }

    /// UE 4.27 players send their offer without subscribing: subscribe them
    /// to the first streaming streamer, then forward the offer.
    fn legacy_offer(&mut self, from: ConnId, incoming: Incoming, out: &mut Vec<Action>) {
        let Some(streamer) = self.registry.first_listed_streamer() else {
            warn!(peer = %self.label(from), "legacy offer but no streamer; closing");
            out.push(Action::Close { conn: from, close: Close::NoStreamer });
            self.remove(from, out);
            return;
        };
        let streamer_id = self.registry.get(streamer).and_then(|e| e.streamer_id.clone()).unwrap_or_default();
        self.subscribe(from, &streamer_id, out);
        if self.registry.get(from).and_then(|e| e.subscribed_to).is_none() {
            // FIX: a full streamer closes only this player (Wilbur crashes).
            out.push(Action::Close { conn: from, close: Close::StreamerFull });
            self.remove(from, out);
            return;
        }
        self.forward_to_own_streamer(from, incoming, out);
    }

    /// Player → its streamer (or SFU), with `playerId` set to the sender's id.
    fn forward_to_own_streamer(&mut self, from: ConnId, mut incoming: Incoming, out: &mut Vec<Action>) {
        if self.relay_to_remote_streamer(from, || incoming.to_json(), out) {
            return;
        }
        let Some(entry) = self.registry.get(from) else { return };
        let Some(streamer) = entry.subscribed_to else {
            warn!(peer = %self.label(from), "{} from a player that is not subscribed; dropped", incoming.message.type_name());
            self.drop_frame("not_subscribed");
            return;
        };
        incoming.set_str("playerId", entry.player_id.as_deref().unwrap_or_default());
        out.push(self.forward(streamer, incoming.message.type_name(), Bytes::from(incoming.to_json())));
    }

    // ----- SFU -----------------------------------------------------------------

    fn route_from_sfu(
        &mut self,
        from: ConnId,
        mut incoming: Incoming,
        text: Frame,
        claim: Option<Claim>,
        out: &mut Vec<Action>,
    ) {
        if self.route_common(from, &incoming.message, out) {
            return;
        }
        match &incoming.message {
            // As a streamer.
            Message::EndpointId { id, .. } => {
                let id = id.clone();
                self.endpoint_id(from, id.as_deref(), claim, out)
            }
            Message::StartStreaming => {
                if let Some(e) = self.registry.get_mut(from) {
                    e.sfu_streaming = true;
                }
            }
            Message::StopStreaming => self.sfu_stop_streaming(from, out),
            Message::Offer { .. } | Message::PeerDataChannels { .. } => {
                if let Some(player) = self.own_player(from, &incoming.message) {
                    incoming.remove("playerId");
                    let type_name = incoming.message.type_name();
                    out.push(self.forward(player, type_name, Bytes::from(incoming.to_json())));
                }
            }
            Message::DisconnectPlayer { reason, .. } => {
                if let Some(player) = self.own_player(from, &incoming.message) {
                    self.disconnect_player(player, Close::DisconnectedByStreamer(reason.clone()), out);
                }
            }
            Message::IceCandidate { player_id, .. } => {
                // Extension (Epic's SFU is ICE-lite and never trickles): a
                // candidate naming one of the SFU's players goes to that player,
                // any other to the streamer the SFU subscribed to.
                let downstream = player_id
                    .as_deref()
                    .and_then(|id| self.registry.player_by_id(id))
                    .filter(|p| self.registry.get(*p).and_then(|e| e.subscribed_to) == Some(from));
                match downstream {
                    Some(player) => {
                        incoming.remove("playerId");
                        out.push(self.forward(player, "iceCandidate", Bytes::from(incoming.to_json())));
                    }
                    None => self.forward_to_own_streamer(from, incoming, out),
                }
            }
            // As a player.
            Message::ListStreamers => out.push(self.list_streamers(from)),
            Message::Subscribe { streamer_id } => {
                let streamer_id = streamer_id.clone();
                self.subscribe(from, &streamer_id, out);
            }
            Message::Unsubscribe => self.unsubscribe(from, out),
            Message::Answer { player_id, .. } => {
                // The message's own playerId when it has one, else the SFU's.
                if player_id.is_some() {
                    self.forward_upstream_unchanged(from, "answer", text, out);
                } else {
                    self.forward_to_own_streamer(from, incoming, out);
                }
            }
            Message::StreamerDataChannels { .. } => {
                let sfu_id = self.registry.get(from).and_then(|e| e.player_id.clone()).unwrap_or_default();
                incoming.set_str("sfuId", &sfu_id);
                let frame = Bytes::from(incoming.to_json());
                self.forward_upstream_unchanged(from, "streamerDataChannels", frame, out);
            }
            other => self.not_allowed(from, other.type_name()),
        }
    }

    /// SFU → the streamer it subscribed to, the frame unchanged.
    fn forward_upstream_unchanged(
        &mut self,
        from: ConnId,
        type_name: &'static str,
        frame: Frame,
        out: &mut Vec<Action>,
    ) {
        if self.relay_to_remote_streamer(from, || String::from_utf8_lossy(&frame).into_owned(), out) {
            return;
        }
        match self.registry.get(from).and_then(|e| e.subscribed_to) {
            Some(streamer) => out.push(self.forward(streamer, type_name, frame)),
            None => {
                warn!(peer = %self.label(from), "{type_name} from an SFU that is not subscribed; dropped");
                self.drop_frame("not_subscribed");
            }
        }
    }

    /// `stopStreaming`: unlist the SFU and end its players' sessions; the SFU
    /// gets `playerDisconnected` for each.
    fn sfu_stop_streaming(&mut self, sfu: ConnId, out: &mut Vec<Action>) {
        if let Some(e) = self.registry.get_mut(sfu) {
            e.sfu_streaming = false;
        }
        self.end_subscriptions(sfu, &Close::SfuStopped, true, out);
    }

    /// Every subscriber of `streamer` gets `streamerDisconnected`. Players are
    /// then closed for `close` (a normal closure); SFUs stay connected, unlisted,
    /// and their own players are ended the same way. `tell_streamer`: the
    /// streamer is still connected and gets `playerDisconnected` for each.
    fn end_subscriptions(&mut self, streamer: ConnId, close: &Close, tell_streamer: bool, out: &mut Vec<Action>) {
        let subscribers: Vec<ConnId> =
            self.registry.get(streamer).map(|e| e.subscribers.iter().copied().collect()).unwrap_or_default();
        for sub in subscribers {
            // Ending an SFU's subscriptions below can come back round a ring of
            // SFUs and end some of these already (even close them): skip those.
            if self.registry.get(sub).and_then(|e| e.subscribed_to) != Some(streamer) {
                continue;
            }
            self.registry.unsubscribe(sub);
            out.push(self.send(sub, &Message::StreamerDisconnected));
            if tell_streamer {
                let player_id = self.registry.get(sub).and_then(|e| e.player_id.clone()).unwrap_or_default();
                out.push(self.send(streamer, &Message::PlayerDisconnected { player_id }));
            }
            if self.registry.get(sub).map(|e| e.role) == Some(Role::Sfu) {
                if let Some(e) = self.registry.get_mut(sub) {
                    e.sfu_streaming = false;
                }
                self.end_subscriptions(sub, close, true, out);
            } else {
                out.push(Action::Close { conn: sub, close: close.clone() });
                self.remove(sub, out);
            }
        }
    }

    // ----- disconnects -----------------------------------------------------------

    /// The connection's socket is gone. Tell everyone concerned.
    pub fn disconnect(&mut self, conn: ConnId) -> Vec<Action> {
        let mut out = Vec::new();
        self.remove(conn, &mut out);
        self.finish(out)
    }

    /// Forget `conn`: its streamer gets `playerDisconnected`, its subscribers
    /// `streamerDisconnected` (see [`Router::end_subscriptions`]).
    fn remove(&mut self, conn: ConnId, out: &mut Vec<Action>) {
        if self.registry.get(conn).is_none() {
            return;
        }
        debug!(conn = conn.0, id = %self.label(conn), "removing");
        self.unsubscribe(conn, out);
        self.end_subscriptions(conn, &Close::StreamerDisconnected, false, out);
        self.registry.remove(conn);
    }
}

#[cfg(test)]
mod tests;
