//! The node's link to the cluster: three tasks beside the server.
//!
//! - the **publisher** takes the router's [`Action::ToNode`](crate::router::Action)
//!   messages from a bounded queue (the router never waits on Redis) and
//!   publishes them in order, in batches;
//! - the **listener** takes this node's inbox and the cluster's change
//!   notices from Redis pub/sub into the router;
//! - the **heartbeat**, every second (and at once when the node's streamers
//!   change), refreshes this node's keys, registers its streamers, reads the
//!   others', and tells the router which nodes have gone.
//!
//! While Redis is away every node keeps routing its own peers; see `CLUSTER.md`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::bus::{Bus, BusError, ClusterView, Registered, Registration};
use super::directory::StreamerRecord;
use super::directory::{Directory, NodeRecord};
use super::keys::Keys;
use super::matchmaking::{self, Candidate};
use super::wire::{self, NodeId, NodeMessage};
use super::{ClusterConfig, HEARTBEAT, NODE_TTL, PLAYER_ID_BLOCK};
use crate::registry::ConnId;
use crate::router::Claim;
use crate::snapshot::Snapshot;
use crate::transport::Shared;

/// How long one REST request keeps every node publishing its registry.
const SNAPSHOTS_WANTED: Duration = Duration::from_secs(10);

/// Other nodes' streamers are read in full at least this often (and at once
/// when a node says its streamers changed).
const DIRECTORY_REFRESH: Duration = Duration::from_secs(5);

/// Messages to other nodes waiting for the publisher; beyond this the router's
/// messages are dropped (and counted) rather than queued without bound.
const OUTBOX: usize = 65_536;

/// What the link counted, for `/metrics`.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Failed Redis operations (each failed batch of publishes counts once).
    pub bus_errors: AtomicU64,
    /// Messages to other nodes lost: queue full, or Redis down when published.
    pub dropped: AtomicU64,
    /// Junk or other-version messages read from the bus.
    pub junk: AtomicU64,
    /// The last heartbeat's round trip, microseconds.
    pub rtt_micros: AtomicU64,
}

#[derive(Debug, Default)]
struct LinkState {
    /// Other nodes as last read.
    nodes: Vec<NodeRecord>,
    snapshots: Vec<(NodeId, Snapshot)>,
    /// Since when Redis has answered (`None` while it does not).
    up_since: Option<Instant>,
}

/// This node's side of the cluster, shared by the server's tasks.
pub struct ClusterLink {
    pub config: ClusterConfig,
    bus: Bus,
    outbox: mpsc::Sender<(NodeId, NodeMessage)>,
    state: Mutex<LinkState>,
    pub stats: LinkStats,
    /// Wakes the heartbeat: something changed here or elsewhere.
    wake: Notify,
    bus_up: AtomicBool,
    /// Set once the first heartbeat has been tried.
    first_beat: Notify,
    first_beat_done: AtomicBool,
}

/// Where the queue of messages to other nodes starts, handed to the hub.
pub type Outbox = mpsc::Sender<(NodeId, NodeMessage)>;
/// Its other end, read by the publisher.
pub type OutboxReceiver = mpsc::Receiver<(NodeId, NodeMessage)>;

impl ClusterLink {
    /// The link and the receiving end of its outbox (for [`ClusterLink::start`]).
    pub fn new(config: ClusterConfig) -> Result<(Arc<ClusterLink>, OutboxReceiver), BusError> {
        let bus = Bus::new(&config.redis_url, Keys::new(&config.prefix), config.node_id.clone())?;
        let (tx, rx) = mpsc::channel(OUTBOX);
        let link = ClusterLink {
            config,
            bus,
            outbox: tx,
            state: Mutex::new(LinkState::default()),
            stats: LinkStats::default(),
            wake: Notify::new(),
            bus_up: AtomicBool::new(false),
            first_beat: Notify::new(),
            first_beat_done: AtomicBool::new(false),
        };
        Ok((Arc::new(link), rx))
    }

    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Redis answers.
    pub fn bus_up(&self) -> bool {
        self.bus_up.load(Ordering::Relaxed)
    }

