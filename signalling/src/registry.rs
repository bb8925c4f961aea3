//! The registry of connections: who is connected, under which ids, and who is
//! subscribed to whom. Plain data with the invariants kept by its methods; the
//! router decides *when* to change it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Range;

use crate::cluster::NodeId;
use crate::snapshot::{EndpointKind, PlayerInfo, Snapshot, StreamerInfo, SubscriberKind};

/// A connection's handle, unique for the life of the process. Increasing, so
/// ordering by it is ordering by connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Streamer,
    Player,
    Sfu,
}

impl Role {
    /// Every role, in the order of [`Role::index`]: arrays indexed by role
    /// (limits, metrics) and their exposition follow it.
    pub const ALL: [Role; 3] = [Role::Streamer, Role::Player, Role::Sfu];

    /// This role's place in [`Role::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Role::Streamer => 0,
            Role::Player => 1,
            Role::Sfu => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Streamer => "streamer",
            Role::Player => "player",
            Role::Sfu => "sfu",
        }
    }

    /// Streamers and SFUs are addressed by a streamer id and have subscribers.
    pub fn is_streamer_side(self) -> bool {
        matches!(self, Role::Streamer | Role::Sfu)
    }

    /// Players and SFUs get a player id and subscribe to a streamer.
    pub fn is_player_side(self) -> bool {
        matches!(self, Role::Player | Role::Sfu)
    }
}

/// One connection's registry entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub role: Role,
    pub remote_address: String,
    /// Streamer side: the current id (temporary until `endpointId`).
    pub streamer_id: Option<String>,
    /// Streamer side: has sent `endpointId`.
    pub identified: bool,
    /// SFU: between `startStreaming` and `stopStreaming`.
    pub sfu_streaming: bool,
    /// Streamer side: subscribers in subscribe order.
    pub subscribers: BTreeSet<ConnId>,
    /// Player side: the player id.
    pub player_id: Option<String>,
    /// Player side: the streamer-side connection it is subscribed to.
    pub subscribed_to: Option<ConnId>,
    /// Cluster: a player (or SFU) of another node, subscribed to one of our
    /// streamers; what the router sends it goes to that node.
    pub node: Option<NodeId>,
    /// Cluster: this local player is subscribed to a streamer of another node.
    pub remote_subscription: Option<RemoteSubscription>,
    /// Cluster: streamer side, the cluster-wide registration order of its id.
    pub order: Option<u64>,
}

/// A local player's subscription to a streamer on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSubscription {
    pub node: NodeId,
    pub streamer_id: String,
}

/// Where player ids come from: one counter (one node), or blocks of numbers
/// granted by the cluster so that no two nodes hand out the same id.
#[derive(Debug)]
enum PlayerIds {
    Local { next: u64 },
    Cluster { blocks: VecDeque<Range<u64>>, fallback: Range<u64> },
}

impl Default for PlayerIds {
    fn default() -> Self {
        PlayerIds::Local { next: 0 }
    }
}

impl PlayerIds {
    fn next(&mut self) -> u64 {
        match self {
            PlayerIds::Local { next } => {
                *next += 1;
                *next - 1
            }
            PlayerIds::Cluster { blocks, fallback } => loop {
                match blocks.front_mut() {
                    Some(block) => match block.next() {
                        Some(n) => return n,
                        None => drop(blocks.pop_front()),
                    },
                    // Out of granted numbers (the bus is down): the node's own range.
                    None => return fallback.next().unwrap_or(u64::MAX),
                }
            },
        }
    }
}

impl Entry {
    /// Listed to players: an identified streamer, or a streaming SFU.
    pub fn listed(&self) -> bool {
        match self.role {
            Role::Streamer => self.identified,
            Role::Sfu => self.identified && self.sfu_streaming,
            Role::Player => false,
        }
    }
}

/// All connections and the id indexes over them.
#[derive(Debug, Default)]
pub struct Registry {
    entries: BTreeMap<ConnId, Entry>,
    streamer_ids: HashMap<String, ConnId>,
    player_ids: HashMap<String, ConnId>,
    /// Streamers and SFUs in connect order: listing them must not walk every
    /// player (thousands of entries for each `listStreamers`).
    streamer_side: BTreeSet<ConnId>,
    /// Entries with the player role.
    players: usize,
    next_conn: u64,
    player_numbers: PlayerIds,
    next_temp_streamer: u64,
}

