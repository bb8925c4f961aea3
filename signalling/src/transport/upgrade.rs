//! The one way an HTTP request becomes a WebSocket connection: [`upgrade`]
//! decides whether the request upgrades and admits it; [`Admitted::start`]
//! runs the connection over the upgraded socket. The first request on a
//! socket (answered by hand, see [`crate::handshake`]) and a later one
//! (answered by hyper) differ only in how they write the answer.
//!
//! The WebSocket is built here rather than with `warp::ws()` so that we choose
//! its buffers: tungstenite's default 128 KiB read buffer per connection would
//! cost ~20× the memory of the rest of a connection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::reply::Response;

use super::admission::{admit, Refused};
use super::connection::run_connection;
use super::Shared;
use crate::handshake;
use crate::limits::Permit;
use crate::registry::Role;

/// Initial read buffer per connection. tungstenite allocates it up front for
/// every connection (its default, 128 KiB, would dominate our memory), and
/// grows it on demand for the odd large SDP.
const READ_BUFFER: usize = 2 * 1024;

/// Bytes of frames collected before a write to the socket; a flush writes
/// sooner. The buffer is allocated only as frames are written.
pub(super) const WRITE_BUFFER: usize = 64 * 1024;

/// What a request on a WebSocket port leads to.
pub(super) enum Upgrade {
    /// Not a WebSocket upgrade: plain HTTP.
    PlainHttp,
    /// An upgrade that may not go ahead.
    Refused(Refused),
    /// An upgrade to answer with `101` and run.
    Admitted(Admitted),
}

/// An admitted upgrade: the `101` to answer with and the connection's
/// place under the limits.
pub(super) struct Admitted {
    accept_key: String,
    /// The subprotocol to echo.
    protocol: Option<String>,
    role: Role,
    addr: SocketAddr,
    permit: Permit,
}

/// Decide what a request on a WebSocket port does: an upgrade request
/// ([`handshake::is_websocket_upgrade`]) needs a well-formed handshake and
/// admission; anything else is plain HTTP.
pub(super) fn upgrade(
    method: &str,
    headers: &http::HeaderMap,
    query: Option<&str>,
    addr: SocketAddr,
    role: Role,
    shared: &Shared,
) -> Upgrade {
    if !handshake::is_websocket_upgrade(method, headers) {
        return Upgrade::PlainHttp;
    }
    let Ok((accept_key, protocol)) = websocket_accept(headers) else {
        return Upgrade::Refused(Refused::bad_handshake());
    };
    match admit(headers, query, addr, role, shared) {
        Ok(permit) => Upgrade::Admitted(Admitted { accept_key, protocol, role, addr, permit }),
        Err(refused) => Upgrade::Refused(refused),
    }
}

impl Admitted {
    /// The `101`, written by hand.
    pub(super) fn switching_protocols(&self) -> Vec<u8> {
        handshake::switching_protocols(&self.accept_key, self.protocol.as_deref())
    }

    /// The `101`, through hyper.
    pub(super) fn response(&self) -> Response {
        let mut response = http::Response::builder()
            .status(http::StatusCode::SWITCHING_PROTOCOLS)
            .header(http::header::CONNECTION, "upgrade")
            .header(http::header::UPGRADE, "websocket")
            .header(http::header::SEC_WEBSOCKET_ACCEPT, &self.accept_key);
        if let Some(protocol) = &self.protocol {
            response = response.header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        match response.body(warp::reply::Response::default().into_body()) {
            Ok(r) => r,
            Err(_) => super::handoff::plain(http::StatusCode::INTERNAL_SERVER_ERROR, "handshake error\n"),
        }
    }

    /// Run the connection over the upgraded `io`, in a task of its own: the
    /// room the handshake took (and hyper's) is freed, and the connection's
    /// future is the task itself, as wrapping it would store the socket twice.
    pub(super) async fn start<S>(self, io: S, shared: Arc<Shared>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Admitted { role, addr, permit, .. } = self;
        let ws = WebSocketStream::from_raw_socket(io, WsRole::Server, Some(websocket_config(&shared))).await;
        shared.metrics.accepted(role);
        let tasks = shared.tasks.clone();
        tasks.spawn(run_connection(ws, role, addr, shared, permit));
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

fn websocket_config(shared: &Shared) -> WebSocketConfig {
    // Small buffers: most signalling frames are well under 4 KiB, and the
    // read buffer grows on demand for the odd large SDP.
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(shared.config.max_message_size))
        .max_frame_size(Some(shared.config.max_message_size))
}
