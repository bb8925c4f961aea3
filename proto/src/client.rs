//! A small async signalling WebSocket client shared by the peers.
//!
//! [`connect`] opens the socket and spawns one task that owns it. It gives
//! back a cloneable [`SignallingSender`] (typed [`Message`]s or raw JSON
//! text) and a [`SignallingReceiver`] of parsed [`Incoming`] messages.
//! The task answers the server's `ping {time}` with `pong {time}` by itself
//! (those pings are not passed on), can send its own `ping {time}` every
//! [`ClientOptions::ping_interval`], logs and skips frames that are not
//! signalling messages, and ends when the socket closes or
//! [`SignallingSender::close`] is called; the receiver then yields `None`
//! and [`SignallingReceiver::ended`] says why. [`Buffers::Small`] lets tens
//! of thousands of clients share one process (the load-testing player).
//! Reconnecting is the caller's business (it knows what to re-register).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{Incoming, Message};

/// Errors of the signalling client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    #[error("the signalling connection is closed")]
    Closed,
}

/// Options of [`connect_with`].
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Send `ping {time: ms since 1970}` this often. `None`: never.
    pub ping_interval: Option<Duration>,
    /// The socket's buffer sizes.
    pub buffers: Buffers,
    /// Send every frame at once (`TCP_NODELAY`) instead of letting Nagle's
    /// algorithm batch small frames.
    pub no_delay: bool,
}

/// Buffer sizes of the WebSocket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Buffers {
    /// tokio-tungstenite's defaults (128 KiB read buffer, 128 KiB write
    /// buffer, messages up to 64 MiB): a few long-lived connections.
    #[default]
    Default,
    /// A 4 KiB read buffer, writes not buffered, messages up to 4 MiB
    /// (signalling messages are small): tens of thousands of connections in
    /// one process.
    Small,
}

impl Buffers {
    fn config(self) -> Option<WebSocketConfig> {
        match self {
            Buffers::Default => None,
            Buffers::Small => Some(
                WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0).max_message_size(Some(4 << 20)),
            ),
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The server sent a close frame (its code and reason, when it gave one).
    CloseFrame(Option<(u16, String)>),
    /// The socket failed.
    Error(String),
    /// The stream ended without a close frame.
    Eof,
    /// We closed it ([`SignallingSender::close`] or every sender dropped).
    ByUs,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::CloseFrame(Some((code, reason))) => write!(f, "close {code} {reason}"),
            Ended::CloseFrame(None) => f.write_str("close"),
            Ended::Error(e) => f.write_str(e),
            Ended::Eof => f.write_str("connection ended"),
            Ended::ByUs => f.write_str("closed by us"),
        }
    }
}

/// What the connection task passes to the receiver.
enum Received {
    Message(Incoming),
    Ended(Ended),
}

enum Command {
    Send(String),
    Close,
}

/// Sends to the server. Cheap to clone; all clones feed one socket, in order.
#[derive(Debug, Clone)]
pub struct SignallingSender {
    tx: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Send(t) => write!(f, "Send({t})"),
            Command::Close => f.write_str("Close"),
        }
    }
}

impl SignallingSender {
    /// Send a typed message.
    pub fn send(&self, message: &Message) -> Result<(), ClientError> {
        tracing::trace!(out = %message.type_name(), "signalling send");
        self.send_text(message.to_json())
    }

    /// Send a JSON text frame as is.
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), ClientError> {
        self.tx.send(Command::Send(text.into())).map_err(|_| ClientError::Closed)
    }

    /// Close the socket (normal close) after what was queued before.
    pub fn close(&self) {
        let _ = self.tx.send(Command::Close);
    }

    /// Whether the connection task has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Messages from the server, parsed. `None` once the connection has ended.
pub struct SignallingReceiver {
    rx: mpsc::UnboundedReceiver<Received>,
    ended: Option<Ended>,
}

impl std::fmt::Debug for SignallingReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignallingReceiver").field("ended", &self.ended).finish_non_exhaustive()
    }
}

