//! Redis key and channel names, all under one prefix (`--cluster_prefix`) so
//! several clusters can share a Redis.
//!
//! - `{p}:node:{node}`: the node's [`NodeRecord`](super::NodeRecord) (JSON),
//!   expiring after [`NODE_TTL`](super::NODE_TTL) unless its heartbeat refreshes it;
//!   `{p}:nodes`: the set of node ids ever seen (pruned when their key is gone).
//! - `{p}:node:{node}:snapshot`: its registry as the REST API shows it, same expiry, written
//!   only while `{p}:api_wanted` exists.
//! - `{p}:node:{node}:inbox`: the pub/sub channel other nodes publish to it on.
//! - `{p}:changes`: pub/sub, "my streamers changed" from any node.
//! - `{p}:streamer:{id}`: the node holding that streamer id (the claim), same expiry;
//!   `{p}:streamer:{id}:info`: its [`StreamerRecord`](super::StreamerRecord);
//!   `{p}:streamers`: sorted set of ids by registration order; `{p}:streamer_seq`: that order's counter.
//! - `{p}:player_seq`: the counter player-number blocks are taken from.
//! - `{p}:reserve:{id}`: matchmaking reservations of a streamer (sorted set, score = expiry ms).
//! - `{p}:api_wanted`: set (10 s) while some node serves the REST API: nodes publish snapshots.

#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.to_string() }
    }
    pub fn node(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    pub fn snapshot(&self, node: &str) -> String {
        format!("{}:node:{node}:snapshot", self.prefix)
    }
    pub fn inbox(&self, node: &str) -> String {
        format!("{}:node:{node}:inbox", self.prefix)
    }
    pub fn changes(&self) -> String {
        format!("{}:changes", self.prefix)
    }
    pub fn streamer(&self, id: &str) -> String {
        format!("{}:streamer:{id}", self.prefix)
    }
    pub fn streamer_info(&self, id: &str) -> String {
        format!("{}:streamer:{id}:info", self.prefix)
    }
    pub fn streamers(&self) -> String {
        format!("{}:streamers", self.prefix)
    }
    pub fn streamer_seq(&self) -> String {
        format!("{}:streamer_seq", self.prefix)
    }
    pub fn player_seq(&self) -> String {
        format!("{}:player_seq", self.prefix)
    }
    pub fn api_wanted(&self) -> String {
        format!("{}:api_wanted", self.prefix)
    }
    pub fn reservations(&self, id: &str) -> String {
        format!("{}:reserve:{id}", self.prefix)
    }
}
