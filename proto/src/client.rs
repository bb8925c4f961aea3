//! A small async signalling WebSocket client shared by the peers.
//!
//! [`connect`] opens the socket and spawns one task that owns it. It gives
//! back a cloneable [`SignallingSender`] (typed [`Message`]s or raw JSON
//! text) and a [`SignallingReceiver`] of parsed [`Incoming`] messages.
//! The task answers the server's `ping {time}` with `pong {time}` by itself
//! (those pings are not passed on), can send its own `ping {time}` every
//! [`ClientOptions::ping_interval`], logs and skips frames that are not
//! signalling messages, and ends when the socket closes or
//! [`SignallingSender::close`] is called; the receiver then yields `None`.
//! Reconnecting is the caller's business (it knows what to re-register).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
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
#[derive(Debug)]
pub struct SignallingReceiver {
    rx: mpsc::UnboundedReceiver<Incoming>,
}

impl SignallingReceiver {
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.rx.recv().await
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
    let (ws, _response) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| ClientError::Connect { url: url.to_string(), source: Box::new(e) })?;
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(ws, out_rx, in_tx, options, url.to_string()));
    Ok((SignallingSender { tx: out_tx }, SignallingReceiver { rx: in_rx }))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

async fn run<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    mut out_rx: mpsc::UnboundedReceiver<Command>,
    in_tx: mpsc::UnboundedSender<Incoming>,
    options: ClientOptions,
    url: String,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let period = options.ping_interval.unwrap_or(Duration::from_secs(3600));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            frame = stream.next() => {
                let bytes = match frame {
                    Some(Ok(WsMessage::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(WsMessage::Binary(b))) => b.to_vec(),
                    Some(Ok(WsMessage::Close(frame))) => {
                        tracing::debug!(%url, ?frame, "signalling: server closed");
                        break;
                    }
                    Some(Ok(_)) => continue, // WebSocket ping/pong: tungstenite answers.
                    Some(Err(e)) => {
                        tracing::debug!(%url, error = %e, "signalling: socket error");
                        break;
                    }
                    None => break,
                };
                match Incoming::parse(&bytes) {
                    Ok(incoming) => {
                        if let Message::Ping { time } = incoming.message {
                            let pong = Message::Pong { time: time.unwrap_or(0) }.to_json();
                            if sink.send(WsMessage::text(pong)).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        // A dropped receiver is not a reason to stop answering pings.
                        let _ = in_tx.send(incoming);
                    }
                    Err(e) => tracing::warn!(%url, error = %e, "signalling: dropped a frame"),
                }
            }
            command = out_rx.recv() => match command {
                Some(Command::Send(text)) => {
                    if sink.send(WsMessage::text(text)).await.is_err() {
                        break;
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
                    break;
                }
            },
            _ = ping.tick(), if options.ping_interval.is_some() => {
                let text = Message::Ping { time: Some(now_ms()) }.to_json();
                if sink.send(WsMessage::text(text)).await.is_err() {
                    break;
                }
            }
        }
    }
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
        let options = ClientOptions { ping_interval: Some(Duration::from_millis(50)) };
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
