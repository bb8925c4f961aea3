//! The WebSocket opening handshake, read and answered without an HTTP server.
//!
//! Almost every connection to a signalling port is one upgrade request and
//! then WebSocket frames. Reading that request head here (with `httparse`)
//! and answering `101` ourselves skips hyper's per-connection machinery, and
//! lets the `101` leave in the same write as the server's first frames
//! (`config`, …): one system call per join fewer. A request that is not an
//! upgrade goes to hyper together with the bytes already read ([`Prefixed`]).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Longest request head accepted (request line and headers); hyper allows
/// about as much, and a browser may bring large cookies to the player port.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most headers accepted in a request head (hyper's default).
const MAX_HEADERS: usize = 100;

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// The headers an upgrade needs ([`UPGRADE_HEADERS`]), not all of them.
    pub headers: HeaderMap,
}

impl RequestHead {
    /// The query part of the target, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// `GET` with `Connection: upgrade` and `Upgrade: websocket`.
    pub fn is_websocket_upgrade(&self) -> bool {
        is_websocket_upgrade(&self.method, &self.headers)
    }
}

/// A WebSocket upgrade request (RFC 6455 §4.1): `GET` with
/// `Connection: upgrade` and `Upgrade: websocket`.
pub fn is_websocket_upgrade(method: &str, headers: &HeaderMap) -> bool {
    method == "GET" && asks_for_websocket(headers)
}

/// `Connection: upgrade` and `Upgrade: websocket`.
fn asks_for_websocket(headers: &HeaderMap) -> bool {
    has_token(headers, http::header::CONNECTION, "upgrade") && has_token(headers, http::header::UPGRADE, "websocket")
}

/// Whether the comma-separated header `name` lists `token` (any case).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// What reading a request head gave.
#[derive(Debug)]
pub enum HeadRead {
    /// A complete head, and every byte read so far (the head included).
    Head { head: RequestHead, head_len: usize, bytes: BytesMut },
    /// Not HTTP/1 (or malformed): answer 400.
    Malformed,
    /// Longer than [`MAX_HEAD`]: answer 431.
    TooLarge,
    /// The peer closed before sending a whole head.
    Closed,
}

/// Read until a whole request head has arrived. The buffer starts small and
/// grows only for unusually long heads.
pub async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<HeadRead> {
    let mut bytes = BytesMut::with_capacity(1024);
    loop {
        if bytes.len() >= MAX_HEAD {
            return Ok(HeadRead::TooLarge);
        }
        if bytes.capacity() == bytes.len() {
            bytes.reserve(bytes.len().min(MAX_HEAD - bytes.len()).max(1024));
        }
        if io.read_buf(&mut bytes).await? == 0 {
            return Ok(HeadRead::Closed);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&bytes) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(head_len)) => {
                let Some(head) = to_head(&request) else { return Ok(HeadRead::Malformed) };
                return Ok(HeadRead::Head { head, head_len, bytes });
            }
            Err(httparse::Error::TooManyHeaders) => return Ok(HeadRead::TooLarge),
            Err(_) => return Ok(HeadRead::Malformed),
        }
    }
}

/// The headers an upgrade is decided on; the others are not copied (a
/// request that is not an upgrade is read again by hyper).
const UPGRADE_HEADERS: [HeaderName; 7] = [
    http::header::CONNECTION,
    http::header::UPGRADE,
    http::header::SEC_WEBSOCKET_KEY,
    http::header::SEC_WEBSOCKET_VERSION,
    http::header::SEC_WEBSOCKET_PROTOCOL,
    http::header::ORIGIN,
    http::header::AUTHORIZATION,
];

fn to_head(request: &httparse::Request<'_, '_>) -> Option<RequestHead> {
    let mut headers = HeaderMap::with_capacity(UPGRADE_HEADERS.len());
    for h in request.headers.iter() {
        let Some(name) = UPGRADE_HEADERS.iter().find(|n| h.name.eq_ignore_ascii_case(n.as_str())) else {
            continue;
        };
        let name = name.clone();
        let value = HeaderValue::from_bytes(h.value).ok()?;
        headers.append(name, value);
    }
    Some(RequestHead { method: request.method?.to_string(), target: request.path?.to_string(), headers })
}

