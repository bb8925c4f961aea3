//! The I/O layer: listeners, WebSocket upgrades and per-connection tasks.
//!
//! On a WebSocket port the first request head is read by [`crate::handshake`]:
//! an upgrade is answered there (its `101` leaves with the first frames), and
//! anything else goes to hyper (HTTP/1), which also handles an upgrade that
//! follows an earlier request. An upgraded socket becomes a connection: it is
//! registered with the [`Hub`] and served by one task that runs a reader
//! (frames → router) and a writer (bounded queue → socket, plus keepalive
//! pings) side by side. Plain HTTP on the player port goes to the warp routes
//! of [`crate::http`]; the streamer and SFU ports answer 426.
//!
//! The WebSocket is built here rather than with `warp::ws()` so that we choose
//! its buffers: tungstenite's default 128 KiB read buffer per connection would
//! cost ~20× the memory of the rest of a connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming as HyperBody;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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

use crate::auth::{self, Refusal};
use crate::config::ServerConfig;
use crate::handshake::{self, HeadRead, Prefixed};
use crate::limits::{Gate, LimitRefusal, Permit};
use crate::metrics::{Exposition, Metrics, Stamp};
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
    pub const KICKED: &str = "kicked by the operator";
    pub const DISCONNECTED_BY_OPERATOR: &str = "disconnected by the operator";
}

/// A frame on its way to one connection, stamped with the arrival time of
/// the frame it answers or forwards (for the forwarding-latency histogram).
type Queued = (Frame, Stamp);

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
    queue: mpsc::Sender<Queued>,
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
    /// Connections closed because their send queue was full.
    queue_full: u64,
}

impl Hub {
    pub fn new(router: Router) -> Self {
        Hub { inner: Mutex::new(HubInner { router, outboxes: HashMap::new(), queue_full: 0 }) }
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
        let now_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut inner = self.lock();
        let (conn, actions) = inner.router.connect_at(role, remote, now_unix);
        inner.outboxes.insert(conn, outbox(conn));
        inner.dispatch(actions, Instant::now());
        conn
    }

    fn receive(&self, conn: ConnId, frame: Frame, arrived: Instant) {
        let mut inner = self.lock();
        let actions = inner.router.receive(conn, frame);
        inner.dispatch(actions, arrived);
    }

    /// Close the player (or streamer/SFU) with this id on the operator's
    /// request; false when nobody has that id.
    pub fn close_by_id(&self, player_side: bool, id: &str, code: u16, reason: &str) -> bool {
        let mut inner = self.lock();
        let conn = if player_side {
            inner.router.registry().player_by_id(id)
        } else {
            inner.router.registry().streamer_by_id(id)
        };
        let Some(conn) = conn else { return false };
        let actions = inner.router.close_conn(conn, code, reason);
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
                Action::Close { conn, code, reason } => {
                    if let Some(outbox) = self.outboxes.remove(&conn) {
                        let _ = outbox.close.send(CloseOrder { code, reason, urgent: false });
                    }
                }
            }
        }
        for conn in overflowed {
            self.queue_full += 1;
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
        self.dispatch(actions, Instant::now());
    }
}

/// Everything a listener needs, shared by all of them.
pub struct Shared {
    pub hub: Hub,
    pub config: ServerConfig,
    pub http: Option<warp::filters::BoxedFilter<(Response,)>>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// What only the transport sees: refusals, closes, latency.
    pub metrics: Metrics,
    /// Live WebSocket connections per role and IP, against the limits.
    pub gate: Gate,
    /// Set by the admin `drain`: new upgrades are refused, sessions carry on.
    pub draining: AtomicBool,
    /// TLS for every listener except the redirect one.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The bound HTTPS port, for `--https_redirect` locations.
    pub https_port: AtomicU16,
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// WebSockets of this role (and HTTP on the player port).
    Ws(Role),
    /// Plain HTTP that redirects everything to HTTPS.
    Redirect,
}