impl Registry {
    pub fn get(&self, conn: ConnId) -> Option<&Entry> {
        self.entries.get(&conn)
    }

    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut Entry> {
        self.entries.get_mut(&conn)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Register a new connection. Player-side connections get a player id at
    /// once; streamer-side ones a temporary, unlisted streamer id.
    pub fn add(&mut self, role: Role, remote_address: String) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let player_id = role.is_player_side().then(|| {
            let id = loop {
                let id = format!("Player{}", self.player_numbers.next());
                // Never taken in one node; in a cluster a remote player could hold it
                // only if two nodes were granted one number, which the counter rules out.
                if !self.player_ids.contains_key(&id) {
                    break id;
                }
            };
            self.player_ids.insert(id.clone(), conn);
            id
        });
        let streamer_id = role.is_streamer_side().then(|| {
            let id = self.unique_streamer_id("UnknownStreamer", conn, true);
            self.streamer_ids.insert(id.clone(), conn);
            id
        });
        if role.is_streamer_side() {
            self.streamer_side.insert(conn);
        }
        if role == Role::Player {
            self.players += 1;
        }
        self.entries.insert(
            conn,
            Entry {
                role,
                remote_address,
                streamer_id,
                identified: false,
                sfu_streaming: false,
                subscribers: BTreeSet::new(),
                player_id,
                subscribed_to: None,
                node: None,
                remote_subscription: None,
                order: None,
            },
        );
        conn
    }

    /// Number players from blocks the cluster grants ([`Registry::grant_player_ids`]),
    /// and from `fallback` when they run out.
    pub fn use_cluster_player_ids(&mut self, fallback: Range<u64>) {
        self.player_numbers = PlayerIds::Cluster { blocks: VecDeque::new(), fallback };
    }

    /// A block of player numbers no other node will use.
    pub fn grant_player_ids(&mut self, block: Range<u64>) {
        if let PlayerIds::Cluster { blocks, .. } = &mut self.player_numbers {
            blocks.push_back(block);
        }
    }

    /// Granted player numbers not used yet (`u64::MAX` on one node).
    pub fn player_ids_left(&self) -> u64 {
        match &self.player_numbers {
            PlayerIds::Local { .. } => u64::MAX,
            PlayerIds::Cluster { blocks, .. } => blocks.iter().map(|b| b.end.saturating_sub(b.start)).sum(),
        }
    }

    /// Register a player (or SFU) of node `node` under the id that node gave
    /// it; `None` when that id is already someone else's here.
    pub fn add_remote(&mut self, role: Role, remote_address: String, player_id: &str, node: &str) -> Option<ConnId> {
        if !role.is_player_side() || self.player_ids.contains_key(player_id) {
            return None;
        }
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.player_ids.insert(player_id.to_string(), conn);
        self.entries.insert(
            conn,
            Entry {
                role,
                remote_address,
                streamer_id: None,
                identified: false,
                sfu_streaming: false,
                subscribers: BTreeSet::new(),
                player_id: Some(player_id.to_string()),
                subscribed_to: None,
                node: Some(node.to_string()),
                remote_subscription: None,
                order: None,
            },
        );
        Some(conn)
    }

    /// The remote connection node `node` registered for `player_id`.
    pub fn remote_player(&self, node: &str, player_id: &str) -> Option<ConnId> {
        let conn = self.player_by_id(player_id)?;
        (self.entries.get(&conn)?.node.as_deref() == Some(node)).then_some(conn)
    }

    /// This node's own player (not a remote one) with that id.
    pub fn local_player(&self, player_id: &str) -> Option<ConnId> {
        let conn = self.player_by_id(player_id)?;
        self.entries.get(&conn)?.node.is_none().then_some(conn)
    }

    /// Connections of node `node` (its players subscribed here).
    pub fn remote_conns_of(&self, node: &str) -> Vec<ConnId> {
        self.entries.iter().filter(|(_, e)| e.node.as_deref() == Some(node)).map(|(c, _)| *c).collect()
    }

    /// Local players subscribed to a streamer of node `node`.
    pub fn subscribed_on(&self, node: &str) -> Vec<ConnId> {
        self.entries
            .iter()
            .filter(|(_, e)| e.remote_subscription.as_ref().is_some_and(|r| r.node == node))
            .map(|(c, _)| *c)
            .collect()
    }

    /// Remote connections no longer subscribed to anything here: their node
    /// forgets them too, so they go.
    pub fn unsubscribed_remote_conns(&self) -> Vec<ConnId> {
        self.entries.iter().filter(|(_, e)| e.node.is_some() && e.subscribed_to.is_none()).map(|(c, _)| *c).collect()
    }

    /// Streamer-side entries, in connect order.
    pub fn streamer_side(&self) -> impl Iterator<Item = (ConnId, &Entry)> {
        self.streamer_side.iter().filter_map(|c| self.entries.get(c).map(|e| (*c, e)))
    }

