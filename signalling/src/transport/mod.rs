//! The I/O layer: listeners, WebSocket upgrades and per-connection tasks.
//!
//! A stream accepted by a listener ([`accept`]) has its first request read
//! and is handed to the WebSocket or to hyper ([`handoff`]); an upgrade is
//! admitted ([`admission`]) and becomes a connection by one path
//! ([`upgrade`]). A connection is registered with the [`Hub`] ([`hub`]) and
//! served by one task that runs a reader (frames → router) and a writer
//! (bounded queue → socket, plus keepalive pings) side by side
//! ([`connection`]). [`exposition`] renders `GET /metrics`.

mod accept;
mod admission;
mod connection;
mod exposition;
mod handoff;
mod hub;
mod upgrade;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use proto::close::Close;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;
use warp::reply::Response;

pub use accept::{serve_listener, Listener};
pub use hub::Hub;

use crate::config::ServerConfig;
use crate::limits::Gate;
use crate::metrics::Metrics;

/// Everything a listener needs, shared by all of them.
pub struct Shared {
    pub hub: Hub,
    pub config: ServerConfig,
    /// The player port's HTTP routes.
    pub http: warp::filters::BoxedFilter<(Response,)>,
    /// The management listener's routes, when `--management_bind` is set.
    pub management_http: Option<warp::filters::BoxedFilter<(Response,)>>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// What only the transport sees: refusals, closes, latency.
    pub metrics: Metrics,
    /// Live WebSocket connections per role and IP, against the limits.
    pub gate: Gate,
    /// Set by the operator's drain (`POST /api/admin/drain`): new upgrades
    /// are refused, sessions carry on.
    pub refusing_upgrades: AtomicBool,
    /// TLS for every listener except the redirect one.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The bound HTTPS port, for `--https_redirect` locations.
    pub https_port: u16,
    /// In a cluster: this node's link to the others.
    pub cluster: Option<std::sync::Arc<crate::cluster::ClusterLink>>,
    /// On one node: matchmaking reservations.
    pub reservations: std::sync::Mutex<crate::cluster::matchmaking::LocalReservations>,
}

impl Shared {
    /// The registry for the REST API: this node's, plus the cluster's other
    /// nodes' as last read.
    pub fn cluster_snapshot(&self) -> crate::snapshot::Snapshot {
        let local = self.hub.with_router(|r| r.snapshot());
        match &self.cluster {
            Some(link) => link.cluster_snapshot(local),
            None => local,
        }
    }

    /// Matchmaking: a streamer with room, reserved for a few seconds.
    pub async fn pick(&self) -> crate::admin::Pick {
        use crate::admin::Pick;
        use crate::cluster::matchmaking::{rank, Candidate};
        if let Some(link) = &self.cluster {
            return match link.pick(self).await {
                Ok(Some((id, node))) => Pick::Streamer { id, node: Some(node) },
                Ok(None) => Pick::NoneFree,
                Err(e) => Pick::Unavailable(e.to_string()),
            };
        }
        let draining = self.refusing_upgrades.load(std::sync::atomic::Ordering::Relaxed);
        let now = std::time::Instant::now();
        let mut reservations = self.reservations.lock().unwrap_or_else(|p| p.into_inner());
        let candidates: Vec<Candidate> = self.hub.with_router(|r| {
            r.local_streamers()
                .into_iter()
                .enumerate()
                .filter(|(_, s)| s.listed)
                .map(|(order, s)| Candidate {
                    reserved: reservations.count(&s.id, now),
                    id: s.id,
                    node: None,
                    order: order as u64,
                    subscribers: s.subscribers,
                    node_draining: draining,
                })
                .collect()
        });
        for c in rank(candidates, self.config.max_players) {
            if reservations.reserve(&c.id, self.config.max_players, c.subscribers, now) {
                return Pick::Streamer { id: c.id, node: None };
            }
        }
        Pick::NoneFree
    }
}

/// Close every connection with 1001 and stop the listeners.
pub async fn shutdown(shared: &Shared) {
    shared.hub.close_all(Close::Shutdown);
    shared.shutdown.cancel();
    shared.tasks.close();
    if tokio::time::timeout(Duration::from_secs(5), shared.tasks.wait()).await.is_err() {
        warn!("some connections did not finish closing within 5 s");
    }
}