impl SignallingReceiver {
    pub async fn recv(&mut self) -> Option<Incoming> {
        match self.rx.recv().await {
            Some(Received::Message(incoming)) => {
                tracing::trace!(r#in = %incoming.message.type_name(), "signalling recv");
                Some(incoming)
            }
            Some(Received::Ended(why)) => {
                self.ended = Some(why);
                None
            }
            None => None,
        }
    }

    /// Why the connection ended, once [`recv`](Self::recv) has returned `None`.
    pub fn ended(&self) -> Option<&Ended> {
        self.ended.as_ref()
    }
}

/// Connect with default options (no client pings).
pub async fn connect(url: &str) -> Result<(SignallingSender, SignallingReceiver), ClientError> {
    connect_with(url, ClientOptions::default()).await
}

/// Connect to `url` (`ws://host:port/…`).
pub async fn connect_with(
    url: &str,
    options: ClientOptions,
) -> Result<(SignallingSender, SignallingReceiver), ClientError> {
    let (ws, _response) = tokio_tungstenite::connect_async_with_config(url, options.buffers.config(), options.no_delay)
        .await
        .map_err(|e| ClientError::Connect { url: url.to_string(), source: Box::new(e) })?;
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(ws, out_rx, in_tx, options, url.to_string()));
    Ok((SignallingSender { tx: out_tx }, SignallingReceiver { rx: in_rx, ended: None }))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

async fn run<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    mut out_rx: mpsc::UnboundedReceiver<Command>,
    in_tx: mpsc::UnboundedSender<Received>,
    options: ClientOptions,
    url: String,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let period = options.ping_interval.unwrap_or(Duration::from_secs(3600));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let ended = loop {
        tokio::select! {
            frame = stream.next() => {
                let bytes = match frame {
                    Some(Ok(WsMessage::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(WsMessage::Binary(b))) => b.to_vec(),
                    Some(Ok(WsMessage::Close(frame))) => {
                        tracing::debug!(%url, ?frame, "signalling: server closed");
                        break Ended::CloseFrame(frame.map(|c| (u16::from(c.code), c.reason.to_string())));
                    }
                    Some(Ok(_)) => continue, // WebSocket ping/pong: tungstenite answers.
                    Some(Err(e)) => {
                        tracing::debug!(%url, error = %e, "signalling: socket error");
                        break Ended::Error(e.to_string());
                    }
                    None => break Ended::Eof,
                };
                match Incoming::parse(&bytes) {
                    Ok(incoming) => {
                        if let Message::Ping { time } = incoming.message {
                            let pong = Message::Pong { time: time.unwrap_or(0) }.to_json();
                            if let Err(e) = sink.send(WsMessage::text(pong)).await {
                                break Ended::Error(e.to_string());
                            }
                            continue;
                        }
                        // A dropped receiver is not a reason to stop answering pings.
                        let _ = in_tx.send(Received::Message(incoming));
                    }
                    Err(e) => tracing::warn!(%url, error = %e, "signalling: dropped a frame"),
                }
            }
            command = out_rx.recv() => match command {
                Some(Command::Send(text)) => {
                    if let Err(e) = sink.send(WsMessage::text(text)).await {
                        break Ended::Error(e.to_string());
                    }
                }
                Some(Command::Close) | None => {
                    let _ = sink
                        .send(WsMessage::Close(Some(CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        })))
                        .await;
                    let _ = sink.close().await;
                    break Ended::ByUs;
                }
            },
            _ = ping.tick(), if options.ping_interval.is_some() => {
                let text = Message::Ping { time: Some(now_ms()) }.to_json();
                if let Err(e) = sink.send(WsMessage::text(text)).await {
                    break Ended::Error(e.to_string());
                }
            }
        }
    };
    let _ = in_tx.send(Received::Ended(ended));
    // Dropping out_rx makes senders report Closed; dropping in_tx ends recv().
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn answers_pings_passes_messages_and_pings_itself() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            ws.send(WsMessage::text(r#"{"type":"ping","time":1700000000000}"#)).await.unwrap();
            ws.send(WsMessage::text("not json")).await.unwrap();
            ws.send(WsMessage::text(r#"{"type":"identify"}"#)).await.unwrap();
            let mut seen = Vec::new();
            let done = |seen: &Vec<Message>| {
                seen.iter().any(|m| matches!(m, Message::EndpointId { .. }))
                    && seen.iter().any(|m| matches!(m, Message::Ping { .. }))
            };
            while !done(&seen) && seen.len() < 50 {
                match ws.next().await {
                    Some(Ok(WsMessage::Text(t))) => seen.push(Incoming::parse(t.as_bytes()).unwrap().message),
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            seen
        });
        let options = ClientOptions { ping_interval: Some(Duration::from_millis(50)), ..Default::default() };
        let (tx, mut rx) = connect_with(&url, options).await.unwrap();
        // The ping is answered, the junk frame skipped, identify delivered.
        assert_eq!(rx.recv().await.map(|i| i.message), Some(Message::Identify));
        tx.send(&Message::EndpointId { id: Some("S".into()), protocol_version: None }).unwrap();
        let seen = server.await.unwrap();
        assert_eq!(seen[0], Message::Pong { time: 1_700_000_000_000 });
        assert!(seen.contains(&Message::EndpointId { id: Some("S".into()), protocol_version: None }));
        assert!(seen.iter().any(|m| matches!(m, Message::Ping { time: Some(t) } if *t > 1_600_000_000_000)));
        // The server is gone: the receiver ends and sending fails.
        assert!(rx.recv().await.is_none());
        assert!(rx.ended().is_some(), "says why it ended");
        tokio::time::timeout(Duration::from_secs(5), async {
            while !tx.is_closed() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        assert!(tx.send(&Message::Identify).is_err());
    }

    #[tokio::test]
    async fn connect_error_is_reported() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        drop(listener);
        assert!(matches!(connect(&url).await, Err(ClientError::Connect { .. })));
    }
}
