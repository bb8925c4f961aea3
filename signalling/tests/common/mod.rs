//! A real WebSocket client for driving the real server in tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use signalling::{ServerConfig, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn server(config: ServerConfig) -> ServerHandle {
    signalling::run(config).await.expect("server starts")
}

pub async fn default_server() -> ServerHandle {
    server(ServerConfig::ephemeral()).await
}

/// The default server with `--rest_api` on, for tests of `/api/...`.
pub async fn rest_server() -> ServerHandle {
    server(ServerConfig { rest_api: true, ..ServerConfig::ephemeral() }).await
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub name: String,
    /// The close frame, once `ended_or_text` has seen it.
    pub last_close: Option<(u16, String)>,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Close { code: u16, reason: String },
    Eof,
}

impl Client {
    pub async fn connect(addr: SocketAddr, name: &str) -> Client {
        let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
        let url = format!("ws://{addr}/");
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async_with_config(url, Some(config), true))
            .await
            .expect("connect in time")
            .expect("connect");
        Client { ws, name: name.to_string(), last_close: None }
    }

    /// A streamer that has read its greeting and identified as `id`;
    /// returns the committed id.
    pub async fn streamer(handle: &ServerHandle, id: &str) -> (Client, String) {
        let mut c = Client::connect(handle.streamer_addr(), id).await;
        c.expect_type("config").await;
        c.expect_type("identify").await;
        c.send(json!({"type": "endpointId", "id": id})).await;
        let confirm = c.expect_type("endpointIdConfirm").await;
        let committed = confirm["committedId"].as_str().expect("committedId").to_string();
        (c, committed)
    }

    /// A player that has read its greeting.
    pub async fn player(handle: &ServerHandle) -> Client {
        let mut c = Client::connect(handle.player_addr(), "player").await;
        c.expect_type("config").await;
        c.expect_type("playerCount").await;
        c
    }

    /// A player subscribed to `streamer_id`; returns it and its player id
    /// (read from the streamer's `playerConnected`).
    pub async fn subscribed_player(
        handle: &ServerHandle,
        streamer: &mut Client,
        streamer_id: &str,
    ) -> (Client, String) {
        let mut p = Client::player(handle).await;
        p.send(json!({"type": "subscribe", "streamerId": streamer_id})).await;
        let connected = streamer.expect_type("playerConnected").await;
        let id = connected["playerId"].as_str().expect("playerId").to_string();
        (p, id)
    }

    pub async fn send(&mut self, value: Value) {
        self.ws.send(Message::text(value.to_string())).await.expect("send");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).await.expect("send");
    }

    /// The next text frame as JSON, skipping nothing. Panics on timeout/close.
    pub async fn recv(&mut self) -> Value {
        self.recv_text().await.parse::<Value>().expect("server sends JSON")
    }

    pub async fn recv_text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no message within {WAIT:?}", self.name))
                .unwrap_or_else(|| panic!("{}: connection ended", self.name))
                .unwrap_or_else(|e| panic!("{}: read error {e}", self.name));
            match msg {
                Message::Text(t) => return t.to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("{}: expected text, got {other:?}", self.name),
            }
        }
    }

    pub async fn expect_type(&mut self, type_name: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["type"], type_name, "{}: expected {type_name}, got {v}", self.name);
        v
    }

    /// A barrier: everything the server queued for us before now arrives
    /// before the pong, so "next message is the pong" proves nothing else came.
    pub async fn expect_nothing_pending(&mut self) {
        let token = 4_000_000_000_123i64;
        self.send(json!({"type": "ping", "time": token})).await;
        let v = self.recv().await;
        assert_eq!(v, json!({"type": "pong", "time": token}), "{}: unexpected message", self.name);
    }

    /// Read until the connection ends; return how (skipping other frames).
    pub async fn ended(&mut self) -> Ended {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("ends in time") {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Ended::Close { code: frame.code.into(), reason: frame.reason.to_string() }
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return Ended::Eof,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next text frame, or None once the connection ended (recording
    /// the close frame in `last_close`).
    pub async fn ended_or_text(&mut self) -> Option<String> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("something in time") {
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(Message::Close(frame))) => {
                    self.last_close = frame.map(|f| (f.code.into(), f.reason.to_string()));
                    return None;
                }
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn expect_close(&mut self, code: u16) -> String {
        match self.ended().await {
            Ended::Close { code: c, reason } => {
                assert_eq!(c, code, "{}: close code (reason {reason:?})", self.name);
                reason
            }
            Ended::Eof => panic!("{}: expected close {code}, connection just ended", self.name),
        }
    }
}

/// Poll `f` until it is true (server-side state changes are asynchronous).
pub async fn wait_until(what: &str, f: impl FnMut() -> bool) {
    testkit::wait_until(WAIT, what, f).await
}

/// A raw client that completes the handshake and then never reads or answers
/// pings: a dead TCP peer.
pub async fn dead_player(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "handshake answer: {head:?}");
    tcp
}

/// One masked client text frame, written by hand (for raw TCP clients).
pub fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    // A zero mask leaves the payload as it is.
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// Open a WebSocket to `ws://{addr}{path}` with extra request headers; on an
/// HTTP refusal, the status code.
pub async fn try_connect(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error;
    let mut request = format!("ws://{addr}{path}").into_client_request().expect("request");
    for (k, v) in headers {
        request.headers_mut().insert(http_header_name(k), v.parse().expect("header value"));
    }
    let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async_with_config(request, Some(config), true))
        .await
        .expect("answer in time")
    {
        Ok((ws, _)) => Ok(Client { ws, name: path.to_string(), last_close: None }),
        Err(Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("connect {path}: {e}"),
    }
}

fn http_header_name(name: &str) -> tokio_tungstenite::tungstenite::http::HeaderName {
    name.parse().expect("header name")
}

/// One raw HTTP/1.1 request; returns (status, headers+body text).
pub async fn http_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf)).await.expect("response in time").expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Resident memory of this process in bytes.
pub fn rss_bytes() -> usize {
    testkit::procfs::self_rss_bytes().expect("VmRSS of this process") as usize
}