impl Shared {
    /// The Prometheus exposition for `GET /metrics`.
    pub fn render_metrics(&self) -> String {
        let (counters, registry_len) = self.hub.with_router(|r| (r.counters().clone(), r.registry().len()));
        let (queued, deepest) = self.hub.queue_depths();
        let mut e = Exposition::default();
        let roles = [Role::Streamer, Role::Player, Role::Sfu];
        e.labelled(
            "signalling_connections",
            "gauge",
            "Open WebSocket connections, by role.",
            "role",
            roles.iter().map(|r| (r.as_str(), self.gate.count(*r) as f64)),
        );
        e.single("signalling_registry_entries", "gauge", "Connections the router knows.", registry_len as f64);
        e.transport(&self.metrics);
        e.single("signalling_messages_received_total", "counter", "Frames received.", counters.received as f64);
        let by_type = |m: &std::collections::BTreeMap<&'static str, u64>| {
            m.iter().map(|(k, v)| (*k, *v as f64)).collect::<Vec<_>>()
        };
        e.labelled(
            "signalling_messages_in_total",
            "counter",
            "Valid messages received, by type.",
            "type",
            by_type(&counters.received_by_type),
        );
        e.labelled(
            "signalling_messages_out_total",
            "counter",
            "Messages sent or forwarded, by type.",
            "type",
            by_type(&counters.sent_by_type),
        );
        e.single(
            "signalling_forwards_total",
            "counter",
            "Messages forwarded between peers.",
            counters.forwarded as f64,
        );
        let mut drops: std::collections::BTreeMap<&'static str, u64> = counters.dropped.clone();
        for (k, v) in self.metrics.drops.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            *drops.entry(k).or_insert(0) += v;
        }
        *drops.entry("queue_full").or_insert(0) += self.hub.queue_full_closes();
        e.labelled(
            "signalling_drops_total",
            "counter",
            "Frames dropped or connections ended, by reason.",
            "reason",
            by_type(&drops),
        );
        let failed = counters.sent_by_type.get("subscribeFailed").copied().unwrap_or(0);
        e.single("signalling_subscribe_failures_total", "counter", "subscribeFailed answers.", failed as f64);
        e.single("signalling_queued_frames", "gauge", "Frames waiting in send queues, all connections.", queued as f64);
        e.single("signalling_queue_depth_max", "gauge", "Frames waiting in the deepest send queue.", deepest as f64);
        e.single(
            "signalling_tasks",
            "gauge",
            "Live server tasks (listeners and connections).",
            self.tasks.len() as f64,
        );
        e.single(
            "signalling_draining",
            "gauge",
            "1 while draining.",
            f64::from(u8::from(self.draining.load(Ordering::Relaxed))),
        );
        e.finish()
    }

    fn ws_config(&self) -> WebSocketConfig {
        // Small buffers: most signalling frames are well under 4 KiB, and the
        // read buffer grows on demand for the odd large SDP.
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(self.config.max_message_size))
            .max_frame_size(Some(self.config.max_message_size))
    }
}

/// Initial read buffer per connection. tungstenite allocates it up front for
/// every connection (its default, 128 KiB, would dominate our memory), and
/// grows it on demand for the odd large SDP.
const READ_BUFFER: usize = 2 * 1024;

/// Bytes of frames collected before a write to the socket; a flush writes
/// sooner. The buffer is allocated only as frames are written.
const WRITE_BUFFER: usize = 64 * 1024;

/// Accept connections on `listener` until shutdown.
pub async fn serve_listener(listener: TcpListener, kind: Listener, shared: Arc<Shared>) {
    loop {
        let (stream, addr) = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept on the {kind:?} port failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // (On Linux the listener's TCP_NODELAY is inherited.)
        if cfg!(not(target_os = "linux")) {
            let _ = stream.set_nodelay(true);
        }
        let shared2 = shared.clone();
        shared.tasks.spawn(async move {
            let timeout = shared2.config.limits.handshake_timeout;
            match (&shared2.tls, kind) {
                (Some(tls), Listener::Ws(_)) => {
                    let handshake = tokio::select! {
                        _ = shared2.shutdown.cancelled() => return,
                        // Boxed: the TLS handshake state is large and short-lived.
                        r = Box::pin(tokio::time::timeout(timeout, tls.accept(stream))) => r,
                    };
                    match handshake {
                        // Boxed: only TLS connections pay for the TLS stream's size.
                        Ok(Ok(tls_stream)) => Box::pin(serve_stream(tls_stream, addr, kind, shared2)).await,
                        Ok(Err(e)) => {
                            shared2.metrics.dropped("tls_handshake_failed");
                            debug!("TLS handshake from {addr} failed: {e}");
                        }
                        Err(_) => {
                            shared2.metrics.dropped("handshake_timeout");
                            debug!("TLS handshake from {addr} timed out");
                        }
                    }
                }
                _ => serve_stream(stream, addr, kind, shared2).await,
            }
        });
    }
}

