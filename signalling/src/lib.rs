//! The Pixel Streaming signalling server.
//!
//! Layers, from the wire inwards:
//! - [`transport`]: listeners, WebSocket upgrades, one reader and one writer
//!   task per connection with a bounded send queue, keepalive pings;
//! - [`handshake`]: the upgrade request read and answered without hyper;
//! - [`http`]: REST API, static files and liveness on the player port;
//! - [`router`]: the sans-I/O routing core over the [`registry`];
//! - [`config`] / [`cli`]: what to run, from flags and `config.json`.
//!
//! [`run`] starts a server (ports may be 0) and returns a [`ServerHandle`].

pub mod admin;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod handshake;
pub mod http;
pub mod limits;
pub mod metrics;
mod percent;
pub mod registry;
pub mod router;
pub mod snapshot;
pub mod tls;
pub mod turn;

pub use config::{ConsoleMessages, ServerConfig};
pub use registry::{ConnId, Role};
pub use router::{Action, Router, RouterOptions};
pub mod rate_limit;
pub mod transport;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limits::Gate;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::transport::{Hub, Listener, Shared};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} for {role}s: {source}")]
    Bind { role: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cluster: {0}")]
    Cluster(#[from] cluster::bus::BusError),
    #[error("cluster: {0}")]
    NodeIdInUse(String),
}

/// A running server: its bound addresses, a view of its registry, and the
/// way to stop it.
pub struct ServerHandle {
    shared: Arc<Shared>,
    streamer_addr: SocketAddr,
    player_addr: SocketAddr,
    sfu_addr: SocketAddr,
    redirect_addr: Option<SocketAddr>,
    management_addr: Option<SocketAddr>,
}

impl ServerHandle {
    pub fn streamer_addr(&self) -> SocketAddr {
        self.streamer_addr
    }
    pub fn player_addr(&self) -> SocketAddr {
        self.player_addr
    }
    pub fn sfu_addr(&self) -> SocketAddr {
        self.sfu_addr
    }
    /// With `--https_redirect`: the plain-HTTP port that redirects to [`Self::player_addr`].
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect_addr
    }
    /// With `--management_bind`: the operators' plain-HTTP listener (`/api`, `/metrics`, admin).
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management_addr
    }
    /// True when every WebSocket listener speaks TLS (the management listener never does).
    pub fn is_tls(&self) -> bool {
        self.shared.tls.is_some()
    }
    /// Server tasks still running: listeners, accepted TCP connections and
    /// WebSocket connections. After every client has gone this is the three
    /// listeners, plus one each for the redirect and the management listener when they are on.
    pub fn live_tasks(&self) -> usize {
        self.shared.tasks.len()
    }
    /// The transport's metrics (refusals, closes, forwarding latency).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }
    /// The `GET /metrics` document.
    pub fn render_metrics(&self) -> String {
        self.shared.render_metrics()
    }
    /// The registry now.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.hub.with_router(|r| r.snapshot())
    }
    /// What the router has counted so far.
    pub fn counters(&self) -> router::Counters {
        self.shared.hub.with_router(|r| r.counters().clone())
    }
    /// Connections the router knows (any role, identified or not).
    pub fn connection_count(&self) -> usize {
        self.shared.hub.with_router(|r| r.registry().len())
    }
    /// Close every socket with 1001 and stop listening.
    pub async fn shutdown(self) {
        transport::shutdown(&self.shared).await;
    }
}

/// Pending connections each listener queues before the kernel drops SYNs
/// (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(config: &ServerConfig, port: u16, role: &'static str) -> Result<TcpListener, ServerError> {
    bind_addr(SocketAddr::new(config.bind, port), role).await
}

async fn bind_addr(addr: SocketAddr, role: &'static str) -> Result<TcpListener, ServerError> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        // Linux hands TCP_NODELAY on to accepted sockets: one system call per
        // connection fewer than setting it on each (see `serve_listener`).
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        // A deep accept queue: a thousand players connecting at once must not
        // overflow it (a dropped SYN costs the client a 1 s retry).
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|source| ServerError::Bind { role, addr, source })
}

