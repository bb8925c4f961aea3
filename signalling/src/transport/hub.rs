//! The hub: the router plus every live connection's outbox (its bounded send
//! queue and its close order), under one lock so that the router's actions
//! reach the queues in the order it produced them. A queue that overflows
//! closes its connection ([`Close::QueueFull`]) rather than grow.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use proto::close::Close;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::cluster::node::Outbox as NodeOutbox;
use crate::metrics::Stamp;
use crate::registry::{ConnId, Role};
use crate::router::{Action, Claim, Frame, Router};

/// A frame on its way to one connection, stamped with the arrival time of
/// the frame it answers or forwards (for the forwarding-latency histogram).
pub(super) type Queued = (Frame, Stamp);

/// How a connection's writer is told to stop.
#[derive(Debug)]
pub(super) struct CloseOrder {
    pub close: Close,
    /// Skip what is still queued (the peer is not reading, or the server is
    /// shutting down).
    pub urgent: bool,
}

/// The router's way out to one connection.
pub(super) struct Outbox {
    pub queue: mpsc::Sender<Queued>,
    pub close: oneshot::Sender<CloseOrder>,
}

/// The router plus the outboxes of every live connection, under one lock so
/// that actions are queued in the order the router produced them.
pub struct Hub {
    inner: Mutex<HubInner>,
}

struct HubInner {
    router: Router,
    outboxes: HashMap<ConnId, Outbox>,
    /// Connections closed because their send queue was full.
    queue_full: u64,
    /// In a cluster: the queue of messages to other nodes.
    to_nodes: Option<NodeOutbox>,
    /// Messages to other nodes dropped because that queue was full.
    to_nodes_dropped: u64,
}

impl Hub {
    pub fn new(router: Router, to_nodes: Option<NodeOutbox>) -> Self {
        Hub {
            inner: Mutex::new(HubInner {
                router,
                outboxes: HashMap::new(),
                queue_full: 0,
                to_nodes,
                to_nodes_dropped: 0,
            }),
        }
    }

    /// Run `f` on the router and carry out the actions it returns (the
    /// cluster link's way in: messages from other nodes, directory updates).
    pub fn apply(&self, f: impl FnOnce(&mut Router) -> Vec<Action>) {
        let mut inner = self.lock();
        let actions = f(&mut inner.router);
        inner.dispatch(actions, Instant::now());
    }

    /// Messages to other nodes dropped because the bus queue was full.
    pub fn to_nodes_dropped(&self) -> u64 {
        self.lock().to_nodes_dropped
    }

    fn lock(&self) -> MutexGuard<'_, HubInner> {
        // A panic while holding the lock leaves the registry as it was at the
        // panic; carrying on beats taking every connection down.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run `f` on the router (for snapshots, counters, tests).
    pub fn with_router<T>(&self, f: impl FnOnce(&Router) -> T) -> T {
        f(&self.lock().router)
    }

    pub(super) fn connect(&self, role: Role, remote: String, outbox: impl FnOnce(ConnId) -> Outbox) -> ConnId {
        let now_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut inner = self.lock();
        let (conn, actions) = inner.router.connect_at(role, remote, now_unix);
        inner.outboxes.insert(conn, outbox(conn));
        inner.dispatch(actions, Instant::now());
        conn
    }

    pub(super) fn receive(&self, conn: ConnId, frame: Frame, arrived: Instant) {
        self.receive_claimed(conn, frame, arrived, None);
    }

    /// [`Hub::receive`] of an `endpointId` the cluster has answered.
    pub(super) fn receive_claimed(&self, conn: ConnId, frame: Frame, arrived: Instant, claim: Option<Claim>) {
        let mut inner = self.lock();
        let actions = inner.router.receive_claimed(conn, frame, claim);
        inner.dispatch(actions, arrived);
    }

    /// Close the player (or streamer/SFU) with this id on the operator's
    /// request; false when nobody has that id.
    pub fn close_by_id(&self, player_side: bool, id: &str, close: Close) -> bool {
        let mut inner = self.lock();
        let conn = if player_side {
            inner.router.registry().player_by_id(id)
        } else {
            inner.router.registry().streamer_by_id(id)
        };
        let Some(conn) = conn else { return false };
        let actions = inner.router.close_conn(conn, close);
        inner.dispatch(actions, Instant::now());
        true
    }

    /// Connections closed so far because they did not read.
    pub fn queue_full_closes(&self) -> u64 {
        self.lock().queue_full
    }

    /// Frames queued towards connections: (total, deepest queue).
    pub fn queue_depths(&self) -> (usize, usize) {
        let inner = self.lock();
        inner
            .outboxes
            .values()
            .map(|o| o.queue.max_capacity() - o.queue.capacity())
            .fold((0, 0), |(t, m), d| (t + d, m.max(d)))
    }

    /// The connection is gone or must go: forget it, tell the router, and
    /// (when `order` is given) tell its writer how to close.
    pub(super) fn disconnect(&self, conn: ConnId, order: Option<CloseOrder>) {
        let mut inner = self.lock();
        inner.close(conn, order);
    }

    /// Close every connection (server shutdown).
    pub(super) fn close_all(&self, close: Close) {
        let mut inner = self.lock();
        // Every socket gets this close, not the "streamer disconnected" that
        // its streamer's going would cause: orders first, then the router.
        let outboxes: Vec<(ConnId, Outbox)> = inner.outboxes.drain().collect();
        for (conn, outbox) in outboxes {
            let _ = outbox.close.send(CloseOrder { close: close.clone(), urgent: true });
            let actions = inner.router.disconnect(conn);
            inner.dispatch(actions, Instant::now());
        }
    }
}

impl HubInner {
    fn dispatch(&mut self, actions: Vec<Action>, arrived: Instant) {
        let arrived = Stamp::of(arrived);
        let mut overflowed = Vec::new();
        for action in actions {
            match action {
                Action::Send { to, frame } => {
                    let Some(outbox) = self.outboxes.get(&to) else { continue };
                    match outbox.queue.try_send((frame, arrived)) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => overflowed.push(to),
                        // The writer is already finishing; its disconnect is on its way.
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
                Action::Close { conn, close } => {
                    if let Some(outbox) = self.outboxes.remove(&conn) {
                        let _ = outbox.close.send(CloseOrder { close, urgent: false });
                    }
                }
                Action::ToNode { node, message } => {
                    // Never wait on the bus here: a slow Redis must not hold up local routing.
                    let sent = self.to_nodes.as_ref().is_some_and(|q| q.try_send((node, message)).is_ok());
                    if !sent {
                        self.to_nodes_dropped += 1;
                    }
                }
            }
        }
        for conn in overflowed {
            self.queue_full += 1;
            let close = Close::QueueFull;
            warn!(peer = %self.router.label(conn), "send queue full; closing with {}", close.code());
            self.close(conn, Some(CloseOrder { close, urgent: true }));
        }
    }

    fn close(&mut self, conn: ConnId, order: Option<CloseOrder>) {
        if let Some(outbox) = self.outboxes.remove(&conn) {
            if let Some(order) = order {
                let _ = outbox.close.send(order);
            }
        }
        let actions = self.router.disconnect(conn);
        self.dispatch(actions, Instant::now());
    }
}