    /// Give a streamer-side connection exactly `id` (cluster conflict
    /// resolution: the cluster decided it is free). Returns the old id.
    pub fn force_streamer_id(&mut self, conn: ConnId, id: &str) -> Option<String> {
        if self.streamer_ids.get(id).is_some_and(|holder| *holder != conn) {
            return None;
        }
        let old = self.entries.get(&conn)?.streamer_id.clone()?;
        self.streamer_ids.remove(&old);
        self.streamer_ids.insert(id.to_string(), conn);
        self.entries.get_mut(&conn)?.streamer_id = Some(id.to_string());
        Some(old)
    }

    /// Forget a connection and its ids. Subscriptions must already be undone
    /// (the router does that first, to tell the other ends).
    pub fn remove(&mut self, conn: ConnId) -> Option<Entry> {
        let entry = self.entries.remove(&conn)?;
        self.streamer_side.remove(&conn);
        if entry.role == Role::Player && entry.node.is_none() {
            self.players -= 1;
        }
        if let Some(id) = &entry.streamer_id {
            if self.streamer_ids.get(id) == Some(&conn) {
                self.streamer_ids.remove(id);
            }
        }
        if let Some(id) = &entry.player_id {
            self.player_ids.remove(id);
        }
        Some(entry)
    }

    /// The id `requested` or, when another connection holds it, the first of
    /// `requested1`, `requested2`, … that is free. An id this connection
    /// already holds is kept (FIX: Wilbur renames it).
    fn unique_streamer_id(&mut self, requested: &str, conn: ConnId, temporary: bool) -> String {
        let free = |id: &str, ids: &HashMap<String, ConnId>| match ids.get(id) {
            None => true,
            Some(holder) => *holder == conn,
        };
        if temporary {
            // Temporary ids count up so that they are stable per connection.
            loop {
                let id = if self.next_temp_streamer == 0 {
                    requested.to_string()
                } else {
                    format!("{requested}{}", self.next_temp_streamer)
                };
                self.next_temp_streamer += 1;
                if free(&id, &self.streamer_ids) {
                    return id;
                }
            }
        }
        if free(requested, &self.streamer_ids) {
            return requested.to_string();
        }
        (1u64..)
            .map(|n| format!("{requested}{n}"))
            .find(|id| free(id, &self.streamer_ids))
            .unwrap_or_else(|| requested.to_string())
    }

    /// Give a streamer-side connection the id it asked for (or a free variant
    /// of it, or keep its temporary id when it asked for none) and list it.
    /// Returns (old id, committed id).
    pub fn commit_streamer_id(&mut self, conn: ConnId, requested: Option<&str>) -> Option<(String, String)> {
        let old = self.entries.get(&conn)?.streamer_id.clone()?;
        let committed = match requested.map(str::trim).filter(|s| !s.is_empty()) {
            // Re-asking for `A` while holding `A3` (because `A` was taken)
            // keeps `A3`: the same request, the same answer.
            Some(requested) if self.identified_as_variant_of(conn, &old, requested) => old.clone(),
            Some(requested) => self.unique_streamer_id(requested, conn, false),
            None => old.clone(),
        };
        if committed != old {
            self.streamer_ids.remove(&old);
            self.streamer_ids.insert(committed.clone(), conn);
        }
        let entry = self.entries.get_mut(&conn)?;
        entry.streamer_id = Some(committed.clone());
        entry.identified = true;
        Some((old, committed))
    }

    /// `held` is `requested` followed by a number, `requested` itself is held
    /// by another connection, and `conn` has already identified.
    fn identified_as_variant_of(&self, conn: ConnId, held: &str, requested: &str) -> bool {
        let numbered =
            held.strip_prefix(requested).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let identified = self.entries.get(&conn).is_some_and(|e| e.identified);
        numbered && identified && self.streamer_ids.get(requested).is_some_and(|holder| *holder != conn)
    }

    pub fn streamer_by_id(&self, id: &str) -> Option<ConnId> {
        self.streamer_ids.get(id).copied()
    }

    pub fn player_by_id(&self, id: &str) -> Option<ConnId> {
        self.player_ids.get(id).copied()
    }

    /// This node's own players (not SFUs, not other nodes' players).
    pub fn player_count(&self) -> usize {
        self.players
    }

    /// Identified streamer-side entries in connect order, filtered.
    pub fn streamer_ids_where(&self, keep: impl Fn(&Entry) -> bool) -> Vec<String> {
        self.streamer_side
            .iter()
            .filter_map(|c| self.entries.get(c))
            .filter(|e| e.identified && keep(e))
            .filter_map(|e| e.streamer_id.clone())
            .collect()
    }

    /// The first listed streamer in connect order (legacy auto-subscribe).
    pub fn first_listed_streamer(&self) -> Option<ConnId> {
        self.streamer_side.iter().copied().find(|c| self.entries.get(c).is_some_and(Entry::listed))
    }

