//! One accepted stream, up to the WebSocket or to hyper. On a WebSocket port
//! the first request head is read by [`crate::handshake`]: an upgrade is
//! answered there (its `101` leaves with the first frames), and anything else
//! is handed to hyper (HTTP/1), which also handles an upgrade that follows an
//! earlier request. Plain HTTP on the player port goes to the warp routes of
//! [`crate::http`]; the streamer and SFU ports answer 426; the redirect port
//! sends everything to HTTPS; the management listener serves its own routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming as HyperBody;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tower_service::Service;
use tracing::debug;
use warp::reply::{Reply, Response};

use super::accept::Listener;
use super::connection::discard_input;
use super::upgrade::{upgrade, Upgrade};
use super::Shared;
use crate::handshake::{self, HeadRead, Prefixed};
use crate::registry::Role;

/// Serve one accepted (and maybe TLS-wrapped) stream. On a WebSocket port
/// the first request head is read here: an upgrade is answered without
/// hyper (see [`crate::handshake`]); anything else goes to hyper.
pub(super) async fn serve_stream<I>(mut io: I, addr: SocketAddr, kind: Listener, shared: Arc<Shared>)
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
    let (early, switching, admitted) = {
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
        let admitted = match upgrade(&head.method, &head.headers, head.query(), addr, role, &shared) {
            Upgrade::Admitted(admitted) => admitted,
            Upgrade::Refused(refused) => return write_and_close(io, Bytes::from(refused.to_http1())).await,
            Upgrade::PlainHttp => {
                // hyper reads the request again, from the bytes already taken.
                let io = Prefixed::new(io, bytes.freeze(), Bytes::new());
                return Box::pin(serve_http(io, addr, kind, shared)).await;
            }
        };
        // What the client sent past its head (normally nothing) is the start of its frames.
        let early = Bytes::copy_from_slice(&bytes[head_len..]);
        (early, admitted.switching_protocols(), admitted)
    };
    // Early frames reach tungstenite through `Prefixed`, not
    // `from_partially_read`: that one starts a read buffer that forgets its
    // size and then reads frame by frame (14-byte header reads). The `101`
    // waits in it to leave with the first frames.
    admitted.start(Prefixed::new(io, early, Bytes::from(switching)), shared).await;
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
                Listener::Management => management(req, &shared).await,
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

/// One request through hyper on a WebSocket port: an upgrade after an
/// earlier request on the same connection, or plain HTTP.
async fn handle_request(
    mut req: http::Request<HyperBody>,
    addr: SocketAddr,
    role: Role,
    shared: Arc<Shared>,
) -> Response {
    let admitted = match upgrade(req.method().as_str(), req.headers(), req.uri().query(), addr, role, &shared) {
        Upgrade::Admitted(admitted) => admitted,
        Upgrade::Refused(refused) => return refused.into_response(),
        Upgrade::PlainHttp if role == Role::Player => {
            let mut service = warp::service(shared.http.clone());
            return match service.call(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
        Upgrade::PlainHttp => {
            return plain(http::StatusCode::UPGRADE_REQUIRED, "This port only accepts WebSocket connections.\n")
        }
    };
    let response = admitted.response();
    let on_upgrade = hyper::upgrade::on(&mut req);
    shared.tasks.clone().spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => admitted.start(TokioIo::new(upgraded), shared).await,
            Err(e) => debug!("websocket upgrade from {addr} failed: {e}"),
        }
    });
    response
}

/// One request on the management listener: its own warp routes (a WebSocket upgrade there is
/// just an unknown request: 404).
async fn management(req: http::Request<HyperBody>, shared: &Shared) -> Response {
    let Some(routes) = &shared.management_http else {
        return plain(http::StatusCode::NOT_FOUND, "Not Found");
    };
    match warp::service(routes.clone()).call(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// `--https_redirect`: every request on the plain player port goes to HTTPS.
fn redirect(req: &http::Request<HyperBody>, shared: &Shared) -> Response {
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok());
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = crate::tls::redirect_location(host, &shared.config.bind.to_string(), shared.https_port, path);
    match http::HeaderValue::from_str(&location) {
        Ok(value) => {
            let mut response = plain(http::StatusCode::MOVED_PERMANENTLY, "Moved to HTTPS.\n");
            response.headers_mut().insert(http::header::LOCATION, value);
            response
        }
        Err(_) => plain(http::StatusCode::BAD_REQUEST, "Bad Host header.\n"),
    }
}

/// A short text answer.
pub(super) fn plain(status: http::StatusCode, body: &'static str) -> Response {
    warp::reply::with_status(body, status).into_response()
}
