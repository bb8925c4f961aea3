//! Issue 7, limits and metrics: connections per role and per IP, the
//! handshake timeout, and what `GET /metrics` shows.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use signalling::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn connections_per_role_are_capped_with_503_and_slots_come_back() {
    let mut config = ServerConfig::ephemeral();
    config.limits.max_players = 2;
    config.limits.max_streamers = 1;
    let h = server(config).await;
    let (_s, _) = Client::streamer(&h, "S").await;
    assert_eq!(try_connect(h.streamer_addr(), "/", &[]).await.err(), Some(503));
    let p1 = Client::player(&h).await;
    let _p2 = Client::player(&h).await;
    assert_eq!(try_connect(h.player_addr(), "/", &[]).await.err(), Some(503));
    // SFUs are not limited here.
    let mut sfu = Client::connect(h.sfu_addr(), "sfu").await;
    sfu.expect_type("config").await;
    drop(p1);
    wait_until("slot freed", || h.connection_count() == 3).await;
    // The permit is dropped when the connection task ends, just after the router forgets it.
    let deadline = Instant::now() + WAIT;
    let mut p3 = loop {
        match try_connect(h.player_addr(), "/", &[]).await {
            Ok(c) => break c,
            Err(503) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => panic!("status {e}"),
        }
    };
    p3.expect_type("config").await;
    assert!(h.metrics().refused_count("role_limit") >= 2);
    h.shutdown().await;
}

#[tokio::test]
async fn connections_per_ip_are_capped_with_429() {
    let mut config = ServerConfig::ephemeral();
    config.limits.max_per_ip = 3;
    let h = server(config).await;
    let _a = Client::player(&h).await;
    let (_b, _) = Client::streamer(&h, "S").await;
    let mut c = Client::connect(h.sfu_addr(), "sfu").await;
    c.expect_type("config").await;
    for addr in [h.player_addr(), h.streamer_addr(), h.sfu_addr()] {
        assert_eq!(try_connect(addr, "/", &[]).await.err(), Some(429));
    }
    assert_eq!(h.metrics().refused_count("ip_limit"), 3);
    h.shutdown().await;
}

/// How long the server takes to drop `tcp` (EOF or reset).
async fn time_to_drop(mut tcp: TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(WAIT, tcp.read(&mut buf)).await.expect("dropped in time") {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn connections_that_do_not_finish_the_handshake_are_dropped() {
    let mut config = ServerConfig::ephemeral();
    config.limits.handshake_timeout = Duration::from_millis(500);
    let h = server(config).await;
    let mut cases = Vec::new();
    for addr in [h.player_addr(), h.streamer_addr(), h.sfu_addr()] {
        // Silent after connecting.
        cases.push(TcpStream::connect(addr).await.expect("tcp"));
        // Half a request line, then nothing (slowloris).
        let mut slow = TcpStream::connect(addr).await.expect("tcp");
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: webs").await.expect("write");
        cases.push(slow);
    }
    // A complete WebSocket upgrade is not affected by the timeout.
    let mut ok = Client::player(&h).await;
    let waits = futures_util::future::join_all(cases.into_iter().map(time_to_drop)).await;
    for wait in &waits {
        assert!(*wait < Duration::from_millis(500 + 1000), "dropped after {wait:?}");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    ok.expect_nothing_pending().await;
    let dropped = h.metrics().drop_count("handshake_timeout");
    assert_eq!(dropped, 6, "{}", h.render_metrics());
    h.shutdown().await;
}

#[tokio::test]
async fn metrics_show_connections_messages_drops_closes_latency_and_queues() {
    let mut config = ServerConfig::ephemeral();
    config.rate_limit_per_sec = 10;
    config.rate_limit_burst = 5;
    let h = server(config).await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let (mut p, pid) = Client::subscribed_player(&h, &mut s, &id).await;
    s.send(json!({"type": "offer", "sdp": "x", "playerId": pid})).await;
    p.recv().await;
    p.send(json!({"type": "subscribe", "streamerId": "Nope"})).await;
    p.expect_type("subscribeFailed").await;
    p.send_raw("not json").await;
    let mut flooder = Client::player(&h).await;
    for _ in 0..20 {
        flooder.send_raw(r#"{"type":"listStreamers"}"#).await;
    }
    while flooder.ended_or_text().await.is_some() {}
    let mut leaver = Client::player(&h).await;
    leaver.ws.close(None).await.expect("close");
    while leaver.ended_or_text().await.is_some() {}
    wait_until("flooder and leaver gone", || h.connection_count() == 2).await;
    let (status, text) = http_request(h.player_addr(), "GET", "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(text.contains("text/plain; version=0.0.4"), "{text}");
    for needle in [
        "signalling_registry_entries 2",
        "signalling_connections{role=\"streamer\"} 1",
        "signalling_connections_accepted_total{role=\"player\"} 3",
        "signalling_messages_in_total{type=\"subscribe\"} 2",
        "signalling_messages_out_total{type=\"offer\"} 1",
        "signalling_messages_out_total{type=\"config\"} 4",
        "signalling_forwards_total 1",
        "signalling_drops_total{reason=\"not_json\"} 1",
        "signalling_drops_total{reason=\"rate_limit\"} 1",
        "signalling_closes_total{code=\"1008\"} 1",
        "signalling_subscribe_failures_total 1",
        "signalling_peer_closes_total{code=\"1005\"} 1",
        "signalling_forward_latency_seconds_bucket{le=\"+Inf\"}",
        "signalling_forward_latency_seconds_count",
        "signalling_queued_frames",
        "signalling_queue_depth_max",
        "signalling_tasks",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    h.shutdown().await;
}
