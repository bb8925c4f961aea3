//! Lean protocol peers for the signalling benches: a WebSocket client bound to
//! a chosen loopback source address, a player that runs the join sequence,
//! and a streamer that answers `playerConnected` with an offer and ICE
//! candidates. They reuse the mock peers' `--signalling-only` payloads
//! (`mock_streamer::canned` offer, `mock_player::canned` answer), but are
//! written here because the benches need what the mock peers do not offer:
//! a source address per socket (more than one address's ephemeral ports),
//! exactly 4 candidates each way, a join-then-leave loop, and timestamps.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

pub type Socket = WebSocketStream<TcpStream>;

/// ICE candidates sent each way in the join sequence.
pub const CANDIDATES: usize = 4;

/// Open a WebSocket to `url` (at `addr`) from `src` (port chosen by the kernel).
pub async fn connect(url: &str, addr: SocketAddr, src: Option<Ipv4Addr>) -> anyhow::Result<Socket> {
    let sock = TcpSocket::new_v4()?;
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip.into(), 0)).with_context(|| format!("binding {ip}"))?;
    }
    let tcp = sock.connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let cfg = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0).max_message_size(Some(1 << 20));
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, tcp, Some(cfg)).await.context("WebSocket handshake")?;
    Ok(ws)
}

/// The next JSON message (text or binary frame); answers `ping` messages.
/// `Ok(None)`: the socket closed.
pub async fn next_json(ws: &mut Socket) -> anyhow::Result<Option<Value>> {
    for _ in 0..10_000 {
        let frame = match ws.next().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(anyhow!("socket: {e}")),
            Some(Ok(f)) => f,
        };
        let bytes: &[u8] = match &frame {
            Ws::Text(t) => t.as_bytes(),
            Ws::Binary(b) => b,
            Ws::Close(_) => return Ok(None),
            _ => continue,
        };
        let Ok(v) = serde_json::from_slice::<Value>(bytes) else { continue };
        if v.get("type").and_then(Value::as_str) == Some("ping") {
            let time = v.get("time").cloned().unwrap_or(json!(0));
            ws.send(Ws::text(json!({"type": "pong", "time": time}).to_string())).await?;
            continue;
        }
        return Ok(Some(v));
    }
    bail!("too many control frames in a row")
}