/// Serve one accepted (and maybe TLS-wrapped) stream. On a WebSocket port
/// the first request head is read here: an upgrade is answered without
/// hyper (see [`crate::handshake`]); anything else goes to hyper.
async fn serve_stream<I>(mut io: I, addr: SocketAddr, kind: Listener, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // hyper's state is boxed: it is large, and every task would otherwise
    // reserve room for it for the whole life of a WebSocket connection.
    let Listener::Ws(role) = kind else { return Box::pin(serve_http(io, addr, kind, shared)).await };
    let timeout = shared.config.limits.handshake_timeout;
    let read = tokio::select! {
        _ = shared.shutdown.cancelled() => return,
        read = tokio::time::timeout(timeout, handshake::read_head(&mut io)) => read,
    };
    let refuse = |status: http::StatusCode, body: &str| Bytes::from(handshake::response(status, &[], body));
    // In a block: nothing of the request outlives the handshake.
    let (early, switching, permit) = {
        let (head, head_len, bytes) = match read {
            Ok(Ok(HeadRead::Head { head, head_len, bytes })) => (head, head_len, bytes),
            Ok(Ok(HeadRead::Closed)) | Ok(Err(_)) => return,
            Ok(Ok(HeadRead::Malformed)) => {
                shared.metrics.dropped("bad_request");
                return write_and_close(io, refuse(http::StatusCode::BAD_REQUEST, "Bad request.\n")).await;
            }
            Ok(Ok(HeadRead::TooLarge)) => {
                shared.metrics.dropped("bad_request");
                let status = http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
                return write_and_close(io, refuse(status, "Request head too large.\n")).await;
            }
            Err(_) => {
                shared.metrics.dropped("handshake_timeout");
                debug!("{addr} did not send a request within {timeout:?}; dropped");
                return;
            }
        };
        if !head.is_websocket_upgrade() {
            // hyper reads the request again, from the bytes already taken.
            let io = Prefixed::new(io, bytes.freeze(), Bytes::new());
            return Box::pin(serve_http(io, addr, kind, shared)).await;
        }
        let accepted = websocket_accept(&head.headers)
            .map_err(|()| Refused::bad_handshake())
            .and_then(|accept| admit(&head.headers, head.query(), addr, role, &shared).map(|permit| (accept, permit)));
        let ((accept_key, protocol), permit) = match accepted {
            Ok(accepted) => accepted,
            Err(refused) => return write_and_close(io, Bytes::from(refused.to_http1())).await,
        };
        // What the client sent past its head (normally nothing) is the start of its frames.
        let early = Bytes::copy_from_slice(&bytes[head_len..]);
        (early, handshake::switching_protocols(&accept_key, protocol.as_deref()), permit)
    };
    // Early frames reach tungstenite through `Prefixed`, not
    // `from_partially_read`: that one starts a read buffer that forgets its
    // size and then reads frame by frame (14-byte header reads).
    let io = Prefixed::new(io, early, Bytes::from(switching));
    let ws = WebSocketStream::from_raw_socket(io, WsRole::Server, Some(shared.ws_config())).await;
    shared.metrics.accepted[role_index(role)].fetch_add(1, Ordering::Relaxed);
    // A task of its own, so the room for the handshake (and for hyper) is
    // freed; and the connection's future is the task itself, as wrapping it
    // would store the socket twice.
    let tasks = shared.tasks.clone();
    tasks.spawn(run_connection(ws, role, addr, shared, permit));
}

/// Send a refusal and close. What the client still sends is read and
/// dropped for a moment: closing on unread bytes would reset the connection
/// and could take the refusal with it.
async fn write_and_close<I: AsyncRead + AsyncWrite + Unpin>(mut io: I, response: Bytes) {
    let write = async {
        io.write_all(&response).await?;
        io.shutdown().await
    };
    if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(2), write).await {
        discard_input(&mut io, Duration::from_secs(1), 1 << 20).await;
    }
}

