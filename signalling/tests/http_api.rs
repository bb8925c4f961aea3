//! Section 10 over a real socket: REST shapes, 404 bodies, 426 on WebSocket-only ports.

mod common;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET; returns (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn streamer_appears_in_rest_once_identified() {
    let h = rest_server().await;
    let (status, body) = get(h.player_addr(), "/api/streamers/DefaultStreamer").await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"message": "No streamer id matches DefaultStreamer."})
    );

    let (mut s, id) = Client::streamer(&h, "DefaultStreamer").await;
    let (_p, pid) = Client::subscribed_player(&h, &mut s, &id).await;
    let (status, body) = get(h.player_addr(), "/api/streamers/DefaultStreamer").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["streamerId"], "DefaultStreamer");
    assert_eq!(v["type"], "Streamer");
    assert_eq!(v["streaming"], true);
    assert_eq!(v["subscribers"][0]["playerId"], pid.as_str());

    let (status, body) = get(h.player_addr(), &format!("/api/players/{pid}")).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["subscribedTo"], "DefaultStreamer");
    assert_eq!(v["type"], "Player");
    let (status, body) = get(h.player_addr(), "/api/players/Nobody").await;
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"message": "No player ID matches Nobody."}));

    let (status, body) = get(h.player_addr(), "/api/status").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["streamer_count"], 1);
    assert_eq!(v["player_count"], 1);
    h.shutdown().await;
}

#[tokio::test]
async fn websocket_only_ports_answer_plain_http_with_426() {
    let h = rest_server().await;
    for addr in [h.streamer_addr(), h.sfu_addr()] {
        assert_eq!(get(addr, "/").await.0, 426);
    }
    assert_eq!(get(h.player_addr(), "/healthz").await.0, 200);
    h.shutdown().await;
}

/// Raw GET with an `Accept` header; (status, head, body).
async fn get_accepting(addr: std::net::SocketAddr, path: &str, accept: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await.expect("answer in time").expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

/// Matchmaking on one node (no Redis): `/match` redirects to a streamer with
/// room and reserves it; with none free, a browser gets a page that retries
/// and a program `503` with `Retry-After`.
#[tokio::test]
async fn match_picks_a_free_streamer_reserves_it_and_says_when_none_is_free() {
    let h = server(signalling::ServerConfig { max_players: 1, ..signalling::ServerConfig::ephemeral() }).await;
    let (mut s1, _) = Client::streamer(&h, "S1").await;
    let (_s2, _) = Client::streamer(&h, "S2").await;
    let _taken = Client::subscribed_player(&h, &mut s1, "S1").await;
    let (status, head, _) = get_accepting(h.player_addr(), "/match", "text/html").await;
    assert_eq!(status, 302, "{head}");
    assert!(head.to_ascii_lowercase().contains("location: /?streamerid=s2"), "{head}");
    // S2 is reserved for that person now, S1 is full: nobody else gets either.
    let (status, head, body) = get_accepting(h.player_addr(), "/api/match", "application/json").await;
    assert_eq!(status, 503, "{body}");
    assert!(head.to_ascii_lowercase().contains("retry-after: 2"), "{head}");
    let (status, head, _) = get_accepting(h.player_addr(), "/match", "*/*").await;
    assert_eq!(status, 503);
    assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
    let (status, _, page) = get_accepting(h.player_addr(), "/match", "text/html,application/xhtml+xml").await;
    assert_eq!(status, 503);
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    // A third streamer: picked, as JSON, with no node on a single server.
    let (_s3, _) = Client::streamer(&h, "S3").await;
    let (status, _, body) = get_accepting(h.player_addr(), "/api/match", "application/json").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json"),
        json!({"streamerId": "S3", "node": null})
    );
}
