//! A recording WebSocket relay between peers and the signalling server.
//!
//! Tests point a peer at the tap instead of the server; the tap opens its own
//! connection to the server and relays frames both ways unchanged, recording
//! every text frame with its direction. That lets a test observe the exact
//! message sequence of real peers without changing either side.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Peer → server.
    ToServer,
    /// Server → peer.
    FromServer,
}

/// One recorded text frame.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Which relayed connection (0, 1, … in accept order) of this tap.
    pub connection: usize,
    pub direction: Direction,
    pub at: Instant,
    pub json: Value,
}

impl Recorded {
    pub fn type_name(&self) -> &str {
        self.json["type"].as_str().unwrap_or("")
    }
}

/// A running tap: where peers connect, and what it has seen.
pub struct Tap {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    cancel: CancellationToken,
}

impl Tap {
    /// Listen on 127.0.0.1 (ephemeral port) and relay to `server` (a ws:// URL base such as `ws://127.0.0.1:8888`).
    pub async fn start(server: String) -> std::io::Result<Tap> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let (task_log, task_cancel) = (log.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut next = 0usize;
            loop {
                let stream = tokio::select! {
                    _ = task_cancel.cancelled() => break,
                    accepted = listener.accept() => match accepted { Ok((s, _)) => s, Err(_) => continue },
                };
                let connection = next;
                next += 1;
                let (log, cancel, server) = (task_log.clone(), task_cancel.clone(), server.clone());
                tokio::spawn(async move {
                    let Ok(peer) = tokio_tungstenite::accept_async(stream).await else { return };
                    let Ok((upstream, _)) = tokio_tungstenite::connect_async(server.as_str()).await else { return };
                    relay(connection, peer, upstream, log, cancel).await;
                });
            }
        });
        Ok(Tap { addr, log, cancel })
    }

    /// The URL peers should use.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Everything recorded so far, in the order the tap saw it.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Wait until `f` holds for the recording, or give up after `timeout`.
    pub async fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&[Recorded]) -> bool) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let now = self.recorded();
            if f(&now) {
                return now;
            }
            if tokio::time::Instant::now() >= deadline {
                let types: Vec<String> =
                    now.iter().map(|r| format!("{}:{:?}:{}", r.connection, r.direction, r.type_name())).collect();
                panic!("timed out waiting for {what}; recorded: {types:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn relay<P, U>(connection: usize, peer: P, upstream: U, log: Arc<Mutex<Vec<Recorded>>>, cancel: CancellationToken)
where
    P: futures_util::Stream<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + futures_util::Sink<tokio_tungstenite::tungstenite::Message>
        + Unpin,
    U: futures_util::Stream<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + futures_util::Sink<tokio_tungstenite::tungstenite::Message>
        + Unpin,
{
    use tokio_tungstenite::tungstenite::Message;
    let (mut peer_tx, mut peer_rx) = peer.split();
    let (mut up_tx, mut up_rx) = upstream.split();
    let record = |direction, text: &str| {
        if let (Ok(json), Ok(mut log)) = (serde_json::from_str::<Value>(text), log.lock()) {
            log.push(Recorded { connection, direction, at: Instant::now(), json });
        }
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            msg = peer_rx.next() => match msg {
                Some(Ok(m)) => {
                    let closing = matches!(m, Message::Close(_));
                    if let Message::Text(t) = &m { record(Direction::ToServer, t.as_str()); }
                    if up_tx.send(m).await.is_err() || closing { break; }
                }
                _ => break,
            },
            msg = up_rx.next() => match msg {
                Some(Ok(m)) => {
                    let closing = matches!(m, Message::Close(_));
                    if let Message::Text(t) = &m { record(Direction::FromServer, t.as_str()); }
                    if peer_tx.send(m).await.is_err() || closing { break; }
                }
                _ => break,
            },
        }
    }
    let _ = up_tx.close().await;
    let _ = peer_tx.close().await;
}
