//! The Redis I/O of a node: one multiplexed connection for commands and
//! publishes (reconnected on demand), the scripts that keep claims atomic,
//! and the reads of what other nodes published. No routing here.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

use super::directory::{NodeRecord, StreamerRecord};
use super::keys::Keys;
use super::wire::NodeId;
use crate::snapshot::Snapshot;

/// Why a Redis operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// How long one Redis round trip may take before the bus counts as down.
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// A node's connection to Redis.
pub struct Bus {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    pub keys: Keys,
    pub node: NodeId,
}

/// A streamer as the heartbeat registers it.
#[derive(Debug, Clone)]
pub struct Registration {
    pub id: String,
    /// `{node}/{conn}`: which connection of which node holds the id.
    pub owner: String,
    pub record: StreamerRecord,
}

/// What the heartbeat learnt about one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// Held, with its registration order.
    Held(u64),
    /// Another node holds the id (both handed it out while Redis was away).
    Conflict,
}

/// What a heartbeat answers.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// One per registration, in order.
    pub registered: Vec<Registered>,
    /// Someone is reading the REST API: publish the registry.
    pub api_wanted: bool,
}

/// Everything other nodes published, read in one go.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: Vec<NodeRecord>,
    /// Read only when asked for (see [`Bus::read`]).
    pub streamers: Option<Vec<StreamerRecord>>,
}