    /// Subscribe `player` to `streamer`. Both must exist; any old subscription
    /// must already be undone.
    pub fn subscribe(&mut self, player: ConnId, streamer: ConnId) {
        if let Some(e) = self.entries.get_mut(&streamer) {
            e.subscribers.insert(player);
        }
        if let Some(e) = self.entries.get_mut(&player) {
            e.subscribed_to = Some(streamer);
        }
    }

    /// Undo `player`'s subscription; returns the streamer it had.
    pub fn unsubscribe(&mut self, player: ConnId) -> Option<ConnId> {
        let streamer = self.entries.get_mut(&player)?.subscribed_to.take()?;
        if let Some(e) = self.entries.get_mut(&streamer) {
            e.subscribers.remove(&player);
        }
        Some(streamer)
    }

    fn player_info(&self, e: &Entry, own_node: Option<&str>) -> Option<PlayerInfo> {
        let subscribed_to = match &e.remote_subscription {
            Some(remote) => Some(remote.streamer_id.clone()),
            None => e.subscribed_to.and_then(|s| self.entries.get(&s)).and_then(|s| s.streamer_id.clone()),
        };
        Some(PlayerInfo {
            player_id: e.player_id.clone()?,
            kind: if e.role == Role::Sfu { SubscriberKind::Sfu } else { SubscriberKind::Player },
            subscribed_to,
            remote_address: e.remote_address.clone(),
            node: e.node.as_deref().or(own_node).map(str::to_string),
        })
    }

    /// The registry as the REST API shows it; in a cluster every entry names
    /// its node (`own_node` for this one's).
    pub fn snapshot(&self, own_node: Option<&str>) -> Snapshot {
        let streamers = self
            .entries
            .values()
            .filter(|e| e.role.is_streamer_side() && e.identified)
            .filter_map(|e| {
                Some(StreamerInfo {
                    streamer_id: e.streamer_id.clone()?,
                    kind: if e.role == Role::Sfu { EndpointKind::Sfu } else { EndpointKind::Streamer },
                    streaming: e.listed(),
                    remote_address: e.remote_address.clone(),
                    subscribers: e
                        .subscribers
                        .iter()
                        .filter_map(|c| self.entries.get(c).and_then(|p| self.player_info(p, own_node)))
                        .collect(),
                    node: own_node.map(str::to_string),
                })
            })
            .collect();
        // Other nodes' players are listed by their own node.
        let players = self
            .entries
            .values()
            .filter(|e| e.role.is_player_side() && e.node.is_none())
            .filter_map(|e| self.player_info(e, own_node))
            .collect();
        Snapshot { streamers, players }
    }

    /// Check the invariants that tie the indexes and subscriptions together.
    /// Used by tests (and fuzzing) after every step.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (conn, e) in &self.entries {
            if let Some(s) = e.subscribed_to {
                let streamer = self.entries.get(&s).ok_or(format!("{conn:?} subscribed to missing {s:?}"))?;
                if !streamer.subscribers.contains(conn) {
                    return Err(format!("{conn:?} subscribed to {s:?} which does not list it"));
                }
            }
            for p in &e.subscribers {
                let player = self.entries.get(p).ok_or(format!("{conn:?} lists missing subscriber {p:?}"))?;
                if player.subscribed_to != Some(*conn) {
                    return Err(format!("{conn:?} lists {p:?} which is subscribed elsewhere"));
                }
            }
            if let Some(id) = &e.streamer_id {
                if self.streamer_ids.get(id) != Some(conn) {
                    return Err(format!("streamer id {id} of {conn:?} not indexed"));
                }
            }
            if let Some(id) = &e.player_id {
                if self.player_ids.get(id) != Some(conn) {
                    return Err(format!("player id {id} of {conn:?} not indexed"));
                }
            }
        }
        if self.streamer_ids.len() != self.entries.values().filter(|e| e.streamer_id.is_some()).count() {
            return Err("streamer id index has stale entries".into());
        }
        if self.player_ids.len() != self.entries.values().filter(|e| e.player_id.is_some()).count() {
            return Err("player id index has stale entries".into());
        }
        let streamer_side: BTreeSet<ConnId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.role.is_streamer_side() && e.node.is_none())
            .map(|(c, _)| *c)
            .collect();
        if streamer_side != self.streamer_side {
            return Err("streamer-side index differs from the entries".into());
        }
        for (conn, e) in &self.entries {
            if e.node.is_some() && (!e.role.is_player_side() || e.remote_subscription.is_some()) {
                return Err(format!("{conn:?} is remote but not a plain subscriber"));
            }
            if e.remote_subscription.is_some() && e.subscribed_to.is_some() {
                return Err(format!("{conn:?} is subscribed both here and on another node"));
            }
        }
        if self.players != self.entries.values().filter(|e| e.role == Role::Player && e.node.is_none()).count() {
            return Err("player count differs from the entries".into());
        }
        Ok(())
    }
}
