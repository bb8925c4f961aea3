//! The player's signalling WebSocket: typed send (from any task) and receive.
//!
//! Written here because `proto::client` was still empty when this was
//! written. Small buffers so that tens of thousands of connections fit in one
//! process.

use futures_util::{SinkExt, StreamExt};
use proto::{Incoming, Message};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::error::PlayerError;

/// A handle that sends messages to the server. Cloneable; sending after the
/// socket closed is silently dropped (the receive side reports the close).
#[derive(Clone, Debug)]
pub struct SignallingSender {
    tx: mpsc::UnboundedSender<WsMessage>,
}

impl SignallingSender {
    pub fn send(&self, msg: &Message) {
        tracing::trace!(out = %msg.type_name(), "signalling send");
        let _ = self.tx.send(WsMessage::text(msg.to_json()));
    }

    /// Close the socket normally.
    pub fn close(&self) {
        let _ = self.tx.send(WsMessage::Close(None));
    }
}

/// What the receive side yields.
#[derive(Debug)]
pub enum Event {
    Message(Message),
    /// The socket closed or failed; the text says how.
    Closed(String),
}

/// One connection to the signalling server.
pub struct SignallingSession {
    pub sender: SignallingSender,
    rx: futures_util::stream::SplitStream<
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    >,
    closed: bool,
}

impl SignallingSession {
    /// Connect; the returned session is open.
    pub async fn connect(url: &str) -> Result<SignallingSession, PlayerError> {
        let parsed = url::Url::parse(url).map_err(|e| PlayerError::BadUrl(url.into(), e.to_string()))?;
        if !matches!(parsed.scheme(), "ws" | "wss") {
            return Err(PlayerError::BadUrl(url.into(), "scheme must be ws or wss".into()));
        }
        let config =
            WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0).max_message_size(Some(4 << 20));
        let (ws, _resp) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| PlayerError::Connect(e.to_string()))?;
        let (mut sink, rx) = ws.split();
        let (tx, mut out) = mpsc::unbounded_channel::<WsMessage>();
        tokio::spawn(async move {
            while let Some(m) = out.recv().await {
                let close = matches!(m, WsMessage::Close(_));
                if sink.send(m).await.is_err() || close {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        Ok(SignallingSession { sender: SignallingSender { tx }, rx, closed: false })
    }

    /// The next typed message. Frames that are not valid messages are logged
    /// and skipped; `ping` is answered here. After `Closed`, keeps returning
    /// `Closed`.
    pub async fn next(&mut self) -> Event {
        if self.closed {
            return Event::Closed("already closed".into());
        }
        loop {
            let frame = match self.rx.next().await {
                None => return self.close_with("connection ended".into()),
                Some(Err(e)) => return self.close_with(e.to_string()),
                Some(Ok(f)) => f,
            };
            let bytes: &[u8] = match &frame {
                WsMessage::Text(t) => t.as_bytes(),
                WsMessage::Binary(b) => b,
                WsMessage::Close(c) => {
                    let why = c
                        .as_ref()
                        .map(|c| format!("close {} {}", u16::from(c.code), c.reason))
                        .unwrap_or_else(|| "close".into());
                    return self.close_with(why);
                }
                _ => continue,
            };
            match Incoming::parse(bytes) {
                Ok(inc) => {
                    if let Message::Ping { time } = inc.message {
                        self.sender.send(&Message::Pong { time: time.unwrap_or(0) });
                        continue;
                    }
                    tracing::trace!(r#in = %inc.message.type_name(), "signalling recv");
                    return Event::Message(inc.message);
                }
                Err(e) => tracing::warn!(error = %e, "ignoring bad signalling frame"),
            }
        }
    }

    fn close_with(&mut self, why: String) -> Event {
        self.closed = true;
        Event::Closed(why)
    }
}