/// Serve HTTP/1 on one accepted (and maybe TLS-wrapped) stream until it
/// closes or upgrades. A client that does not finish sending its request
/// headers in time is dropped; on the WebSocket-only ports, so is one that
/// has not upgraded in time.
async fn serve_http<I>(io: I, addr: SocketAddr, kind: Listener, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_shared = shared.clone();
    let service = service_fn(move |req| {
        let shared = svc_shared.clone();
        async move {
            Ok::<_, std::convert::Infallible>(match kind {
                Listener::Ws(role) => handle_request(req, addr, role, shared).await,
                Listener::Redirect => redirect(&req, &shared),
            })
        }
    });
    let timeout = shared.config.limits.handshake_timeout;
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    // Streamer and SFU ports only upgrade: the whole HTTP phase is bounded.
    let ws_only = matches!(kind, Listener::Ws(Role::Streamer | Role::Sfu));
    let deadline = async {
        if ws_only {
            tokio::time::sleep(timeout).await
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                if e.is_timeout() {
                    shared.metrics.dropped("handshake_timeout");
                }
                debug!("http connection from {addr}: {e}");
            }
        }
        _ = deadline => {
            shared.metrics.dropped("handshake_timeout");
            debug!("{addr} did not upgrade within {timeout:?}; dropped");
        }
        _ = shared.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
}

/// `--https_redirect`: every request on the plain player port goes to HTTPS.
fn redirect(req: &http::Request<HyperBody>, shared: &Shared) -> Response {
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok());
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let port = shared.https_port.load(Ordering::Relaxed);
    let location = crate::tls::redirect_location(host, &shared.config.bind.to_string(), port, path);
    match http::HeaderValue::from_str(&location) {
        Ok(value) => {
            let mut response = plain(http::StatusCode::MOVED_PERMANENTLY, "Moved to HTTPS.\n");
            response.headers_mut().insert(http::header::LOCATION, value);
            response
        }
        Err(_) => plain(http::StatusCode::BAD_REQUEST, "Bad Host header.\n"),
    }
}

/// An upgrade that may not go ahead: the HTTP answer to give.
struct Refused {
    status: http::StatusCode,
    body: &'static str,
    /// Add `WWW-Authenticate: Bearer`.
    bearer: bool,
}

impl Refused {
    fn bad_handshake() -> Self {
        Refused { status: http::StatusCode::BAD_REQUEST, body: "Bad WebSocket handshake.\n", bearer: false }
    }