    /// Start the publisher, the listener and the heartbeat.
    pub fn start(
        self: &Arc<Self>,
        shared: Weak<Shared>,
        outbox: mpsc::Receiver<(NodeId, NodeMessage)>,
        tasks: &tokio_util::task::TaskTracker,
        shutdown: CancellationToken,
        player_url: String,
    ) {
        tasks.spawn(self.clone().publisher(outbox, shutdown.clone()));
        tasks.spawn(self.clone().listener(shared.clone(), shutdown.clone()));
        tasks.spawn(self.clone().heartbeat(shared, shutdown, player_url));
    }

    /// Refuse to start as a node another running process already is: a record
    /// under this id that is still being refreshed. A record left by a node
    /// that died is waited out (it stops being refreshed). `Ok` when Redis
    /// does not answer (nothing to check against).
    pub async fn ensure_unique(&self) -> Result<(), String> {
        let node = &self.config.node_id;
        let Ok(Some(first)) = self.bus.node_record(node).await else { return Ok(()) };
        tokio::time::sleep(HEARTBEAT * 2 + Duration::from_millis(200)).await;
        match self.bus.node_record(node).await {
            Ok(Some(now)) if now.heartbeat_ms > first.heartbeat_ms => Err(format!(
                "node id {node} is in use by another running node (its player URL: {}); give each node its own --node_id",
                now.player_url
            )),
            _ => Ok(()),
        }
    }

    /// Wait (at most `limit`) for the first heartbeat, so that the node has
    /// player numbers and the directory before it takes connections.
    pub async fn first_beat(&self, limit: Duration) {
        let notified = self.first_beat.notified();
        if self.first_beat_done.load(Ordering::Acquire) {
            return;
        }
        let _ = tokio::time::timeout(limit, notified).await;
    }

    /// Something changed on this node: heartbeat now.
    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// Ask the cluster for a streamer id (see [`Bus::claim`]); `None` when
    /// Redis is away (the router then decides alone; conflicts are resolved
    /// when it returns).
    pub async fn claim(&self, conn: ConnId, requested: &str, held: &str, exact: bool) -> Option<Claim> {
        if !self.bus_up() || requested.trim().is_empty() {
            return None;
        }
        let owner = owner(&self.config.node_id, conn);
        match self.bus.claim(&owner, requested.trim(), held, exact, NODE_TTL).await {
            Ok(Some((id, order))) => Some(Claim::Granted { id, order }),
            Ok(None) => Some(Claim::Taken),
            Err(e) => {
                self.stats.bus_errors.fetch_add(1, Ordering::Relaxed);
                warn!("cluster: claiming streamer id {requested} failed ({e}); deciding locally");
                None
            }
        }
    }

    /// Other nodes as last read (for `/api/nodes`).
    pub fn nodes(&self) -> Vec<NodeRecord> {
        self.state().nodes.clone()
    }

    /// Read the other nodes' registries (each published at its heartbeat,
    /// so at most a second old); the REST API awaits this per request.
    pub async fn refresh_snapshots(&self) {
        // Nodes publish their registries only while someone reads them: the
        // first request after a quiet spell waits for one heartbeat.
        match self.bus.want_snapshots(SNAPSHOTS_WANTED).await {
            Ok(true) => tokio::time::sleep(HEARTBEAT + Duration::from_millis(300)).await,
            Ok(false) => {}
            Err(e) => {
                self.stats.bus_errors.fetch_add(1, Ordering::Relaxed);
                warn!("cluster: other nodes' registries unreadable ({e}); showing this node's");
                self.state().snapshots.clear();
                return;
            }
        }
        let nodes: Vec<NodeId> =
            self.state().nodes.iter().map(|n| n.node.clone()).filter(|n| *n != self.config.node_id).collect();
        match self.bus.snapshots(&nodes).await {
            Ok(snapshots) => self.state().snapshots = snapshots,
            Err(e) => {
                self.stats.bus_errors.fetch_add(1, Ordering::Relaxed);
                warn!("cluster: other nodes' registries unreadable ({e}); showing this node's");
                self.state().snapshots.clear();
            }
        }
    }

