//! Issue 7, kill -9: a streamer process killed mid-session. The server must
//! notice (TCP reset/EOF, or at worst the keepalive) and tell its players.
//!
//! The streamer is this test binary re-invoked as a child process running
//! only [`child_streamer_process`], which does nothing unless the parent set
//! `KILL9_STREAMER_ADDR`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use signalling::ServerConfig;

const ADDR_VAR: &str = "KILL9_STREAMER_ADDR";

/// In the child: identify as `K`, say READY on stdout, then read (answering
/// pings) until killed.
#[tokio::test]
async fn child_streamer_process() {
    let Ok(addr) = std::env::var(ADDR_VAR) else { return };
    let mut s = Client::connect(addr.parse().expect("addr"), "child").await;
    s.expect_type("config").await;
    s.expect_type("identify").await;
    s.send(json!({"type": "endpointId", "id": "K"})).await;
    s.expect_type("endpointIdConfirm").await;
    println!("READY");
    while let Some(Ok(_)) = s.ws.next().await {}
    // Never get here: the parent kills us while we read.
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn a_streamer_killed_with_sigkill_is_noticed_and_its_players_told() {
    let ping = Duration::from_secs(2);
    let mut config = ServerConfig::ephemeral();
    config.ping_interval = Some(ping);
    let h = server(config).await;

    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "child_streamer_process", "--nocapture", "--test-threads=1"])
        .env(ADDR_VAR, h.streamer_addr().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child streamer");
    let stdout = child.stdout.take().expect("stdout");
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).any(|line| line.contains("READY"))
    });
    assert!(tokio::time::timeout(WAIT, ready).await.expect("child ready in time").expect("join"));

    let mut players = Vec::new();
    for _ in 0..3 {
        let mut p = Client::player(&h).await;
        p.send(json!({"type": "subscribe", "streamerId": "K"})).await;
        p.expect_nothing_pending().await;
        players.push(p);
    }
    assert_eq!(h.snapshot().streamers[0].subscribers.len(), 3);

    // SIGKILL: no close frame, no goodbye; the kernel resets the socket.
    let killed = Instant::now();
    child.kill().expect("kill -9");
    let _ = child.wait();
    for p in &mut players {
        assert_eq!(p.recv().await, json!({"type": "streamerDisconnected"}));
        assert_eq!(p.expect_close(1000).await, "streamer disconnected");
    }
    let took = killed.elapsed();
    eprintln!("kill -9: players told after {took:?} (keepalive window {:?})", ping * 2);
    assert!(took < ping * 2, "players told after {took:?}");
    wait_until("registry empty", || h.connection_count() == 0).await;
    h.shutdown().await;
}

/// The other half of "kill -9": a streamer host that vanishes without a TCP
/// reset (power cut, network partition). Only the keepalive can notice it.
#[tokio::test]
async fn a_streamer_that_goes_silent_without_a_reset_is_noticed_by_the_keepalive() {
    use tokio::io::AsyncWriteExt;
    let ping = Duration::from_millis(400);
    let mut config = ServerConfig::ephemeral();
    config.ping_interval = Some(ping);
    let h = server(config).await;
    // A raw streamer: handshake, identify by a hand-written frame, then never
    // read or answer a ping again, keeping the socket open.
    let mut tcp = dead_player(h.streamer_addr()).await;
    tcp.write_all(&masked_text_frame(br#"{"type":"endpointId","id":"K"}"#)).await.expect("identify");
    wait_until("streamer listed", || h.snapshot().streamers.len() == 1).await;
    let mut p = Client::player(&h).await;
    p.send(json!({"type": "subscribe", "streamerId": "K"})).await;
    p.expect_nothing_pending().await;
    let started = Instant::now();
    assert_eq!(p.recv().await, json!({"type": "streamerDisconnected"}));
    let took = started.elapsed();
    p.expect_close(1000).await;
    eprintln!("silent streamer: players told after {took:?} (ping interval {ping:?})");
    assert!(took < ping * 2 + Duration::from_millis(300), "took {took:?}");
    drop(tcp);
    h.shutdown().await;
}