    fn into_response(self) -> Response {
        let mut response = plain(self.status, self.body);
        if self.bearer {
            response.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        response
    }

    fn to_http1(&self) -> Vec<u8> {
        let extra: &[(&str, &str)] = if self.bearer { &[("www-authenticate", "Bearer")] } else { &[] };
        handshake::response(self.status, extra, self.body)
    }
}

/// The `Sec-WebSocket-Accept` value and the subprotocol to echo (the first
/// one offered, as Wilbur does), or `Err` for a malformed upgrade.
fn websocket_accept(headers: &http::HeaderMap) -> Result<(String, Option<String>), ()> {
    let key = headers.get(http::header::SEC_WEBSOCKET_KEY).ok_or(())?;
    if headers.get(http::header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        return Err(());
    }
    let protocol = headers
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').map(str::trim).find(|p| !p.is_empty()))
        .filter(|p| http::HeaderValue::from_str(p).is_ok())
        .map(str::to_string);
    Ok((derive_accept_key(key.as_bytes()), protocol))
}

/// Decide whether this upgrade may go ahead. Order: draining, origin,
/// token, limits (so a client without the token learns nothing about the
/// limits).
fn admit(
    headers: &http::HeaderMap,
    query: Option<&str>,
    addr: SocketAddr,
    role: Role,
    shared: &Shared,
) -> Result<Permit, Refused> {
    let refuse = |reason: &'static str, status: http::StatusCode, body: &'static str| {
        shared.metrics.refused(reason);
        info!("refused a {} connection from {addr}: {reason}", role.as_str());
        Refused { status, body, bearer: false }
    };
    if shared.draining.load(Ordering::Relaxed) {
        return Err(refuse("draining", http::StatusCode::SERVICE_UNAVAILABLE, "Server is draining.\n"));
    }
    let checks = auth::check_origin(&shared.config.security.allowed_origins, headers)
        .and_then(|()| auth::check_token(shared.config.token_for(role), headers, query));
    match checks {
        Ok(()) => {}
        Err(Refusal::ForbiddenOrigin) => {
            return Err(refuse("forbidden_origin", http::StatusCode::FORBIDDEN, "Origin not allowed.\n"))
        }
        Err(Refusal::Unauthorized) => {
            let refused = refuse("unauthorized", http::StatusCode::UNAUTHORIZED, "Missing or wrong token.\n");
            return Err(Refused { bearer: true, ..refused });
        }
    }
    match shared.gate.admit(role, addr.ip()) {
        Ok(permit) => Ok(permit),
        Err(LimitRefusal::Role(_)) => {
            Err(refuse("role_limit", http::StatusCode::SERVICE_UNAVAILABLE, "Too many connections of this kind.\n"))
        }
        Err(LimitRefusal::PerIp) => {
            Err(refuse("ip_limit", http::StatusCode::TOO_MANY_REQUESTS, "Too many connections from this address.\n"))
        }
    }
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
    // Only a GET upgrades (RFC 6455 §4.1), as on the first request's path.
    if req.method() != http::Method::GET || !handshake::asks_for_websocket(req.headers()) {
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
    // An upgrade after an earlier request on the same connection (the first
    // one is handled in `serve_stream`).
    let Ok((accept_key, protocol)) = websocket_accept(req.headers()) else {
        return Refused::bad_handshake().into_response();
    };
    let permit = match admit(req.headers(), req.uri().query(), addr, role, &shared) {
        Ok(permit) => permit,
        Err(refused) => return refused.into_response(),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_shared = shared.clone();
    shared.tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = task_shared.ws_config();
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), WsRole::Server, Some(config)).await;
                task_shared.metrics.accepted[role_index(role)].fetch_add(1, Ordering::Relaxed);
                run_connection(ws, role, addr, task_shared, permit).await;
            }
            Err(e) => debug!("websocket upgrade from {addr} failed: {e}"),
        }
    });
    let mut response = http::Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_ACCEPT, accept_key);
    if let Some(protocol) = protocol {
        response = response.header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    match response.body(warp::reply::Response::default().into_body()) {
        Ok(r) => r,
        Err(_) => plain(http::StatusCode::INTERNAL_SERVER_ERROR, "handshake error\n"),
    }
}

fn role_index(role: Role) -> usize {
    match role {
        Role::Streamer => 0,
        Role::Player => 1,
        Role::Sfu => 2,
    }
}

/// Cut a close reason to the 123 bytes a close frame can carry.
fn close_frame(code: u16, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from(reason[..end].to_string()) }
}

