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