/// Start the server: bind the three listeners and serve them in the
/// background on the current tokio runtime.
pub async fn run(config: ServerConfig) -> Result<ServerHandle, ServerError> {
    // Certificate problems first, before any port is taken.
    let tls = match &config.tls {
        Some(t) => Some(tls::acceptor(&t.cert_path, &t.key_path)?),
        None => None,
    };
    let streamer = bind(&config, config.streamer_port, "streamer").await?;
    // With TLS the player port proper is `https_port`; `player_port` then
    // only serves the redirect (when asked for) and is otherwise not bound.
    let (player, redirect) = match &config.tls {
        Some(t) => {
            let https = bind(&config, t.https_port, "player (HTTPS)").await?;
            let redirect = if t.https_redirect {
                Some(bind(&config, config.player_port, "player (redirect)").await?)
            } else {
                None
            };
            (https, redirect)
        }
        None => (bind(&config, config.player_port, "player").await?, None),
    };
    let sfu = bind(&config, config.sfu_port, "SFU").await?;
    let management = match config.management_bind {
        Some(addr) => {
            let listener = bind_addr(addr, "management request").await?;
            let bound = listener.local_addr().map_err(|source| ServerError::Bind {
                role: "management request",
                addr,
                source,
            })?;
            Some((listener, bound))
        }
        None => None,
    };
    let local = |l: &TcpListener, role, port| {
        l.local_addr().map_err(|source| ServerError::Bind { role, addr: SocketAddr::new(config.bind, port), source })
    };
    let (streamer_addr, sfu_addr) =
        (local(&streamer, "streamer", config.streamer_port)?, local(&sfu, "SFU", config.sfu_port)?);

    let player_addr = local(&player, "player", config.player_port)?;
    let redirect_addr = match &redirect {
        Some(l) => Some(local(l, "player (redirect)", config.player_port)?),
        None => None,
    };

    let mut router = Router::new(RouterOptions {
        max_players: config.max_players,
        peer_options: config.peer_options.clone(),
        send_player_count: config.send_player_count,
        console_messages: config.console_messages,
        streamer_ids: config.security.streamer_ids.as_ref().map(|ids| ids.iter().cloned().collect()),
        turn: config.turn.clone(),
        node_id: config.cluster.as_ref().map(|c| c.node_id.clone()),
    });
    let cluster = match &config.cluster {
        Some(c) => {
            router.use_cluster_player_ids(fallback_player_ids());
            let (link, outbox) = cluster::ClusterLink::new(c.clone())?;
            link.ensure_unique().await.map_err(ServerError::NodeIdInUse)?;
            Some((link, outbox))
        }
        None => None,
    };
    let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
        let snapshot_weak = weak.clone();
        let snapshot: Arc<dyn Fn() -> Snapshot + Send + Sync> =
            Arc::new(move || snapshot_weak.upgrade().map(|s| s.cluster_snapshot()).unwrap_or_default());
        let control: Arc<dyn admin::Control> = Arc::new(ServerControl(weak.clone()));
        let refresh_weak = weak.clone();
        let refresh: Option<Arc<dyn Fn() -> http::Refresh + Send + Sync>> = config.cluster.as_ref().map(|_| {
            let f: Arc<dyn Fn() -> http::Refresh + Send + Sync> = Arc::new(move || {
                let weak = refresh_weak.clone();
                Box::pin(async move {
                    let link = weak.upgrade().and_then(|s| s.cluster.clone());
                    if let Some(link) = link {
                        link.refresh_snapshots().await;
                    }
                })
            });
            f
        });
        let state = http::HttpState {
            snapshot,
            refresh,
            config: Arc::new(config.clone()),
            started: Instant::now(),
            control: Some(control),
        };
        let management_http = config.management_bind.map(|_| http::management_routes(state.clone()));
        let http = http::routes(state);
        Shared {
            hub: Hub::new(router, cluster.as_ref().map(|(link, _)| link.outbox())),
            gate: Gate::new(config.limits.clone()),
            config,
            http,
            management_http,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            metrics: Metrics::default(),
            refusing_upgrades: AtomicBool::new(false),
            tls,
            https_port: player_addr.port(),
            cluster: cluster.as_ref().map(|(link, _)| link.clone()),
            reservations: Default::default(),
        }
    });
    if let Some((link, outbox)) = cluster {
        let scheme = if shared.tls.is_some() { "https" } else { "http" };
        let player_url = format!("{scheme}://{player_addr}/");
        link.start(Arc::downgrade(&shared), outbox, &shared.tasks, shared.shutdown.clone(), player_url);
        // Player numbers and the directory before the first connection, when Redis answers.
        link.first_beat(std::time::Duration::from_secs(2)).await;
        if link.bus_up() {
            tracing::info!(
                "cluster node {} on {} (prefix {})",
                link.node_id(),
                link.config.redis_url,
                link.config.prefix
            );
        } else {
            tracing::warn!(
                "cluster node {}: Redis at {} does not answer; serving this node's own sessions until it does",
                link.node_id(),
                cluster::redacted_url(&link.config.redis_url)
            );
        }
    }
    for (listener, role) in [(streamer, Role::Streamer), (player, Role::Player), (sfu, Role::Sfu)] {
        shared.tasks.spawn(transport::serve_listener(listener, Listener::Ws(role), shared.clone()));
    }
    if let Some(listener) = redirect {
        shared.tasks.spawn(transport::serve_listener(listener, Listener::Redirect, shared.clone()));
    }
    let management_addr = management.map(|(listener, bound)| {
        shared.tasks.spawn(transport::serve_listener(listener, Listener::Management, shared.clone()));
        bound
    });
    tracing::info!("listening: streamers on {streamer_addr}, players on {player_addr}, SFUs on {sfu_addr}");
    if let Some(addr) = management_addr {
        tracing::info!("management (/api, /metrics, admin) on http://{addr}; not on the player port");
    }
    Ok(ServerHandle { shared, streamer_addr, player_addr, sfu_addr, redirect_addr, management_addr })
}