/// Serve one WebSocket connection until it closes.
/// `permit` holds the connection's place under the limits until it ends.
async fn run_connection<S>(ws: WebSocketStream<S>, role: Role, addr: SocketAddr, shared: Arc<Shared>, permit: Permit)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let queue_len = match role {
        Role::Player => shared.config.send_queue_len,
        Role::Streamer | Role::Sfu => shared.config.streamer_send_queue_len,
    };
    let (queue_tx, mut queue_rx) = mpsc::channel::<Queued>(queue_len.max(1));
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
        let c = &shared.config;
        let (per_sec, burst) = match role {
            Role::Player => (c.rate_limit_per_sec, c.rate_limit_burst),
            Role::Streamer | Role::Sfu => (c.streamer_rate_limit_per_sec, c.streamer_rate_limit_burst),
        };
        let mut limit = RateLimit::new(per_sec, burst, Instant::now());
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
                Ok(WsMessage::Close(frame)) => {
                    shared.metrics.peer_closed(frame.map_or(1005, |f| u16::from(f.code)));
                    break;
                }
                Err(err) => {
                    let order = match &err {
                        WsError::Capacity(_) => Some((proto::close::TOO_BIG, reasons::TOO_BIG)),
                        WsError::Utf8(_) => Some((proto::close::INVALID_PAYLOAD, reasons::INVALID_UTF8)),
                        _ => None,
                    };
                    match order {
                        Some((code, reason)) => {
                            shared.metrics.dropped(if code == proto::close::TOO_BIG {
                                "too_big"
                            } else {
                                "invalid_utf8"
                            });
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
            let arrived = Instant::now();
            if !limit.allow(arrived) {
                shared.metrics.dropped("rate_limit");
                warn!(conn = conn.0, "{addr} exceeded the message rate limit; closing with 1008");
                let order = CloseOrder { code: proto::close::POLICY, reason: reasons::RATE_LIMIT.into(), urgent: true };
                shared.hub.disconnect(conn, Some(order));
                break;
            }
            shared.hub.receive(conn, frame, arrived);
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
        // The handshake's `101` leaves with the first frames; with none
        // queued yet (the router always queues `config` first), alone.
        if queue_rx.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(10), sink.flush()).await;
        }
        let order = loop {
            tokio::select! {
                biased;
                order = &mut close_rx => match order {
                    Ok(order) if order.urgent || !queue_open => break Some(order),
                    Ok(order) => {
                        // Deliver what is already queued first (e.g.
                        // `streamerDisconnected` before the close).
                        while let Ok(queued) = queue_rx.try_recv() {
                            if send_text(&mut sink, queued, &shared.metrics).await.is_err() {
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
                            result = send_batch(&mut sink, frame, &mut queue_rx, &shared.metrics) => result.map_err(|()| None),
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
                        shared.metrics.dropped("ping_timeout");
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
            shared.metrics.closed(order.code);
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
    drop(permit);
}

/// Read and discard what the peer still sends for a moment, so the close
/// frame we sent is not lost to a TCP reset on unread data.
async fn drain<S: AsyncRead + AsyncWrite + Unpin>(ws: WebSocketStream<S>) {
    discard_input(&mut ws.into_inner(), Duration::from_secs(2), 64 << 20).await;
}

/// Read and drop what the peer sends, until it closes, `for_at_most` has
/// passed or `max_bytes` were read.
async fn discard_input<I: AsyncRead + Unpin>(io: &mut I, for_at_most: Duration, max_bytes: usize) {
    // On the heap, and only here: a task's future would otherwise carry it.
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + for_at_most;
    let mut total = 0usize;
    while total < max_bytes {
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

/// Frames written per flush at most: a burst (a join's offer and candidates,
/// a broadcast) leaves in one write instead of one system call per frame.
const BATCH_MAX: usize = 64;

/// Hand `first` and whatever else is already queued (up to [`BATCH_MAX`]) to
/// the socket, then flush once. Gives up on a peer that does not read.
async fn send_batch<S>(
    sink: &mut S,
    first: Queued,
    queue: &mut mpsc::Receiver<Queued>,
    metrics: &Metrics,
) -> Result<(), ()>
where
    S: futures_util::Sink<WsMessage> + Unpin,
{
    let batch = async {
        feed_text(sink, first, metrics).await?;
        for _ in 1..BATCH_MAX {
            match queue.try_recv() {
                Ok(next) => feed_text(sink, next, metrics).await?,
                Err(_) => break,
            }
        }
        sink.flush().await.map_err(|_| ())
    };
    tokio::time::timeout(Duration::from_secs(10), batch).await.unwrap_or(Err(()))
}

/// Queue one frame in the socket's write buffer (written at the next flush,
/// or once the buffer holds [`WRITE_BUFFER`] bytes).
async fn feed_text<S>(sink: &mut S, (frame, arrived): Queued, metrics: &Metrics) -> Result<(), ()>
where
    S: futures_util::Sink<WsMessage> + Unpin,
{
    // The router only produces frames from UTF-8 JSON text.
    let Ok(text) = Utf8Bytes::try_from(frame) else { return Ok(()) };
    metrics.forward_latency.observe(arrived.elapsed());
    metrics.frames_out.fetch_add(1, Ordering::Relaxed);
    sink.feed(WsMessage::Text(text)).await.map_err(|_| ())
}

/// Send one frame now; gives up on a peer that does not read.
async fn send_text<S>(sink: &mut S, queued: Queued, metrics: &Metrics) -> Result<(), ()>
where
    S: futures_util::Sink<WsMessage> + Unpin,
{
    let send = async {
        feed_text(sink, queued, metrics).await?;
        sink.flush().await.map_err(|_| ())
    };
    tokio::time::timeout(Duration::from_secs(10), send).await.unwrap_or(Err(()))
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