    /// The cluster's registry: this node's `local` one plus the others' as
    /// last read by [`ClusterLink::refresh_snapshots`].
    pub fn cluster_snapshot(&self, local: Snapshot) -> Snapshot {
        let mut all = local;
        for (node, s) in &self.state().snapshots {
            if *node == self.config.node_id {
                continue;
            }
            all.streamers.extend(s.streamers.iter().cloned());
            all.players.extend(s.players.iter().cloned());
        }
        all
    }

    // ----- matchmaking ------------------------------------------------------

    /// Pick and reserve a streamer with room, over the whole cluster:
    /// `Ok(None)` when none is free, `Err` when Redis is away.
    pub async fn pick(&self, shared: &Shared) -> Result<Option<(String, String)>, BusError> {
        let own = self.config.node_id.clone();
        let own_draining = shared.refusing_upgrades.load(Ordering::Relaxed);
        let draining: BTreeSet<String> =
            self.state().nodes.iter().filter(|n| n.draining).map(|n| n.node.clone()).collect();
        // Fresh subscriber counts (the router's directory may be seconds old).
        let records: Vec<StreamerRecord> = self.bus.read(true).await?.streamers.unwrap_or_default();
        let mut candidates: Vec<Candidate> = shared.hub.with_router(|r| {
            let local = r.local_streamers().into_iter().filter(|s| s.listed).map(|s| Candidate {
                id: s.id,
                node: Some(own.clone()),
                order: s.order.unwrap_or(u64::MAX),
                subscribers: s.subscribers,
                reserved: 0,
                node_draining: own_draining,
            });
            let remote = records.iter().filter(|s| s.listed && s.node != own).map(|s| Candidate {
                id: s.id.clone(),
                node: Some(s.node.clone()),
                order: s.order,
                subscribers: s.subscribers,
                reserved: 0,
                node_draining: draining.contains(&s.node),
            });
            local.chain(remote).collect()
        });
        let ids: Vec<String> = candidates.iter().map(|c| c.id.clone()).collect();
        for (c, reserved) in candidates.iter_mut().zip(self.bus.reservations(&ids).await?) {
            c.reserved = reserved;
        }
        let max = shared.config.max_players;
        for c in matchmaking::rank(candidates, max) {
            if self.bus.reserve(&c.id, max, c.subscribers, matchmaking::RESERVATION).await? {
                return Ok(Some((c.id, c.node.unwrap_or_default())));
            }
        }
        Ok(None)
    }

    // ----- tasks --------------------------------------------------------------

    async fn publisher(
        self: Arc<Self>,
        mut outbox: mpsc::Receiver<(NodeId, NodeMessage)>,
        shutdown: CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                m = outbox.recv() => m,
                _ = shutdown.cancelled() => None,
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while batch.len() < 512 {
                match outbox.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let encoded: Vec<(String, String)> = batch
                .iter()
                .map(|(node, m)| {
                    let channel = if matches!(m, NodeMessage::DirectoryChanged) {
                        self.bus.keys.changes()
                    } else {
                        self.bus.keys.inbox(node)
                    };
                    (channel, wire::encode(&self.config.node_id, m))
                })
                .collect();
            match self.bus.publish(&encoded).await {
                Ok(()) => drop(self.stats.sent.fetch_add(batch.len() as u64, Ordering::Relaxed)),
                Err(e) => {
                    self.stats.bus_errors.fetch_add(1, Ordering::Relaxed);
                    self.stats.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    warn!("cluster: {} message(s) to other nodes lost: {e}", batch.len());
                }
            }
        }
    }

