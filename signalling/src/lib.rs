//! The Pixel Streaming signalling server.
//!
//! Layers, from the wire inwards:
//! - [`transport`]: listeners, WebSocket upgrades, one reader and one writer
//!   task per connection with a bounded send queue, keepalive pings;
//! - [`http`]: REST API, static files and liveness on the player port;
//! - [`router`]: the sans-I/O routing core over the [`registry`];
//! - [`config`] / [`cli`]: what to run, from flags and `config.json`.
//!
//! [`run`] starts a server (ports may be 0) and returns a [`ServerHandle`].

pub mod cli;
pub mod config;
pub mod http;
pub mod registry;
pub mod router;
pub mod snapshot;

pub use config::{ConsoleMessages, ServerConfig};
pub use registry::{ConnId, Role};
pub use router::{Action, Router, RouterOptions};
pub mod rate_limit;
pub mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::snapshot::Snapshot;
use crate::transport::{Hub, Shared};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} for {role}s: {source}")]
    Bind { role: &'static str, addr: SocketAddr, source: std::io::Error },
}

/// A running server: its bound addresses, a view of its registry, and the
/// way to stop it.
pub struct ServerHandle {
    shared: Arc<Shared>,
    streamer_addr: SocketAddr,
    player_addr: SocketAddr,
    sfu_addr: SocketAddr,
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

async fn bind(config: &ServerConfig, port: u16, role: &'static str) -> Result<TcpListener, ServerError> {
    let addr = SocketAddr::new(config.bind, port);
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { role, addr, source })
}

/// Start the server: bind the three listeners and serve them in the
/// background on the current tokio runtime.
pub async fn run(mut config: ServerConfig) -> Result<ServerHandle, ServerError> {
    if config.public_config.as_object().is_some_and(|o| o.is_empty()) {
        config.public_config = cli::public_config(&config);
    }
    let streamer = bind(&config, config.streamer_port, "streamer").await?;
    let player = bind(&config, config.player_port, "player").await?;
    let sfu = bind(&config, config.sfu_port, "SFU").await?;
    let local = |l: &TcpListener, role, port| {
        l.local_addr().map_err(|source| ServerError::Bind { role, addr: SocketAddr::new(config.bind, port), source })
    };
    let (streamer_addr, player_addr, sfu_addr) = (
        local(&streamer, "streamer", config.streamer_port)?,
        local(&player, "player", config.player_port)?,
        local(&sfu, "SFU", config.sfu_port)?,
    );

    let router = Router::new(RouterOptions {
        max_players: config.max_players,
        peer_options: config.peer_options.clone(),
        send_player_count: config.send_player_count,
        console_messages: config.console_messages,
    });
    let shared = Arc::new_cyclic(|weak: &std::sync::Weak<Shared>| {
        let weak = weak.clone();
        let snapshot: Arc<dyn Fn() -> Snapshot + Send + Sync> =
            Arc::new(move || weak.upgrade().map(|s| s.hub.with_router(|r| r.snapshot())).unwrap_or_default());
        let http =
            http::routes(http::HttpState { snapshot, config: Arc::new(config.clone()), started: Instant::now() });
        Shared {
            hub: Hub::new(router),
            config,
            http: Some(http),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    });
    for (listener, role) in [(streamer, Role::Streamer), (player, Role::Player), (sfu, Role::Sfu)] {
        shared.tasks.spawn(transport::serve_listener(listener, role, shared.clone()));
    }
    tracing::info!("listening: streamers on {streamer_addr}, players on {player_addr}, SFUs on {sfu_addr}");
    Ok(ServerHandle { shared, streamer_addr, player_addr, sfu_addr })
}
