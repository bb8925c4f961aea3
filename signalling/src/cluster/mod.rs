//! Several `signalling` processes as one service, through Redis.
//!
//! A streamer's node owns it: its subscriber list, `--max_players`, the order
//! of its messages. A player on another node is, to the owner's router, a
//! remote connection whose frames travel over Redis pub/sub instead of a
//! socket ([`wire`]); the router stays sans-I/O and knows other nodes by name
//! only. Cluster-wide facts (which streamer ids exist and where, which nodes
//! are alive) live in Redis with expiries that heartbeats refresh ([`keys`]),
//! so a dead node's entries disappear by themselves. [`bus`] is the Redis
//! I/O, [`node`] the task that runs it beside the server. See `CLUSTER.md`.

pub mod bus;
pub mod directory;
pub mod keys;
pub mod matchmaking;
pub mod node;
pub mod wire;

use std::time::Duration;

pub use directory::{Directory, NodeRecord, StreamerRecord};
pub use node::ClusterLink;
pub use wire::{NodeId, NodeMessage};

/// A node's and its streamers' keys live this long unless refreshed.
pub const NODE_TTL: Duration = Duration::from_secs(3);
/// How often a node refreshes its keys and reads the others'.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Player numbers a node takes from the cluster counter at a time.
pub const PLAYER_ID_BLOCK: u64 = 1000;

/// `--redis_url`, `--node_id`, `--cluster_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub redis_url: String,
    pub node_id: NodeId,
    pub prefix: String,
}

impl ClusterConfig {
    /// A node id for a node started without `--node_id`: short, random, printed at start.
    pub fn random_node_id() -> NodeId {
        let mut bytes = [0u8; 4];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap_or_default();
        format!("node-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }
}

/// `redis://user:secret@host` → `redis://user:<redacted>@host`.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((auth, host)) = rest.rsplit_once('@') else { return url.to_string() };
    let user = auth.split_once(':').map_or("", |(u, _)| u);
    format!("{scheme}://{user}:{}@{host}", crate::config::REDACTED)
}
