//! The Redis side of agents and coordinator: key names under one prefix (so
//! several clusters and runs can share a Redis), the versioned JSON messages,
//! and a thin connection wrapper.
//!
//! - `{prefix}:agent:{name}`: an agent's [`AgentInfo`], refreshed every second
//!   with a 3 s expiry (a dead agent disappears by itself).
//! - `{prefix}:agent:{name}:inbox`: a list the coordinator pushes [`ToAgent`]
//!   messages on and the agent pops.
//! - `{prefix}:run:{run}:events`: a list agents push [`ToCoordinator`]
//!   messages on and the coordinator pops.
//! - `{prefix}:run:{run}:alive`: set by the coordinator with an expiry; agents
//!   stop a run whose coordinator is gone.
//! - `{prefix}:agent:{name}:claim`: the run a coordinator has claimed this agent
//!   for, with an expiry. Claims are taken all-or-nothing in one script, so two
//!   coordinators never split the agents between them or drive the same one.
//!
//! Lists, not pub/sub: a message pushed before the reader listens is not lost.
//! Every message is `{"v":1,"type":…}`; anything else is logged and dropped.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::distributed::plan::Share;
use crate::distributed::wire::{WireConfig, WireStats};
use crate::report::Sample;

/// Message format version; a reader drops messages of another version.
pub const VERSION: u32 = 1;

/// An agent's heartbeat key lives this long unless refreshed.
pub const AGENT_TTL: Duration = Duration::from_secs(3);

/// Key names under a prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.to_string() }
    }
    pub fn agent(&self, name: &str) -> String {
        format!("{}:agent:{name}", self.prefix)
    }
    pub fn agent_pattern(&self) -> String {
        format!("{}:agent:*", self.prefix)
    }
    pub fn inbox(&self, name: &str) -> String {
        format!("{}:agent:{name}:inbox", self.prefix)
    }
    pub fn events(&self, run: &str) -> String {
        format!("{}:run:{run}:events", self.prefix)
    }
    pub fn claim(&self, name: &str) -> String {
        format!("{}:agent:{name}:claim", self.prefix)
    }
    pub fn alive(&self, run: &str) -> String {
        format!("{}:run:{run}:alive", self.prefix)
    }
}

/// What an agent advertises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub v: u32,
    pub name: String,
    pub capacity: usize,
    /// The run it is busy with, if any.
    pub run: Option<String>,
    pub pid: u32,
    pub host: String,
}

/// The run an agent is given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunPlan {
    pub player: WireConfig,
    pub share: Share,
    /// The agreed start, in coordinator wall-clock milliseconds.
    pub start_at_ms: f64,
    /// This agent's clock minus the coordinator's (from [`crate::distributed::clock`]).
    pub offset_ms: f64,
}

/// Coordinator → agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToAgent {
    Ping { run: String, seq: u32, t0: f64 },
    Start { run: String, plan: Box<RunPlan> },
    Stop { run: String },
}

/// CPU and memory of an agent process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU seconds (user + system) used since the run was given.
    pub cpu_secs: f64,
    /// Resident memory now, bytes.
    pub rss_bytes: u64,
    /// Peak resident memory of the process, bytes.
    pub peak_rss_bytes: u64,
}

/// Agent → coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToCoordinator {
    Pong {
        agent: String,
        seq: u32,
        t0: f64,
        t1: f64,
        t2: f64,
    },
    /// Once a second during a run.
    Progress {
        agent: String,
        sample: Sample,
        usage: Usage,
    },
    /// Results of some players (a run's results come in chunks).
    Results {
        agent: String,
        players: Vec<WireStats>,
    },
    /// The last message of a run.
    Done {
        agent: String,
        /// Players whose results were sent.
        players: usize,
        elapsed_secs: f64,
        /// When this agent's ramp actually began (agent wall clock, ms).
        started_at_ms: f64,
        timeline: Vec<Sample>,
        usage: Usage,
    },
    /// The agent could not run (busy, bad plan, WebRTC setup failed).
    Refused {
        agent: String,
        reason: String,
    },
}

