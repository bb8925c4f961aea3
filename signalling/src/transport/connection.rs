//! One WebSocket connection, from registration with the [`Hub`](super::Hub)
//! to its close: a reader (frames → router, with the rate limit and the
//! frame checks) and a writer (bounded queue → socket in batches, keepalive
//! pings, the close frame) side by side in one task.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use proto::close::Close;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::hub::{CloseOrder, Outbox, Queued};
use super::Shared;
use crate::limits::Permit;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimit;
use crate::registry::{ConnId, Role};
use crate::router::Claim;

/// The close frame for `close`, its reason cut to the 123 bytes a close
/// frame can carry.
fn close_frame(close: &Close) -> CloseFrame {
    let (code, reason) = (close.code(), close.reason());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from(reason[..end].to_string()) }
}

/// In a cluster, a streamer's `endpointId` is first put to the cluster (the
/// id must be unique over every node); this connection's later frames wait
/// for the answer, other connections do not. `None`: not an `endpointId`,
/// not a cluster, or Redis away (the router then decides alone).
async fn cluster_claim(shared: &Shared, conn: ConnId, role: Role, frame: &Bytes) -> Option<Claim> {
    let link = shared.cluster.as_ref()?;
    if !role.is_streamer_side() || !frame.windows(10).any(|w| w == b"endpointId") {
        return None;
    }
    let incoming = proto::Incoming::parse_frame(frame.clone()).ok()?;
    let proto::Message::EndpointId { id, .. } = incoming.message else { return None };
    let requested = id?.trim().to_string();
    let allowlist = shared.config.security.streamer_ids.as_ref().filter(|_| role == Role::Streamer);
    if requested.is_empty() || allowlist.is_some_and(|ids| !ids.contains(&requested)) {
        return None;
    }
    let held = shared
        .hub
        .with_router(|r| r.registry().get(conn).filter(|e| e.identified).and_then(|e| e.streamer_id.clone()))
        .unwrap_or_default();
    link.claim(conn, &requested, &held, allowlist.is_some()).await
}

/// Serve one WebSocket connection until it closes.
/// `permit` holds the connection's place under the limits until it ends.
pub(super) async fn run_connection<S>(
    ws: WebSocketStream<S>,
    role: Role,
    addr: SocketAddr,
    shared: Arc<Shared>,
    permit: Permit,
) where
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
    // Set by the reader when what the peer still sends must be read and
    // dropped after our close (it was sending a frame we refused, so unread
    // bytes would turn into a reset).
    let discard_after_close = AtomicBool::new(false);
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
                    let close = match &err {
                        WsError::Capacity(_) => Some(Close::TooBig),
                        WsError::Utf8(_) => Some(Close::InvalidUtf8),
                        _ => None,
                    };
                    match close {
                        Some(close) => {
                            shared.metrics.dropped(close.label());
                            warn!(
                                conn = conn.0,
                                "{} from {addr}: {err}; closing with {}",
                                close.reason(),
                                close.code()
                            );
                            discard_after_close.store(close == Close::TooBig, Ordering::Relaxed);
                            shared.hub.disconnect(conn, Some(CloseOrder { close, urgent: true }));
                        }
                        None => debug!(conn = conn.0, "read error from {addr}: {err}"),
                    }
                    break;
                }
            };
            let arrived = Instant::now();
            if !limit.allow(arrived) {
                let close = Close::RateLimit;
                shared.metrics.dropped(close.label());
                warn!(conn = conn.0, "{addr} exceeded the message rate limit; closing with {}", close.code());
                shared.hub.disconnect(conn, Some(CloseOrder { close, urgent: true }));
                break;
            }
            match cluster_claim(&shared, conn, role, &frame).await {
                Some(claim) => {
                    shared.hub.receive_claimed(conn, frame, arrived, Some(claim));
                    if let Some(link) = &shared.cluster {
                        link.changed();
                    }
                }
                None => shared.hub.receive(conn, frame, arrived),
            }
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
                        let close = Close::PingTimeout;
                        shared.metrics.dropped(close.label());
                        info!(conn = conn.0, "{addr} did not answer the keepalive ping; closing");
                        shared.hub.disconnect(conn, None);
                        break Some(CloseOrder { close, urgent: true });
                    }
                    if send_with_deadline(&mut sink, WsMessage::Ping(Bytes::new())).await.is_err() {
                        shared.hub.disconnect(conn, None);
                        break None;
                    }
                }
            }
        };
        if let Some(order) = order {
            shared.metrics.closed(order.close.code());
            // Short: a peer that is not reading will not take it anyway.
            let close = WsMessage::Close(Some(close_frame(&order.close)));
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.flush()).await;
        closing.cancel();
    };

    // Reader and writer run in this one task: half the tasks, and the reader
    // keeps reading while the writer waits on a slow peer.
    tokio::join!(reader, writer);

    if discard_after_close.load(Ordering::Relaxed) {
        if let Ok(ws) = sink.reunite(stream) {
            discard_after_close_frame(ws).await;
        }
    }
    debug!(conn = conn.0, "{} from {addr} closed", role.as_str());
    drop(permit);
}

/// Read and discard what the peer still sends for a moment, so the close
/// frame we sent is not lost to a TCP reset on unread data.
async fn discard_after_close_frame<S: AsyncRead + AsyncWrite + Unpin>(ws: WebSocketStream<S>) {
    discard_input(&mut ws.into_inner(), Duration::from_secs(2), 64 << 20).await;
}

/// Read and drop what the peer sends, until it closes, `for_at_most` has
/// passed or `max_bytes` were read.
pub(super) async fn discard_input<I: AsyncRead + Unpin>(io: &mut I, for_at_most: Duration, max_bytes: usize) {
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
/// or once the buffer holds [`WRITE_BUFFER`](super::upgrade::WRITE_BUFFER) bytes).
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