impl Bus {
    pub fn new(url: &str, keys: Keys, node: NodeId) -> Result<Bus, BusError> {
        Ok(Bus { client: redis::Client::open(url)?, conn: Mutex::new(None), keys, node })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The shared connection, made when there is none.
    async fn conn(&self) -> Result<MultiplexedConnection, BusError> {
        if let Some(c) = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(c);
        }
        let config = redis::AsyncConnectionConfig::new().set_connection_timeout(TIMEOUT).set_response_timeout(TIMEOUT);
        let c = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Run `cmd` (see [`Bus::guarded`]).
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BusError> {
        let mut c = self.conn().await?;
        self.guarded(cmd.query_async(&mut c)).await
    }

    /// `request` within [`TIMEOUT`]; a failure drops the connection so the next call reconnects.
    async fn guarded<T>(
        &self,
        request: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BusError> {
        match tokio::time::timeout(TIMEOUT, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.forget();
                Err(e.into())
            }
            Err(_) => {
                self.forget();
                Err(BusError::Timeout(TIMEOUT))
            }
        }
    }

    fn forget(&self) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Publish messages (already encoded) in one round trip, in order.
    pub async fn publish(&self, batch: &[(String, String)]) -> Result<(), BusError> {
        let mut pipe = redis::pipe();
        for (channel, text) in batch {
            pipe.publish(channel, text).ignore();
        }
        let mut c = self.conn().await?;
        self.guarded(pipe.query_async::<()>(&mut c)).await
    }

    /// Claim a streamer id for `owner`: `requested` if free (or already
    /// `owner`'s), else — unless `exact` — the first free `requested1`,
    /// `requested2`, …; `held`, a numbered variant of `requested` the
    /// streamer already has while `requested` is someone else's, is kept.
    /// Returns the id and its registration order, or `None` (exact and taken).
    pub async fn claim(
        &self,
        owner: &str,
        requested: &str,
        held: &str,
        exact: bool,
        ttl: Duration,
    ) -> Result<Option<(String, u64)>, BusError> {
        const CLAIM: &str = r#"
            local p, owner, req, held, exact, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
            local function take(id)
                local k = p .. ':streamer:' .. id
                local holder = redis.call('GET', k)
                if holder and holder ~= owner then return nil end
                redis.call('SET', k, owner, 'PX', ttl)
                local order = redis.call('ZSCORE', p .. ':streamers', id)
                if not order then
                    order = redis.call('INCR', p .. ':streamer_seq')
                    redis.call('ZADD', p .. ':streamers', order, id)
                end
                return {id, tostring(order)}
            end
            if held ~= '' and held ~= req and string.sub(held, 1, #req) == req
                and string.match(string.sub(held, #req + 1), '^%d+$') then
                local holder = redis.call('GET', p .. ':streamer:' .. req)
                if holder and holder ~= owner then
                    local r = take(held)
                    if r then return r end
                end
            end
            local r = take(req)
            if r then return r end
            if exact == '1' then return false end
            local n = 1
            while true do
                r = take(req .. n)
                if r then return r end
                n = n + 1
            end"#;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CLAIM)
            .arg(0)
            .arg(&self.keys.prefix)
            .arg(owner)
            .arg(requested)
            .arg(held)
            .arg(if exact { "1" } else { "0" })
            .arg(ttl.as_millis() as u64);
        let got: Option<(String, String)> = self.query(&cmd).await?;
        Ok(got.map(|(id, order)| {
            let order = order.parse::<f64>().map_or(u64::MAX, |o| o as u64);
            (id, order)
        }))
    }

    /// One heartbeat: refresh this node's record and snapshot, (re-)register
    /// its streamers (an id held by another owner is a conflict, reported),
    /// and release ids it no longer holds. One script, so a reader never sees
    /// half of it.
    pub async fn heartbeat(
        &self,
        record: &NodeRecord,
        snapshot: Option<&str>,
        registrations: &[Registration],
        released: &[(String, String)],
        ttl: Duration,
    ) -> Result<Heartbeat, BusError> {
        const HEARTBEAT: &str = r#"
            local p, node, ttl = ARGV[1], ARGV[2], ARGV[3]
            redis.call('SET', p .. ':node:' .. node, ARGV[4], 'PX', ttl)
            redis.call('SADD', p .. ':nodes', node)
            if ARGV[5] ~= '' then
                redis.call('SET', p .. ':node:' .. node .. ':snapshot', ARGV[5], 'PX', ttl)
            else
                redis.call('PEXPIRE', p .. ':node:' .. node .. ':snapshot', ttl)
            end
            local n = tonumber(ARGV[6])
            local out = {redis.call('EXISTS', p .. ':api_wanted')}
            local i = 7
            for _ = 1, n do
                local id, owner, info = ARGV[i], ARGV[i + 1], ARGV[i + 2]
                i = i + 3
                local k = p .. ':streamer:' .. id
                local holder = redis.call('GET', k)
                if holder and holder ~= owner then
                    table.insert(out, -1)
                else
                    redis.call('SET', k, owner, 'PX', ttl)
                    redis.call('SET', k .. ':info', info, 'PX', ttl)
                    local order = redis.call('ZSCORE', p .. ':streamers', id)
                    if not order then
                        order = redis.call('INCR', p .. ':streamer_seq')
                        redis.call('ZADD', p .. ':streamers', order, id)
                    end
                    table.insert(out, tonumber(order))
                end
            end
            local r = tonumber(ARGV[i])
            i = i + 1
            for _ = 1, r do
                local id, owner = ARGV[i], ARGV[i + 1]
                i = i + 2
                local k = p .. ':streamer:' .. id
                if redis.call('GET', k) == owner then
                    redis.call('DEL', k, k .. ':info')
                    redis.call('ZREM', p .. ':streamers', id)
                end
            end
            return out"#;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(HEARTBEAT)
            .arg(0)
            .arg(&self.keys.prefix)
            .arg(&self.node)
            .arg(ttl.as_millis() as u64)
            .arg(serde_json::to_string(record).unwrap_or_default())
            .arg(snapshot.unwrap_or_default())
            .arg(registrations.len());
        for r in registrations {
            cmd.arg(&r.id).arg(&r.owner).arg(serde_json::to_string(&r.record).unwrap_or_default());
        }
        cmd.arg(released.len());
        for (id, owner) in released {
            cmd.arg(id).arg(owner);
        }
        let answer: Vec<i64> = self.query(&cmd).await?;
        let api_wanted = answer.first().is_some_and(|w| *w == 1);
        let registered =
            answer.into_iter().skip(1).map(|o| if o < 0 { Registered::Conflict } else { Registered::Held(o as u64) });
        Ok(Heartbeat { registered: registered.collect(), api_wanted })
    }

    /// What node `node` last published about itself, if its record has not expired.
    pub async fn node_record(&self, node: &str) -> Result<Option<NodeRecord>, BusError> {
        let text: Option<String> = self.query(redis::cmd("GET").arg(self.keys.node(node))).await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// This node's registry, for the REST API of the others.
    pub async fn put_snapshot(&self, json: &str, ttl: Duration) -> Result<(), BusError> {
        let key = self.keys.snapshot(&self.node);
        let _: () = self.query(redis::cmd("SET").arg(key).arg(json).arg("PX").arg(ttl.as_millis() as u64)).await?;
        Ok(())
    }

    /// Ask every node to publish its registry for the next `ttl`; true when
    /// nobody had asked yet (the nodes then publish at their next heartbeat).
    pub async fn want_snapshots(&self, ttl: Duration) -> Result<bool, BusError> {
        let key = self.keys.api_wanted();
        let fresh: Option<String> =
            self.query(redis::cmd("SET").arg(&key).arg(1).arg("NX").arg("PX").arg(ttl.as_millis() as u64)).await?;
        if fresh.is_none() {
            let _: i64 = self.query(redis::cmd("PEXPIRE").arg(&key).arg(ttl.as_millis() as u64)).await?;
        }
        Ok(fresh.is_some())
    }

    /// What every node published: live nodes and, with `streamers` (it is
    /// the cluster's size each time), every streamer with its order. Entries
    /// whose keys have expired are pruned from the indexes on the way.
    pub async fn read(&self, streamers: bool) -> Result<ClusterView, BusError> {
        let node_ids: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(self.keys.nodes())).await?;
        let mut view = ClusterView::default();
        if !node_ids.is_empty() {
            let keys: Vec<String> = node_ids.iter().map(|n| self.keys.node(n)).collect();
            let records: Vec<Option<String>> = self.query(redis::cmd("MGET").arg(&keys)).await?;
            for (node, record) in node_ids.iter().zip(records) {
                match record.as_deref().map(serde_json::from_str::<NodeRecord>) {
                    Some(Ok(r)) => view.nodes.push(r),
                    Some(Err(e)) => tracing::warn!("cluster: node record of {node} unreadable: {e}"),
                    None => {}
                }
            }
        }
        if !streamers {
            return Ok(view);
        }
        let mut records = Vec::new();
        let ids: Vec<(String, f64)> =
            self.query(redis::cmd("ZRANGE").arg(self.keys.streamers()).arg(0).arg(-1).arg("WITHSCORES")).await?;
        if !ids.is_empty() {
            let keys: Vec<String> = ids.iter().map(|(id, _)| self.keys.streamer_info(id)).collect();
            let infos: Vec<Option<String>> = self.query(redis::cmd("MGET").arg(&keys)).await?;
            let mut gone = Vec::new();
            for ((id, order), info) in ids.into_iter().zip(infos) {
                match info.as_deref().map(serde_json::from_str::<StreamerRecord>) {
                    Some(Ok(mut r)) => {
                        r.order = order as u64;
                        records.push(r)
                    }
                    Some(Err(e)) => tracing::warn!("cluster: streamer record of {id} unreadable: {e}"),
                    // Claimed but not yet described (the first heartbeat is on its way),
                    // or expired: pruned once the claim has expired too.
                    None => gone.push(id),
                }
            }
            if !gone.is_empty() {
                const PRUNE: &str = r#"
                    for i = 2, #ARGV do
                        if redis.call('EXISTS', ARGV[1] .. ':streamer:' .. ARGV[i]) == 0 then
                            redis.call('ZREM', ARGV[1] .. ':streamers', ARGV[i])
                        end
                    end
                    return 0"#;
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(PRUNE).arg(0).arg(&self.keys.prefix).arg(&gone);
                let _: i64 = self.query(&cmd).await?;
            }
        }
        view.streamers = Some(records);
        Ok(view)
    }

    /// The registries `nodes` published.
    pub async fn snapshots(&self, nodes: &[NodeId]) -> Result<Vec<(NodeId, Snapshot)>, BusError> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = nodes.iter().map(|n| self.keys.snapshot(n)).collect();
        let got: Vec<Option<String>> = self.query(redis::cmd("MGET").arg(&keys)).await?;
        Ok(nodes
            .iter()
            .zip(got)
            .filter_map(|(node, s)| Some((node.clone(), serde_json::from_str::<Snapshot>(s.as_deref()?).ok()?)))
            .collect())
    }

    /// A block of `count` player numbers no other node gets; never below
    /// `floor` (a Redis that lost its data starts its counter again at 0).
    pub async fn player_ids(&self, count: u64, floor: u64) -> Result<u64, BusError> {
        const TAKE: &str = r#"
            local v = redis.call('INCRBY', KEYS[1], ARGV[1])
            local start = v - tonumber(ARGV[1])
            if start < tonumber(ARGV[2]) then
                start = tonumber(ARGV[2])
                redis.call('SET', KEYS[1], start + tonumber(ARGV[1]))
            end
            return start"#;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(TAKE).arg(1).arg(self.keys.player_seq()).arg(count).arg(floor);
        self.query(&cmd).await
    }

    /// Reserve a place on streamer `id` for `ttl` if it has room: with
    /// `max` > 0, `subscribers` plus live reservations must stay under it.
    pub async fn reserve(&self, id: &str, max: usize, subscribers: usize, ttl: Duration) -> Result<bool, BusError> {
        const RESERVE: &str = r#"
            local now = redis.call('TIME')
            local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
            redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
            local max, subs = tonumber(ARGV[1]), tonumber(ARGV[2])
            if max > 0 and subs + redis.call('ZCARD', KEYS[1]) >= max then return 0 end
            local seq = redis.call('INCR', KEYS[1] .. ':seq')
            redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), seq)
            redis.call('PEXPIRE', KEYS[1], ARGV[3])
            redis.call('PEXPIRE', KEYS[1] .. ':seq', ARGV[3])
            return 1"#;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RESERVE).arg(1).arg(self.keys.reservations(id)).arg(max).arg(subscribers).arg(ttl.as_millis() as u64);
        let ok: i64 = self.query(&cmd).await?;
        Ok(ok == 1)
    }

    /// Live reservations per streamer id.
    pub async fn reservations(&self, ids: &[String]) -> Result<Vec<usize>, BusError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("ZCOUNT").arg(self.keys.reservations(id)).arg(now_ms as u64).arg("+inf");
        }
        let mut c = self.conn().await?;
        self.guarded(pipe.query_async::<Vec<usize>>(&mut c)).await
    }

    /// PING, for the bus round-trip time.
    pub async fn ping(&self) -> Result<(), BusError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// Delete this node's record now (clean shutdown): the others need not
    /// wait for it to expire.
    pub async fn leave(&self) -> Result<(), BusError> {
        let mut c = self.conn().await?;
        let _: () = c.del(&[self.keys.node(&self.node), self.keys.snapshot(&self.node)]).await?;
        Ok(())
    }
}
