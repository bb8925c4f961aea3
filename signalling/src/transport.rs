//! The I/O layer: listeners, WebSocket upgrades and per-connection tasks.
//!
//! Each listener is a hyper HTTP/1 server. A WebSocket upgrade request becomes
//! a connection: it is registered with the [`Hub`] and served by one task that
//! runs a reader (frames → router) and a writer (bounded queue → socket, plus
//! keepalive pings) side by side. Anything else on the player port goes to
//! the warp routes of [`crate::http`]; the streamer and SFU ports answer 426.
//!
//! The WebSocket is built here rather than with `warp::ws()` so that we choose
//! its buffers: tungstenite's default 128 KiB read buffer per connection would
//! cost ~20× the memory of the rest of a connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming as HyperBody;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role as WsRole, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{debug, info, warn};
use warp::reply::{Reply, Response};

use crate::config::ServerConfig;
use crate::rate_limit::RateLimit;
use crate::registry::{ConnId, Role};
use crate::router::{Action, Frame, Router};

/// Close reasons of the transport.
pub mod reasons {
    pub const QUEUE_FULL: &str = "send queue full: the peer is not reading";
    pub const RATE_LIMIT: &str = "message rate limit exceeded";
    pub const TOO_BIG: &str = "message too big";
    pub const INVALID_UTF8: &str = "invalid UTF-8 in a text frame";
    pub const PING_TIMEOUT: &str = "keepalive ping not answered";
    pub const SHUTDOWN: &str = "server shutting down";
}

/// How a connection's writer is told to stop.
#[derive(Debug)]
struct CloseOrder {
    code: u16,
    reason: String,
    /// Skip what is still queued (the peer is not reading, or the server is
    /// shutting down).
    urgent: bool,
}

/// The router's way out to one connection.
struct Outbox {
    queue: mpsc::Sender<Frame>,
    close: oneshot::Sender<CloseOrder>,
}

/// The router plus the outboxes of every live connection, under one lock so
/// that actions are queued in the order the router produced them.
pub struct Hub {
    inner: Mutex<HubInner>,
}

struct HubInner {
    router: Router,
    outboxes: HashMap<ConnId, Outbox>,
}