/// A plain response with a short text body; the connection closes after it.
pub fn response(status: http::StatusCode, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// The `101 Switching Protocols` answer to an upgrade.
pub fn switching_protocols(accept_key: &str, protocol: Option<&str>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: {accept_key}\r\n"
    );
    if let Some(protocol) = protocol {
        out.push_str(&format!("sec-websocket-protocol: {protocol}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A stream with bytes to hand out before its own (what the handshake read
/// past the head) and bytes to write before the first write (the `101`),
/// which then go out together with it in one vectored write.
pub struct Prefixed<S> {
    io: S,
    unread: Bytes,
    unwritten: Bytes,
}

impl<S> Prefixed<S> {
    pub fn new(io: S, unread: Bytes, unwritten: Bytes) -> Self {
        Prefixed { io, unread, unwritten }
    }
}

impl<S: AsyncWrite + Unpin> Prefixed<S> {
    /// Write what is left of the prefix (alone).
    fn poll_prefix(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.unwritten.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.unwritten))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.unwritten.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread[..n]);
            self.unread.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        while !this.unwritten.is_empty() {
            let pending = this.unwritten.len();
            let slices = [IoSlice::new(&this.unwritten), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n < pending {
                this.unwritten.advance(n);
                continue;
            }
            this.unwritten = Bytes::new();
            if n > pending || buf.is_empty() {
                return Poll::Ready(Ok(n - pending));
            }
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_prefix(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_prefix(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn head_is_parsed_and_bytes_past_it_are_kept() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let request = b"GET /x?token=a%20b HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\nEXTRA";
        // Sent in two pieces: the head is read across reads.
        client.write_all(&request[..20]).await.unwrap();
        let read = tokio::spawn(async move { read_head(&mut server).await.unwrap() });
        tokio::task::yield_now().await;
        client.write_all(&request[20..]).await.unwrap();
        let HeadRead::Head { head, head_len, bytes } = read.await.unwrap() else { panic!("no head") };
        assert_eq!(head.method, "GET");
        assert_eq!(head.query(), Some("token=a%20b"));
        assert!(head.is_websocket_upgrade());
        assert_eq!(&bytes[head_len..], b"EXTRA");
    }

    #[tokio::test]
    async fn junk_closed_and_oversized_heads_are_told_apart() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(b"\x16\x03\x01 not http\r\n\r\n").await.unwrap();
        assert!(matches!(read_head(&mut server).await.unwrap(), HeadRead::Malformed));

        let (client, mut server) = tokio::io::duplex(64 * 1024);
        drop(client);
        assert!(matches!(read_head(&mut server).await.unwrap(), HeadRead::Closed));

        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let long = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n", "a".repeat(MAX_HEAD));
        let writer = tokio::spawn(async move { client.write_all(long.as_bytes()).await });
        assert!(matches!(read_head(&mut server).await.unwrap(), HeadRead::TooLarge));
        drop(writer);
    }

    #[tokio::test]
    async fn prefixes_come_first_in_both_directions() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut s = Prefixed::new(server, Bytes::from_static(b"ab"), Bytes::from_static(b"101 "));
        let mut got = [0u8; 8];
        client.write_all(b"cd").await.unwrap();
        let n = s.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"ab");
        let n = s.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"cd");
        // Larger than the pipe: partial writes of the prefix and of the data.
        let data = vec![b'x'; 300];
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut buf = [0u8; 16];
            while all.len() < 304 {
                let n = client.read(&mut buf).await.unwrap();
                all.extend_from_slice(&buf[..n]);
            }
            all
        });
        s.write_all(&data).await.unwrap();
        s.flush().await.unwrap();
        let all = reader.await.unwrap();
        assert_eq!(&all[..4], b"101 ");
        assert_eq!(&all[4..], &data[..]);
    }

    #[tokio::test]
    async fn a_flush_alone_sends_the_prefix() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut s = Prefixed::new(server, Bytes::new(), Bytes::from_static(b"101\r\n"));
        s.flush().await.unwrap();
        let mut got = [0u8; 8];
        let n = client.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"101\r\n");
    }

    #[test]
    fn responses_are_well_formed() {
        let r = String::from_utf8(response(http::StatusCode::UNAUTHORIZED, &[("www-authenticate", "Bearer")], "no\n"))
            .unwrap();
        assert!(r.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
        assert!(r.contains("content-length: 3\r\n") && r.contains("www-authenticate: Bearer\r\n"));
        assert!(r.ends_with("\r\n\r\nno\n"));
        let s = String::from_utf8(switching_protocols("k=", Some("p"))).unwrap();
        assert!(
            s.starts_with("HTTP/1.1 101 Switching Protocols\r\n") && s.ends_with("sec-websocket-protocol: p\r\n\r\n")
        );
    }
}