impl ToCoordinator {
    pub fn agent(&self) -> &str {
        match self {
            ToCoordinator::Pong { agent, .. }
            | ToCoordinator::Progress { agent, .. }
            | ToCoordinator::Results { agent, .. }
            | ToCoordinator::Done { agent, .. }
            | ToCoordinator::Refused { agent, .. } => agent,
        }
    }
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    v: u32,
    #[serde(flatten)]
    msg: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn<T> {
    v: u32,
    #[serde(flatten)]
    msg: T,
}

/// `{"v":1, "type":…, …}`.
pub fn encode<T: Serialize>(msg: &T) -> String {
    serde_json::to_string(&EnvelopeOut { v: VERSION, msg }).unwrap_or_default()
}

/// The message, or `None` (logged) for junk or another version.
pub fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Option<T> {
    #[derive(Deserialize)]
    struct V {
        v: Option<u32>,
    }
    match serde_json::from_str::<V>(text) {
        Ok(V { v: Some(VERSION) }) => {}
        Ok(V { v }) => {
            tracing::warn!(version = ?v, "bus: message of another version dropped");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, text = %short(text), "bus: junk dropped");
            return None;
        }
    }
    match serde_json::from_str::<EnvelopeIn<T>>(text) {
        Ok(m) if m.v == VERSION => Some(m.msg),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, text = %short(text), "bus: unknown message dropped");
            None
        }
    }
}