impl Hub {
    pub fn new(router: Router) -> Self {
        Hub { inner: Mutex::new(HubInner { router, outboxes: HashMap::new() }) }
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

    fn connect(&self, role: Role, remote: String, outbox: impl FnOnce(ConnId) -> Outbox) -> ConnId {
        let mut inner = self.lock();
        let (conn, actions) = inner.router.connect(role, remote);
        inner.outboxes.insert(conn, outbox(conn));
        inner.dispatch(actions);
        conn
    }

    fn receive(&self, conn: ConnId, frame: Frame) {
        let mut inner = self.lock();
        let actions = inner.router.receive(conn, frame);
        inner.dispatch(actions);
    }

    /// The connection is gone or must go: forget it, tell the router, and
    /// (when `order` is given) tell its writer how to close.
    fn disconnect(&self, conn: ConnId, order: Option<CloseOrder>) {
        let mut inner = self.lock();
        inner.close(conn, order);
    }

    /// Close every connection (server shutdown).
    fn close_all(&self, code: u16, reason: &str) {
        let mut inner = self.lock();
        // Every socket gets this close, not the "streamer disconnected" that
        // its streamer's going would cause: orders first, then the router.
        let outboxes: Vec<(ConnId, Outbox)> = inner.outboxes.drain().collect();
        for (conn, outbox) in outboxes {
            let _ = outbox.close.send(CloseOrder { code, reason: reason.to_string(), urgent: true });
            let actions = inner.router.disconnect(conn);
            inner.dispatch(actions);
        }
    }
}

impl HubInner {
    fn dispatch(&mut self, actions: Vec<Action>) {
        let mut overflowed = Vec::new();
        for action in actions {
            match action {
                Action::Send { to, frame } => {
                    let Some(outbox) = self.outboxes.get(&to) else { continue };
                    match outbox.queue.try_send(frame) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => overflowed.push(to),
                        // The writer is already finishing; its disconnect is on its way.
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
                Action::Close { conn, code, reason } => {
                    if let Some(outbox) = self.outboxes.remove(&conn) {
                        let _ = outbox.close.send(CloseOrder { code, reason, urgent: false });
                    }
                }
            }
        }
        for conn in overflowed {
            warn!(peer = %self.router.label(conn), "send queue full; closing with 1008");
            let order = CloseOrder { code: proto::close::POLICY, reason: reasons::QUEUE_FULL.into(), urgent: true };
            self.close(conn, Some(order));
        }
    }

    fn close(&mut self, conn: ConnId, order: Option<CloseOrder>) {
        if let Some(outbox) = self.outboxes.remove(&conn) {
            if let Some(order) = order {
                let _ = outbox.close.send(order);
            }
        }
        let actions = self.router.disconnect(conn);
        self.dispatch(actions);
    }
}

/// Everything a listener needs, shared by all of them.
pub struct Shared {
    pub hub: Hub,
    pub config: ServerConfig,
    pub http: Option<warp::filters::BoxedFilter<(Response,)>>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

impl Shared {
    fn ws_config(&self) -> WebSocketConfig {
        // Small buffers: most signalling frames are well under 4 KiB, and the
        // read buffer grows on demand for the odd large SDP.
        WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(self.config.max_message_size))
            .max_frame_size(Some(self.config.max_message_size))
    }
}

/// Accept connections on `listener` until shutdown.
pub async fn serve_listener(listener: TcpListener, role: Role, shared: Arc<Shared>) {
    loop {
        let (stream, addr) = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept on the {} port failed: {e}", role.as_str());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared2 = shared.clone();
        shared.tasks.spawn(async move {
            let svc_shared = shared2.clone();
            let service = service_fn(move |req| {
                let shared = svc_shared.clone();
                async move { Ok::<_, std::convert::Infallible>(handle_request(req, addr, role, shared).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        debug!("http connection from {addr}: {e}");
                    }
                }
                _ = shared2.shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
}

fn header_has_token(req: &http::Request<HyperBody>, name: http::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn plain(status: http::StatusCode, body: &'static str) -> Response {
    warp::reply::with_status(body, status).into_response()
}

async fn handle_request(
    mut req: http::Request<HyperBody>,
    addr: SocketAddr,
    role: Role,
    shared: Arc<Shared>,
) -> Response {
    let is_upgrade = header_has_token(&req, http::header::CONNECTION, "upgrade")
        && header_has_token(&req, http::header::UPGRADE, "websocket");
    if !is_upgrade {
        return match (&shared.http, role) {
            (Some(routes), Role::Player) => {
                let mut service = warp::service(routes.clone());
                match service.call(req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
            _ => plain(http::StatusCode::UPGRADE_REQUIRED, "This port only accepts WebSocket connections.\n"),
        };
    }
    let key = req.headers().get(http::header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes().to_vec());
    let version_ok = req.headers().get(http::header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let (Some(key), true) = (key, version_ok) else {
        return plain(http::StatusCode::BAD_REQUEST, "Bad WebSocket handshake.\n");
    };
    // Echo the first offered subprotocol, as Wilbur does.
    let protocol = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').map(str::trim).find(|p| !p.is_empty()))
        .and_then(|p| http::HeaderValue::from_str(p).ok());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_shared = shared.clone();
    shared.tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = task_shared.ws_config();
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, Some(config)).await;
                run_connection(ws, role, addr, task_shared).await;
            }
            Err(e) => debug!("websocket upgrade from {addr} failed: {e}"),
        }
    });
    let mut response = http::Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(&key));
    if let Some(protocol) = protocol {
        response = response.header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    match response.body(warp::reply::Response::default().into_body()) {
        Ok(r) => r,
        Err(_) => plain(http::StatusCode::INTERNAL_SERVER_ERROR, "handshake error\n"),
    }
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Cut a close reason to the 123 bytes a close frame can carry.
fn close_frame(code: u16, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from(reason[..end].to_string()) }
}

/// Serve one WebSocket connection until it closes.
async fn run_connection(ws: Socket, role: Role, addr: SocketAddr, shared: Arc<Shared>) {
    let (queue_tx, mut queue_rx) = mpsc::channel::<Frame>(shared.config.send_queue_len.max(1));
    let (close_tx, mut close_rx) = oneshot::channel::<CloseOrder>();
    let conn = shared.hub.connect(role, addr.to_string(), |_| Outbox { queue: queue_tx, close: close_tx });
    debug!(conn = conn.0, "{} connected from {addr}", role.as_str());

    let (mut sink, mut stream) = ws.split();
    let pong_seen = AtomicBool::new(true);
    // Set by the reader when the peer must be drained after our close (it was
    // sending a frame we refused, so unread bytes would turn into a reset).
    let drain_after_close = AtomicBool::new(false);
    // Cancelled once the writer has sent our close frame: the peer then has a
    // moment to answer before the reader gives up on it.
    let closing = CancellationToken::new();

    let reader = async {
        let mut limit =
            RateLimit::new(shared.config.rate_limit_per_sec, shared.config.rate_limit_burst, Instant::now());
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = async { closing.cancelled().await; tokio::time::sleep(Duration::from_secs(1)).await } => None,
            };
            let Some(item) = item else { break };
            let frame = match item {
                Ok(WsMessage::Text(text)) => Bytes::from(text),
                Ok(WsMessage::Binary(bytes)) => bytes,
                Ok(WsMessage::Pong(_)) => {
                    pong_seen.store(true, Ordering::Relaxed);
                    continue;
                }
                Ok(WsMessage::Ping(_)) | Ok(WsMessage::Frame(_)) => continue,
                Ok(WsMessage::Close(_)) => break,
                Err(err) => {
                    let order = match &err {
                        WsError::Capacity(_) => Some((proto::close::TOO_BIG, reasons::TOO_BIG)),
                        WsError::Utf8(_) => Some((proto::close::INVALID_PAYLOAD, reasons::INVALID_UTF8)),
                        _ => None,
                    };
                    match order {
                        Some((code, reason)) => {
                            warn!(conn = conn.0, "{reason} from {addr}: {err}; closing with {code}");
                            drain_after_close.store(code == proto::close::TOO_BIG, Ordering::Relaxed);
                            let order = CloseOrder { code, reason: reason.to_string(), urgent: true };
                            shared.hub.disconnect(conn, Some(order));
                        }
                        None => debug!(conn = conn.0, "read error from {addr}: {err}"),
                    }
                    break;
                }
            };
            if !limit.allow(Instant::now()) {
                warn!(conn = conn.0, "{addr} exceeded the message rate limit; closing with 1008");
                let order = CloseOrder { code: proto::close::POLICY, reason: reasons::RATE_LIMIT.into(), urgent: true };
                shared.hub.disconnect(conn, Some(order));
                break;
            }
            shared.hub.receive(conn, frame);
        }
        // Socket gone (or refused): make sure the router knows. A no-op when
        // the router already closed this connection.
        shared.hub.disconnect(conn, None);
    };

    let writer = async {
        let mut ping = shared.config.ping_interval.map(|every| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        let mut queue_open = true;
        let order = loop {
            tokio::select! {
                biased;
                order = &mut close_rx => match order {
                    Ok(order) if order.urgent || !queue_open => break Some(order),
                    Ok(order) => {
                        // Deliver what is already queued first (e.g.
                        // `streamerDisconnected` before the close).
                        while let Ok(frame) = queue_rx.try_recv() {
                            if send_text(&mut sink, frame).await.is_err() {
                                break;
                            }
                        }
                        break Some(order);
                    }
                    // No order and the queue is gone: the peer left by itself.
                    Err(_) => break None,
                },
                frame = queue_rx.recv(), if queue_open => match frame {
                    Some(frame) => {
                        // A peer that does not read must not keep its close
                        // order waiting behind a write that cannot finish.
                        let sent = tokio::select! {
                            biased;
                            order = &mut close_rx => Err(order.ok()),
                            result = send_text(&mut sink, frame) => result.map_err(|()| None),
                        };
                        match sent {
                            Ok(()) => {}
                            Err(Some(order)) => break Some(order),
                            Err(None) => {
                                shared.hub.disconnect(conn, None);
                                break None;
                            }
                        }
                    }
                    None => queue_open = false,
                },
                _ = async { ping.as_mut().expect("guarded").tick().await }, if ping.is_some() => {
                    if !pong_seen.swap(false, Ordering::Relaxed) {
                        info!(conn = conn.0, "{addr} did not answer the keepalive ping; closing");
                        shared.hub.disconnect(conn, None);
                        break Some(CloseOrder { code: proto::close::GOING_AWAY, reason: reasons::PING_TIMEOUT.into(), urgent: true });
                    }
                    if send_with_deadline(&mut sink, WsMessage::Ping(Bytes::new())).await.is_err() {
                        shared.hub.disconnect(conn, None);
                        break None;
                    }
                }
            }
        };
        if let Some(order) = order {
            // Short: a peer that is not reading will not take it anyway.
            let close = WsMessage::Close(Some(close_frame(order.code, &order.reason)));
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.flush()).await;
        closing.cancel();
    };

    // Reader and writer run in this one task: half the tasks, and the reader
    // keeps reading while the writer waits on a slow peer.
    tokio::join!(reader, writer);

    if drain_after_close.load(Ordering::Relaxed) {
        if let Ok(ws) = sink.reunite(stream) {
            drain(ws).await;
        }
    }
    debug!(conn = conn.0, "{} from {addr} closed", role.as_str());
}

/// Read and discard what the peer still sends for a moment, so the close
/// frame we sent is not lost to a TCP reset on unread data.
async fn drain(ws: Socket) {
    let mut io = ws.into_inner();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut total = 0usize;
    while total < 64 << 20 {
        match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
}

/// A write that gives up on a peer that does not read.
async fn send_with_deadline<S>(sink: &mut S, message: WsMessage) -> Result<(), ()>
where
    S: futures_util::Sink<WsMessage> + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(10), sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn send_text<S>(sink: &mut S, frame: Frame) -> Result<(), ()>
where
    S: futures_util::Sink<WsMessage> + Unpin,
{
    // The router only produces frames from UTF-8 JSON text.
    let Ok(text) = Utf8Bytes::try_from(frame) else { return Ok(()) };
    send_with_deadline(sink, WsMessage::Text(text)).await
}

/// Close every connection with 1001 and stop the listeners.
pub async fn shutdown(shared: &Shared) {
    shared.hub.close_all(proto::close::GOING_AWAY, reasons::SHUTDOWN);
    shared.shutdown.cancel();
    shared.tasks.close();
    if tokio::time::timeout(Duration::from_secs(5), shared.tasks.wait()).await.is_err() {
        warn!("some connections did not finish closing within 5 s");
    }
}