    async fn listener(self: Arc<Self>, shared: Weak<Shared>, shutdown: CancellationToken) {
        let inbox = self.bus.keys.inbox(&self.config.node_id);
        let changes = self.bus.keys.changes();
        while !shutdown.is_cancelled() {
            let pubsub = async {
                let mut ps = self.bus.client().get_async_pubsub().await?;
                ps.subscribe(&inbox).await?;
                ps.subscribe(&changes).await?;
                Ok::<_, redis::RedisError>(ps)
            };
            if let Ok(Ok(ps)) = tokio::time::timeout(super::bus::TIMEOUT, pubsub).await {
                let mut stream = ps.into_on_message();
                loop {
                    let msg = tokio::select! {
                        m = stream.next() => m,
                        _ = shutdown.cancelled() => None,
                    };
                    let Some(msg) = msg else { break };
                    let Some(shared) = shared.upgrade() else { return };
                    self.take(&shared, msg.get_channel_name() == changes, msg.get_payload_bytes());
                }
            }
            // Redis away: try again shortly.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// One message read from the bus.
    fn take(&self, shared: &Shared, change_notice: bool, payload: &[u8]) {
        match wire::decode(payload) {
            Ok((from, _)) if from == self.config.node_id => {}
            Ok((_, NodeMessage::DirectoryChanged)) => self.wake.notify_one(),
            Ok((from, message)) if !change_notice => {
                self.stats.received.fetch_add(1, Ordering::Relaxed);
                shared.hub.apply(|r| r.receive_from_node(&from, message));
            }
            Ok((from, message)) => {
                self.stats.junk.fetch_add(1, Ordering::Relaxed);
                warn!("cluster: {} from {from} on the change channel; dropped", message_type(&message));
            }
            Err(e) => {
                self.stats.junk.fetch_add(1, Ordering::Relaxed);
                warn!("cluster: dropped a bus message: {e}");
            }
        }
    }

    async fn heartbeat(self: Arc<Self>, shared: Weak<Shared>, shutdown: CancellationToken, player_url: String) {
        let mut beat = Beat::default();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_full: Option<Instant> = None;
        loop {
            let woken = tokio::select! {
                _ = tick.tick() => false,
                _ = self.wake.notified() => true,
                _ = shutdown.cancelled() => break,
            };
            let Some(shared) = shared.upgrade() else { break };
            let fingerprint = shared.hub.with_router(|r| {
                r.local_streamers().iter().map(|s| format!("{}:{}:{}", s.id, s.listed, s.conn.0)).collect::<Vec<_>>()
            });
            let due = woken || fingerprint != beat.fingerprint || last_full.is_none_or(|t| t.elapsed() >= HEARTBEAT);
            if !due {
                continue;
            }
            last_full = Some(Instant::now());
            // Back after Redis was away: tell the others to read our streamers again.
            let changed = fingerprint != beat.fingerprint || !self.bus_up();
            match self.beat(&shared, &mut beat, &player_url, woken).await {
                Ok(()) => {
                    beat.fingerprint = fingerprint;
                    if changed {
                        let _ = self.outbox.try_send((String::new(), NodeMessage::DirectoryChanged));
                    }
                }
                Err(e) => self.bus_down(&shared, &e),
            }
            if !self.first_beat_done.swap(true, Ordering::AcqRel) {
                self.first_beat.notify_waiters();
            }
        }
        let _ = self.bus.leave().await;
    }

    fn bus_down(&self, shared: &Shared, e: &BusError) {
        self.stats.bus_errors.fetch_add(1, Ordering::Relaxed);
        if self.bus_up.swap(false, Ordering::Relaxed) {
            warn!("cluster: Redis unreachable ({e}): serving this node's own sessions only until it returns");
        }
        self.state().up_since = None;
        // The directory stays (a subscribe to a streamer of another node then
        // fails with that reason), unlisted while the bus is down.
        shared.hub.apply(|r| {
            r.set_bus_up(false);
            Vec::new()
        });
    }

    /// One full heartbeat; see the module doc.
    async fn beat(&self, shared: &Shared, beat: &mut Beat, player_url: &str, woken: bool) -> Result<(), BusError> {
        let node = self.config.node_id.clone();
        let began = Instant::now();
        // Player numbers: keep a block in hand.
        let left = shared.hub.with_router(|r| r.player_ids_left());
        if left < PLAYER_ID_BLOCK {
            let floor = beat.player_floor.max(beat.cluster_floor);
            let start = self.bus.player_ids(PLAYER_ID_BLOCK, floor).await?;
            beat.player_floor = beat.player_floor.max(start + PLAYER_ID_BLOCK);
            shared.hub.apply(|r| {
                r.grant_player_ids(start..start + PLAYER_ID_BLOCK);
                Vec::new()
            });
        }
        let (locals, players, snapshot) =
            shared.hub.with_router(|r| (r.local_streamers(), r.registry().player_count(), r.snapshot()));
        // Published while someone reads the REST API, when it changed; otherwise
        // only its expiry is renewed.
        let snapshot = if beat.api_wanted {
            let s = serde_json::to_string(&snapshot).unwrap_or_default();
            (s != beat.snapshot).then_some(s)
        } else {
            beat.snapshot.clear();
            None
        };
        let registrations: Vec<Registration> = locals
            .iter()
            .map(|s| Registration {
                id: s.id.clone(),
                owner: owner(&node, s.conn),
                record: s.record(&node, s.order.unwrap_or(0)),
            })
            .collect();
        let current: HashMap<String, String> = registrations.iter().map(|r| (r.id.clone(), r.owner.clone())).collect();
        let released: Vec<(String, String)> = beat
            .registered
            .iter()
            .filter(|(id, owner)| current.get(*id) != Some(owner))
            .map(|(i, o)| (i.clone(), o.clone()))
            .collect();
        let record = NodeRecord {
            node: node.clone(),
            player_url: player_url.to_string(),
            streamers: locals.iter().filter(|s| !s.sfu).count(),
            players,
            sfus: locals.iter().filter(|s| s.sfu).count(),
            draining: shared.refusing_upgrades.load(Ordering::Relaxed),
            heartbeat_ms: now_ms(),
            player_id_floor: beat.player_floor,
        };
        let answer = self.bus.heartbeat(&record, snapshot.as_deref(), &registrations, &released, NODE_TTL).await?;
        let asked_now = answer.api_wanted && !beat.api_wanted;
        beat.api_wanted = answer.api_wanted;
        if asked_now {
            // Someone started reading the REST API: publish now, not a beat later.
            let s = shared.hub.with_router(|r| serde_json::to_string(&r.snapshot()).unwrap_or_default());
            self.bus.put_snapshot(&s, NODE_TTL).await?;
            beat.snapshot = s;
        }
        let results = answer.registered;
        if let Some(s) = snapshot {
            beat.snapshot = s;
        }
        self.stats.rtt_micros.store(began.elapsed().as_micros() as u64, Ordering::Relaxed);
        beat.registered = current;
        for (local, result) in locals.iter().zip(results) {
            match result {
                Registered::Held(order) if local.order != Some(order) => shared.hub.apply(|r| {
                    r.set_order(local.conn, order);
                    Vec::new()
                }),
                Registered::Held(_) => {}
                Registered::Conflict => {
                    // Both nodes handed the id out while Redis was away; the one that
                    // registered it first keeps it, this one takes the next free variant.
                    let owner = owner(&node, local.conn);
                    if let Some((id, order)) = self.bus.claim(&owner, &local.id, "", false, NODE_TTL).await? {
                        beat.registered.remove(&local.id);
                        beat.registered.insert(id.clone(), owner);
                        shared.hub.apply(|r| r.rename_streamer(local.conn, &id, order));
                    }
                }
            }
        }
        // Just reconnected: every node is re-registering, read each beat for one expiry.
        let recovering = self.state().up_since.is_none_or(|t| t.elapsed() < NODE_TTL);
        let directory_due = woken || recovering || beat.directory_read.is_none_or(|t| t.elapsed() >= DIRECTORY_REFRESH);
        let view = self.bus.read(directory_due).await?;
        if directory_due {
            beat.directory_read = Some(Instant::now());
        }
        self.apply_view(shared, beat, view);
        Ok(())
    }

    /// What the heartbeat read: nodes alive (and gone), the directory.
    fn apply_view(&self, shared: &Shared, beat: &mut Beat, view: ClusterView) {
        let own = &self.config.node_id;
        let was_up = self.bus_up.swap(true, Ordering::Relaxed);
        if !was_up {
            info!("cluster: Redis reachable; node {own} registered");
        }
        let alive: BTreeSet<NodeId> = view.nodes.iter().map(|n| n.node.clone()).filter(|n| n != own).collect();
        beat.cluster_floor = view.nodes.iter().map(|n| n.player_id_floor).max().unwrap_or(0);
        // After Redis returns (perhaps empty), give every node one expiry to
        // re-register before calling anyone dead.
        let settled = {
            let mut state = self.state();
            let since = *state.up_since.get_or_insert_with(Instant::now);
            state.nodes = view.nodes.clone();
            since.elapsed() >= NODE_TTL || beat.known_alive.is_empty()
        };
        let gone: Vec<NodeId> =
            if settled { beat.known_alive.difference(&alive).cloned().collect() } else { Vec::new() };
        if settled {
            beat.known_alive = alive.clone();
        } else {
            beat.known_alive.extend(alive.iter().cloned());
        }
        let directory = view.streamers.map(|streamers| {
            Directory::new(streamers.into_iter().filter(|s| s.node != *own && (alive.contains(&s.node) || !settled)))
        });
        shared.hub.apply(|r| {
            let mut out = Vec::new();
            for node in &gone {
                warn!("cluster: node {node} is gone (no heartbeat for {NODE_TTL:?})");
                out.extend(r.node_gone(node));
            }
            match directory {
                Some(d) => r.set_directory(d),
                // Not re-read this beat (node_gone dropped the dead nodes' streamers).
                None => r.sweep_remote(),
            }
            r.set_bus_up(true);
            out
        });
    }
}

/// What the heartbeat carries from one beat to the next.
#[derive(Debug, Default)]
struct Beat {
    /// Ids this node registered, with their owner.
    registered: HashMap<String, String>,
    fingerprint: Vec<String>,
    /// The registry as last published.
    snapshot: String,
    /// Some node serves the REST API: publish the registry.
    api_wanted: bool,
    /// When other nodes' streamers were last read in full.
    directory_read: Option<Instant>,
    known_alive: BTreeSet<NodeId>,
    /// The end of the last player-number block granted to this node.
    player_floor: u64,
    /// The highest such end any node reports.
    cluster_floor: u64,
}

/// `{node}/{conn}`: who holds a streamer id.
fn owner(node: &str, conn: ConnId) -> String {
    format!("{node}/{}", conn.0)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn message_type(m: &NodeMessage) -> &'static str {
    match m {
        NodeMessage::Subscribe { .. } => "subscribe",
        NodeMessage::FromPlayer { .. } => "from_player",
        NodeMessage::Leave { .. } => "leave",
        NodeMessage::ToPlayer { .. } => "to_player",
        NodeMessage::ClosePlayer { .. } => "close_player",
        NodeMessage::DirectoryChanged => "directory_changed",
    }
}
