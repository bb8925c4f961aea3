//! The cluster's streamers as one node sees them: each node's own streamers
//! are in its registry; the others' come from Redis into a [`Directory`] the
//! router reads when a player lists or subscribes. Sans-I/O.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::wire::NodeId;

/// A streamer (or SFU) of some node, as that node last published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamerRecord {
    pub id: String,
    pub node: NodeId,
    /// Cluster-wide registration order (a Redis counter taken at the claim).
    pub order: u64,
    /// Listed to players: an identified streamer, or a streaming SFU.
    pub listed: bool,
    pub sfu: bool,
    /// Subscribers on every node (for matchmaking).
    pub subscribers: usize,
}

/// Other nodes' streamers by id.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    by_id: HashMap<String, StreamerRecord>,
}

impl Directory {
    pub fn new(records: impl IntoIterator<Item = StreamerRecord>) -> Directory {
        Directory { by_id: records.into_iter().map(|r| (r.id.clone(), r)).collect() }
    }

    pub fn get(&self, id: &str) -> Option<&StreamerRecord> {
        self.by_id.get(id)
    }

    pub fn records(&self) -> impl Iterator<Item = &StreamerRecord> {
        self.by_id.values()
    }

    pub fn remove_node(&mut self, node: &str) {
        self.by_id.retain(|_, r| r.node != node);
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// A node as it advertises itself (refreshed every second, expiring after [`super::NODE_TTL`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node: NodeId,
    /// Its player URL (`http://host:port/`), for operators.
    pub player_url: String,
    pub streamers: usize,
    pub players: usize,
    pub sfus: usize,
    /// The operator drained it: load balancers and matchmaking send nobody new.
    pub draining: bool,
    /// Its wall clock at the heartbeat, milliseconds since 1970.
    pub heartbeat_ms: u64,
    /// The highest player number it has been granted (a floor for the
    /// counter when Redis lost its data).
    pub player_id_floor: u64,
}
