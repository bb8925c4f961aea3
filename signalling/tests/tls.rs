//! Issue 7, TLS: wss:// on all three listeners with a certificate generated
//! at test time, HTTPS on the player port, and the plain-HTTP redirect.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use signalling::config::TlsConfig;
use signalling::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

struct Certs {
    _dir: tempfile::TempDir,
    cert: CertificateDer<'static>,
    config: TlsConfig,
}

fn certs(https_redirect: bool) -> Certs {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("self-signed cert");
    let dir = tempfile::tempdir().expect("dir");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, ck.cert.pem()).expect("write cert");
    std::fs::write(&key_path, ck.key_pair.serialize_pem()).expect("write key");
    let config = TlsConfig { cert_path, key_path, https_port: 0, https_redirect };
    Certs { _dir: dir, cert: ck.cert.der().clone(), config }
}

fn connector(cert: &CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("trust the test cert");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_stream(addr: SocketAddr, cert: &CertificateDer<'static>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let name = ServerName::try_from("localhost").expect("name");
    connector(cert).connect(name, tcp).await.expect("TLS handshake with a trusted cert")
}

async fn wss(addr: SocketAddr, cert: &CertificateDer<'static>) -> WebSocketStream<TlsStream<TcpStream>> {
    let stream = tls_stream(addr, cert).await;
    let (ws, _) = tokio_tungstenite::client_async(format!("wss://localhost:{}/", addr.port()), stream)
        .await
        .expect("websocket over TLS");
    ws
}

async fn recv(ws: &mut WebSocketStream<TlsStream<TcpStream>>) -> Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("in time").expect("open").expect("frame") {
            Message::Text(t) => return serde_json::from_str(&t).expect("json"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn send(ws: &mut WebSocketStream<TlsStream<TcpStream>>, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

#[tokio::test]
async fn wss_on_every_listener_and_https_on_the_player_port() {
    let certs = certs(false);
    let mut config = ServerConfig::ephemeral();
    config.tls = Some(certs.config.clone());
    config.rest_api = true;
    let h = server(config).await;
    assert!(h.is_tls());
    assert_eq!(h.redirect_addr(), None);

    let mut s = wss(h.streamer_addr(), &certs.cert).await;
    assert_eq!(recv(&mut s).await["type"], "config");
    assert_eq!(recv(&mut s).await["type"], "identify");
    send(&mut s, json!({"type": "endpointId", "id": "S"})).await;
    assert_eq!(recv(&mut s).await["committedId"], "S");

    let mut p = wss(h.player_addr(), &certs.cert).await;
    assert_eq!(recv(&mut p).await["type"], "config");
    assert_eq!(recv(&mut p).await["type"], "playerCount");
    send(&mut p, json!({"type": "subscribe", "streamerId": "S"})).await;
    let pid = recv(&mut s).await["playerId"].as_str().expect("id").to_string();
    send(&mut s, json!({"type": "offer", "sdp": "over-tls", "playerId": pid})).await;
    assert_eq!(recv(&mut p).await["sdp"], "over-tls");

    let mut sfu = wss(h.sfu_addr(), &certs.cert).await;
    assert_eq!(recv(&mut sfu).await["type"], "config");

    // HTTPS REST on the player port.
    let mut https = tls_stream(h.player_addr(), &certs.cert).await;
    https
        .write_all(b"GET /api/streamers/S HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut body = String::new();
    https.read_to_string(&mut body).await.expect("read");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"streamerId\":\"S\""), "{body}");

    // Plain TCP to a TLS port: no WebSocket, and nothing else breaks.
    let mut plain = TcpStream::connect(h.streamer_addr()).await.expect("tcp");
    plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut buf)).await.expect("closed in time");
    assert!(!String::from_utf8_lossy(&buf).contains("101"), "plain HTTP must not upgrade on a TLS port");
    wait_until("failed handshake counted", || h.render_metrics().contains("tls_handshake_failed")).await;
    h.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_fails() {
    let certs = certs(false);
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("other cert");
    let mut config = ServerConfig::ephemeral();
    config.tls = Some(certs.config.clone());
    let h = server(config).await;
    let tcp = TcpStream::connect(h.player_addr()).await.expect("tcp");
    let name = ServerName::try_from("localhost").expect("name");
    let result = connector(other.cert.der()).connect(name, tcp).await;
    assert!(result.is_err(), "a certificate we did not trust was accepted");
    h.shutdown().await;
}

#[tokio::test]
async fn https_redirect_sends_plain_http_to_the_https_port() {
    let certs = certs(true);
    let mut config = ServerConfig::ephemeral();
    config.tls = Some(certs.config.clone());
    let h = server(config).await;
    let redirect = h.redirect_addr().expect("redirect listener");
    assert_ne!(redirect, h.player_addr());
    let https_port = h.player_addr().port();
    let (status, text) = http_request(redirect, "GET", "/api/status?x=1", &[]).await;
    assert_eq!(status, 301, "{text}");
    let location = format!("location: https://127.0.0.1:{https_port}/api/status?x=1");
    assert!(text.to_ascii_lowercase().contains(&location), "{text}");
    // A WebSocket upgrade on the plain port is redirected too, never served.
    assert_eq!(try_connect(redirect, "/", &[]).await.err(), Some(301));
    assert_eq!(h.connection_count(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn bad_certificate_files_fail_to_start_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a pem").expect("write");
    let mut config = ServerConfig::ephemeral();
    config.tls = Some(TlsConfig { cert_path: junk.clone(), key_path: junk, https_port: 0, https_redirect: false });
    let err = signalling::run(config).await.err().expect("refuses to start");
    assert!(err.to_string().contains("junk.pem"), "{err}");
}

#[tokio::test]
async fn a_silent_connection_to_a_tls_port_is_dropped_after_the_handshake_timeout() {
    let certs = certs(false);
    let mut config = ServerConfig::ephemeral();
    config.tls = Some(certs.config.clone());
    config.limits.handshake_timeout = std::time::Duration::from_millis(300);
    let h = server(config).await;
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(h.streamer_addr()).await.expect("tcp");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, silent.read(&mut buf)).await.expect("dropped in time").unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() < std::time::Duration::from_millis(1300), "{:?}", started.elapsed());
    assert_eq!(h.metrics().drop_count("handshake_timeout"), 1);
    h.shutdown().await;
}