pub fn msg_type(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

/// A canned candidate line.
pub fn candidate(i: usize) -> Value {
    json!({
        "candidate": format!("candidate:{} 1 udp {} 127.0.0.1 {} typ host", 1000 + i, 2_130_706_431 - i, 9 + i),
        "sdpMid": "0",
        "sdpMLineIndex": 0
    })
}

/// A bench streamer: registers `id`, answers every `playerConnected` with
/// an offer and [`CANDIDATES`] candidates, counts what players send it.
pub struct Streamer {
    pub id: String,
    pub counters: Arc<StreamerCounters>,
    /// Player ids in the order they connected (for the latency bench).
    pub players: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub out: tokio::sync::mpsc::UnboundedSender<Ws>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
pub struct StreamerCounters {
    pub player_connected: AtomicU64,
    pub answers: AtomicU64,
    pub candidates: AtomicU64,
    pub player_disconnected: AtomicU64,
}

impl Streamer {
    /// Connect and register; returns once `endpointIdConfirm` (or an
    /// equivalent) arrived, at most 10 s.
    pub async fn start(url: &str, id: &str, cancel: CancellationToken) -> anyhow::Result<Streamer> {
        let addr = crate::bench::util::loopback_addr(url)?;
        let mut ws = connect(url, addr, None).await.context("streamer connect")?;
        ws.send(Ws::text(json!({"type": "endpointId", "id": id}).to_string())).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut committed = None;
        for _ in 0..10_000 {
            let v = tokio::time::timeout_at(deadline.into(), next_json(&mut ws))
                .await
                .map_err(|_| anyhow!("streamer: no endpointIdConfirm within 10 s"))??
                .ok_or_else(|| anyhow!("streamer socket closed while registering"))?;
            if msg_type(&v) == "endpointIdConfirm" {
                committed = Some(v.get("committedId").and_then(Value::as_str).unwrap_or(id).to_string());
                break;
            }
        }
        let Some(committed) = committed else { bail!("streamer: no endpointIdConfirm among 10,000 messages") };
        let counters = Arc::new(StreamerCounters::default());
        let (players_tx, players) = tokio::sync::mpsc::unbounded_channel();
        let (out, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Ws>();
        let c = counters.clone();
        let offer = mock_streamer::canned::canned_offer();
        // Reading never waits for writing: the server closes a peer whose queue it does not drain.
        let (mut sink, mut stream) = ws.split();
        let writer_cancel = cancel.clone();
        let writer = tokio::spawn(async move {
            for _ in 0..1_000_000_000u64 {
                let m = tokio::select! {
                    _ = writer_cancel.cancelled() => break,
                    m = out_rx.recv() => match m { Some(m) => m, None => break },
                };
                // Batch whatever else is queued, then flush once.
                let mut batch = vec![m];
                while batch.len() < 1024 {
                    match out_rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                let mut failed = false;
                for m in batch {
                    if sink.feed(m).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || sink.flush().await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let tx = out.clone();
        let task = tokio::spawn(async move {
            for _ in 0..1_000_000_000u64 {
                let f = tokio::select! {
                    _ = cancel.cancelled() => break,
                    f = stream.next() => f,
                };
                let frame = match f {
                    Some(Ok(f)) => f,
                    _ => break,
                };
                let bytes: &[u8] = match &frame {
                    Ws::Text(t) => t.as_bytes(),
                    Ws::Binary(b) => b,
                    Ws::Close(_) => break,
                    _ => continue,
                };
                let Ok(v) = serde_json::from_slice::<Value>(bytes) else { continue };
                match msg_type(&v) {
                    "playerConnected" => {
                        c.player_connected.fetch_add(1, Ordering::Relaxed);
                        let Some(pid) = v.get("playerId").and_then(Value::as_str) else { continue };
                        let _ = players_tx.send(pid.to_string());
                        let _ = tx.send(Ws::text(json!({"type": "offer", "playerId": pid, "sdp": offer}).to_string()));
                        for i in 0..CANDIDATES {
                            let m = json!({"type": "iceCandidate", "playerId": pid, "candidate": candidate(i)});
                            let _ = tx.send(Ws::text(m.to_string()));
                        }
                    }
                    "answer" => {
                        c.answers.fetch_add(1, Ordering::Relaxed);
                    }
                    "iceCandidate" => {
                        c.candidates.fetch_add(1, Ordering::Relaxed);
                    }
                    "playerDisconnected" => {
                        c.player_disconnected.fetch_add(1, Ordering::Relaxed);
                    }
                    "ping" => {
                        let time = v.get("time").cloned().unwrap_or(json!(0));
                        let _ = tx.send(Ws::text(json!({"type": "pong", "time": time}).to_string()));
                    }
                    _ => {}
                }
            }
            writer.abort();
        });
        Ok(Streamer { id: committed, counters, players, out, task })
    }

    pub async fn stop(self) {
        drop(self.out);
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Phase times of one join, milliseconds from the start of the connect.
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinTiming {
    pub total_ms: f64,
}

/// Run the join sequence on a fresh socket: connect → `config` →
/// `listStreamers` → `subscribe` → `offer` → `answer` + 4 candidates,
/// and receive the streamer's 4 candidates. Returns the open socket.
pub async fn join(
    url: &str,
    addr: SocketAddr,
    src: Option<Ipv4Addr>,
    streamer: &str,
    answer_sdp: &str,
    timeout: Duration,
) -> anyhow::Result<(Socket, JoinTiming)> {
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::from_std(t0 + timeout);
    let run = async {
        let mut ws = connect(url, addr, src).await?;
        // Ask for the list right away; `config` (and `playerCount`) come first anyway.
        ws.send(Ws::text(r#"{"type":"listStreamers"}"#)).await?;
        let mut subscribed = false;
        let mut got_offer = false;
        let mut got_candidates = 0usize;
        for _ in 0..1000 {
            let Some(v) = next_json(&mut ws).await? else { bail!("socket closed during the join") };
            match msg_type(&v) {
                "streamerList" if !subscribed => {
                    let listed = v
                        .get("ids")
                        .and_then(Value::as_array)
                        .is_some_and(|ids| ids.iter().any(|i| i.as_str() == Some(streamer)));
                    if !listed {
                        bail!("streamer {streamer} not listed");
                    }
                    ws.send(Ws::text(json!({"type": "subscribe", "streamerId": streamer}).to_string())).await?;
                    subscribed = true;
                }
                "offer" if !got_offer => {
                    got_offer = true;
                    ws.feed(Ws::text(json!({"type": "answer", "sdp": answer_sdp}).to_string())).await?;
                    for i in 0..CANDIDATES {
                        ws.feed(Ws::text(json!({"type": "iceCandidate", "candidate": candidate(i)}).to_string()))
                            .await?;
                    }
                    ws.flush().await?;
                }
                "iceCandidate" => got_candidates += 1,
                "subscribeFailed" => bail!("subscribeFailed: {v}"),
                _ => {}
            }
            if got_offer && got_candidates >= CANDIDATES {
                return Ok(ws);
            }
        }
        bail!("join did not finish within 1000 messages")
    };
    let ws =
        tokio::time::timeout_at(deadline, run).await.map_err(|_| anyhow!("join timed out after {timeout:?}"))??;
    Ok((ws, JoinTiming { total_ms: t0.elapsed().as_secs_f64() * 1000.0 }))
}

/// Poll `listStreamers` until `id` is listed (at most `within`).
pub async fn wait_listed(url: &str, id: &str, within: Duration) -> anyhow::Result<()> {
    let addr = crate::bench::util::loopback_addr(url)?;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(mut ws) = connect(url, addr, None).await {
            for _ in 0..200 {
                if Instant::now() >= deadline {
                    break;
                }
                if ws.send(Ws::text(r#"{"type":"listStreamers"}"#)).await.is_err() {
                    break;
                }
                let got = tokio::time::timeout(Duration::from_secs(2), async {
                    for _ in 0..100 {
                        match next_json(&mut ws).await {
                            Ok(Some(v)) if msg_type(&v) == "streamerList" => return Some(v),
                            Ok(Some(_)) => continue,
                            _ => return None,
                        }
                    }
                    None
                })
                .await;
                match got {
                    Ok(Some(v)) => {
                        let ids = v.get("ids").and_then(Value::as_array).cloned().unwrap_or_default();
                        if ids.iter().any(|i| i.as_str() == Some(id)) {
                            let _ = ws.close(None).await;
                            return Ok(());
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("streamer {id} was not listed within {within:?}")
}