/// Player numbers for when a cluster node runs out of granted ones while
/// Redis is away: a random range far above what the cluster counter reaches,
/// so that two nodes in that state are very unlikely to meet.
fn fallback_player_ids() -> std::ops::Range<u64> {
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    let start = (1u64 << 40) + (u64::from(u32::from_le_bytes(bytes)) << 20);
    start..start + (1 << 20)
}

/// The admin and metrics routes' way into the running server. Weak: the
/// routes live inside [`Shared`] and must not keep it alive.
struct ServerControl(Weak<Shared>);

impl admin::Control for ServerControl {
    fn kick_player(&self, id: &str) -> bool {
        let Some(s) = self.0.upgrade() else { return false };
        s.hub.close_by_id(true, id, proto::close::Close::Kicked)
    }
    fn disconnect_streamer(&self, id: &str) -> bool {
        let Some(s) = self.0.upgrade() else { return false };
        s.hub.close_by_id(false, id, proto::close::Close::DisconnectedByOperator)
    }
    fn drain(&self) -> usize {
        let Some(s) = self.0.upgrade() else { return 0 };
        s.refusing_upgrades.store(true, Ordering::Relaxed);
        tracing::info!("draining: new WebSocket connections are refused");
        s.hub.with_router(|r| r.registry().len())
    }
    fn metrics(&self) -> String {
        self.0.upgrade().map(|s| s.render_metrics()).unwrap_or_default()
    }
    fn health(&self) -> (u16, &'static str) {
        let Some(s) = self.0.upgrade() else { return (503, "stopping") };
        if s.refusing_upgrades.load(Ordering::Relaxed) {
            (503, "draining")
        } else if s.cluster.as_ref().is_some_and(|c| !c.bus_up()) {
            (200, "degraded")
        } else {
            (200, "ok")
        }
    }
    fn nodes(&self) -> Option<serde_json::Value> {
        let s = self.0.upgrade()?;
        let link = s.cluster.as_ref()?;
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let (streamers, sfus, players) = s.hub.with_router(|r| {
            let locals = r.local_streamers();
            (
                locals.iter().filter(|l| !l.sfu).count(),
                locals.iter().filter(|l| l.sfu).count(),
                r.registry().player_count(),
            )
        });
        let mut nodes = vec![serde_json::json!({
            "node": link.node_id(),
            "self": true,
            "playerUrl": format!("{}://{}/", if s.tls.is_some() { "https" } else { "http" }, SocketAddr::new(s.config.bind, s.https_port)),
            "streamers": streamers,
            "sfus": sfus,
            "players": players,
            "draining": s.refusing_upgrades.load(Ordering::Relaxed),
            "heartbeatAgeMs": 0,
            "busUp": link.bus_up(),
        })];
        for n in link.nodes().into_iter().filter(|n| n.node != link.node_id()) {
            nodes.push(serde_json::json!({
                "node": n.node,
                "self": false,
                "playerUrl": n.player_url,
                "streamers": n.streamers,
                "sfus": n.sfus,
                "players": n.players,
                "draining": n.draining,
                "heartbeatAgeMs": now_ms.saturating_sub(n.heartbeat_ms),
            }));
        }
        Some(serde_json::Value::Array(nodes))
    }
    fn pick(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = admin::Pick> + Send + 'static>> {
        let weak = self.0.clone();
        Box::pin(async move {
            let Some(s) = weak.upgrade() else { return admin::Pick::Unavailable("server stopping".into()) };
            s.pick().await
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// `serve_listener` relies on accepted sockets inheriting TCP_NODELAY.
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let config = crate::ServerConfig::ephemeral();
        let listener = super::bind(&config, 0, "test").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        assert!(accepted.nodelay().expect("getsockopt"));
        drop(client);
    }
}
