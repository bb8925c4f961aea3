//! The WebSocket handshake as the server reads it itself (`handshake.rs`):
//! what a client sends together with its upgrade request is kept, and an
//! upgrade after a plain HTTP request on the same connection still works.

mod common;

use std::time::Duration;

use common::*;
use signalling::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Read until `needle` has arrived (or fail after 5 s); returns all read.
async fn read_until(tcp: &mut TcpStream, needle: &str) -> String {
    read_until_seen(tcp, needle, |seen| seen.contains(needle)).await
}

/// Read until `done` holds for everything read so far (or fail after 5 s,
/// naming `what`); returns all read.
async fn read_until_seen(tcp: &mut TcpStream, what: &str, done: impl Fn(&str) -> bool) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before {what:?}: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
            if done(&String::from_utf8_lossy(&seen)) {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(found.is_ok(), "no {what:?} within 5 s; got {text:?}");
    text
}

#[tokio::test]
async fn a_frame_sent_with_the_upgrade_request_is_answered() {
    let h = server(ServerConfig::ephemeral()).await;
    let mut tcp = TcpStream::connect(h.player_addr()).await.unwrap();
    // Request and first frame in one write: the frame is past the head in
    // the server's first read.
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend_from_slice(&masked_text_frame(br#"{"type":"ping","time":424242}"#));
    tcp.write_all(&bytes).await.unwrap();
    let seen = read_until(&mut tcp, r#""time":424242"#).await;
    assert!(seen.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{seen:?}");
    // The 101 and the greeting left together, and the greeting comes first.
    let config = seen.find(r#""type":"config""#).expect("config");
    assert!(config < seen.find(r#""type":"pong""#).expect("pong"));
    h.shutdown().await;
}

#[tokio::test]
async fn an_upgrade_after_a_plain_request_on_the_same_connection_works() {
    let h = server(ServerConfig::ephemeral()).await;
    let mut tcp = TcpStream::connect(h.player_addr()).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
    let seen = read_until(&mut tcp, "ok").await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen:?}");
    tcp.write_all(UPGRADE.as_bytes()).await.unwrap();
    let seen = read_until(&mut tcp, r#""type":"config""#).await;
    assert!(seen.starts_with("HTTP/1.1 101"), "{seen:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn junk_and_oversized_heads_get_http_errors() {
    let h = server(ServerConfig::ephemeral()).await;
    for addr in [h.player_addr(), h.streamer_addr()] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"\x16\x03\x01\x02\x00 not http\r\n\r\n").await.unwrap();
        assert!(read_until(&mut tcp, "\r\n").await.starts_with("HTTP/1.1 400"));

        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n", "a".repeat(70 * 1024));
        // The server may answer before reading it all.
        let _ = tcp.write_all(big.as_bytes()).await;
        assert!(read_until(&mut tcp, "\r\n").await.starts_with("HTTP/1.1 431"));
    }
    h.shutdown().await;
}

#[tokio::test]
async fn only_a_get_upgrades_first_or_after_a_plain_request() {
    let h = server(ServerConfig::ephemeral()).await;
    let post = UPGRADE.replacen("GET", "POST", 1);
    for port in [h.player_addr(), h.streamer_addr()] {
        // As the connection's first request (read by the server itself) …
        let mut tcp = TcpStream::connect(port).await.unwrap();
        tcp.write_all(post.as_bytes()).await.unwrap();
        let seen = read_until(&mut tcp, "\r\n").await;
        assert!(seen.starts_with("HTTP/1.1 4"), "{seen:?}");
        // … and after a plain request on the same connection (read by hyper).
        let mut tcp = TcpStream::connect(port).await.unwrap();
        tcp.write_all(format!("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n{post}").as_bytes()).await.unwrap();
        let second = read_until_seen(&mut tcp, "two answers", |s| s.matches("HTTP/1.1 ").count() >= 2).await;
        let answers: Vec<&str> = second.split("HTTP/1.1 ").skip(1).collect();
        assert!(answers[1].starts_with('4'), "second answer: {second:?}");
    }
    h.shutdown().await;
}