fn short(s: &str) -> &str {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Errors talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// One Redis connection. A blocking pop holds its connection, so a process
/// that pops and also sends opens two.
#[derive(Clone)]
pub struct Bus {
    conn: MultiplexedConnection,
    pub keys: Keys,
}

impl Bus {
    /// Connect (5 s at most); commands time out after `blocking + 5 s`.
    pub async fn connect(url: &str, prefix: &str, blocking: Duration) -> Result<Bus, BusError> {
        let client = redis::Client::open(url)?;
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_secs(5))
            .set_response_timeout(blocking + Duration::from_secs(5));
        let conn = client.get_multiplexed_async_connection_with_config(&cfg).await?;
        Ok(Bus { conn, keys: Keys::new(prefix) })
    }

    /// Append a message to a list, which expires `ttl` after the last push.
    pub async fn push<T: Serialize>(&self, list: &str, msg: &T, ttl: Duration) -> Result<(), BusError> {
        let mut c = self.conn.clone();
        redis::pipe()
            .rpush(list, encode(msg))
            .ignore()
            .pexpire(list, ttl.as_millis() as i64)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Pop the oldest message of a list, waiting at most `wait`.
    pub async fn pop(&self, list: &str, wait: Duration) -> Result<Option<String>, BusError> {
        let mut c = self.conn.clone();
        let r: Option<(String, String)> = c.blpop(list, wait.as_secs_f64()).await?;
        Ok(r.map(|(_, v)| v))
    }

    pub async fn set_for(&self, key: &str, value: &str, ttl: Duration) -> Result<(), BusError> {
        let mut c = self.conn.clone();
        let _: () = c.pset_ex(key, value, ttl.as_millis() as u64).await?;
        Ok(())
    }

    pub async fn exists(&self, key: &str) -> Result<bool, BusError> {
        let mut c = self.conn.clone();
        Ok(c.exists(key).await?)
    }

    pub async fn del(&self, key: &str) -> Result<(), BusError> {
        let mut c = self.conn.clone();
        let _: () = c.del(key).await?;
        Ok(())
    }

    /// Every agent currently advertised (expired ones are gone).
    pub async fn agents(&self) -> Result<Vec<AgentInfo>, BusError> {
        let mut c = self.conn.clone();
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.keys.agent_pattern())
                .arg("COUNT")
                .arg(200)
                .query_async(&mut c)
                .await?;
            keys.extend(batch.into_iter().filter(|k| !k.ends_with(":inbox") && !k.ends_with(":claim")));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut out = Vec::new();
        for k in keys {
            let v: Option<String> = c.get(&k).await?;
            let Some(v) = v else { continue };
            match serde_json::from_str::<AgentInfo>(&v) {
                Ok(a) if a.v == VERSION => out.push(a),
                _ => tracing::warn!(key = %k, "bus: unreadable agent entry ignored"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Claims `wanted` of these agents for `run`, all or none, in one atomic script: an agent
    /// is free when its claim is unset or already this run's. Returns the claimed names (empty
    /// when fewer than `wanted` are free). Claims expire after `ttl` unless claimed again.
    pub async fn claim(
        &self,
        names: &[String],
        run: &str,
        wanted: usize,
        ttl: Duration,
    ) -> Result<Vec<String>, BusError> {
        const CLAIM: &str = r#"
            local free = {}
            for i, key in ipairs(KEYS) do
                local owner = redis.call('GET', key)
                if (not owner) or owner == ARGV[1] then table.insert(free, i) end
            end
            local wanted = tonumber(ARGV[3])
            if #free < wanted then return {} end
            local got = {}
            for j = 1, wanted do
                redis.call('SET', KEYS[free[j]], ARGV[1], 'PX', ARGV[2])
                table.insert(got, free[j] - 1)
            end
            return got"#;
        if names.is_empty() || wanted == 0 {
            return Ok(Vec::new());
        }
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CLAIM).arg(names.len());
        for n in names {
            cmd.arg(self.keys.claim(n));
        }
        cmd.arg(run).arg(ttl.as_millis() as u64).arg(wanted);
        let got: Vec<usize> = cmd.query_async(&mut c).await?;
        Ok(got.into_iter().filter_map(|i| names.get(i).cloned()).collect())
    }

    /// Drops `run`'s claims on these agents (another run's claims are left alone).
    pub async fn release(&self, names: &[String], run: &str) -> Result<(), BusError> {
        const RELEASE: &str = r#"
            for _, key in ipairs(KEYS) do
                if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
            end
            return 0"#;
        if names.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RELEASE).arg(names.len());
        for n in names {
            cmd.arg(self.keys.claim(n));
        }
        cmd.arg(run);
        let _: i64 = cmd.query_async(&mut c).await?;
        Ok(())
    }

    /// The run this agent is claimed for, if any.
    pub async fn claimed_by(&self, name: &str) -> Result<Option<String>, BusError> {
        let mut c = self.conn.clone();
        Ok(c.get(self.keys.claim(name)).await?)
    }

    /// Redis's own byte counters (`INFO stats`: input + output), for the
    /// coordination overhead figure.
    pub async fn net_bytes(&self) -> Result<u64, BusError> {
        let mut c = self.conn.clone();
        let info: String = redis::cmd("INFO").arg("stats").query_async(&mut c).await?;
        Ok(info
            .lines()
            .filter_map(|l| {
                l.strip_prefix("total_net_input_bytes:").or_else(|| l.strip_prefix("total_net_output_bytes:"))
            })
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_versioned_json() {
        let m = ToAgent::Stop { run: "r1".into() };
        let text = encode(&m);
        assert!(text.starts_with("{\"v\":1,\"type\":\"stop\""), "{text}");
        assert!(matches!(decode::<ToAgent>(&text), Some(ToAgent::Stop { run }) if run == "r1"));
    }

    #[test]
    fn junk_is_dropped_not_fatal() {
        for junk in [
            "",
            "not json",
            "[]",
            "{\"type\":\"stop\",\"run\":\"r\"}",
            "{\"v\":2,\"type\":\"stop\",\"run\":\"r\"}",
            "{\"v\":1,\"type\":\"dance\"}",
            "{\"v\":1,\"type\":\"stop\"}",
            "{\"v\":\"1\"}",
        ] {
            assert!(decode::<ToAgent>(junk).is_none(), "{junk}");
            assert!(decode::<ToCoordinator>(junk).is_none(), "{junk}");
        }
    }

    #[test]
    fn keys_share_a_prefix() {
        let k = Keys::new("lt");
        assert_eq!(k.agent("east-1"), "lt:agent:east-1");
        assert_eq!(k.inbox("east-1"), "lt:agent:east-1:inbox");
        assert_eq!(k.events("abc"), "lt:run:abc:events");
        assert_eq!(k.claim("east-1"), "lt:agent:east-1:claim");
        assert!(k.agent_pattern().starts_with("lt:"));
    }
}
