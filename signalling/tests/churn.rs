//! Issue 7, churn: 10,000 join/subscribe/leave cycles over real sockets leave
//! nothing behind: no registry entry, no connection task, no memory growth.
//!
//! Own test binary, so no other test's sockets or memory share the process.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use signalling::ServerConfig;
use tokio_tungstenite::tungstenite::Message;

const CYCLES: usize = 10_000;
const WARMUP: usize = 1_000;
const WORKERS: usize = 50;

/// One player: connect, read the greeting, subscribe, prove the subscription
/// was routed (ping barrier), leave with a close handshake.
async fn cycle(addr: std::net::SocketAddr) {
    let mut p = Client::connect(addr, "churn").await;
    p.expect_type("config").await;
    p.expect_type("playerCount").await;
    p.send(json!({"type": "subscribe", "streamerId": "S"})).await;
    p.expect_nothing_pending().await;
    let _ = p.ws.close(None).await;
    while let Some(Ok(_)) = p.ws.next().await {}
}

async fn run_cycles(addr: std::net::SocketAddr, total: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    cycle(addr).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_join_subscribe_leave_cycles_leave_nothing_behind() {
    let mut config = ServerConfig::ephemeral();
    config.rate_limit_per_sec = 0;
    let h = server(config).await;
    let listeners = h.live_tasks();
    assert_eq!(listeners, 3);
    let (mut s, _) = Client::streamer(&h, "S").await;
    // The streamer reads everything it is told, counting joins and leaves.
    let (joined, left) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (j, l) = (joined.clone(), left.clone());
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = s.ws.next().await {
            if let Message::Text(t) = msg {
                if t.contains("\"playerConnected\"") {
                    j.fetch_add(1, Ordering::Relaxed);
                } else if t.contains("\"playerDisconnected\"") {
                    l.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        s
    });

    // Warm up at the same concurrency, so allocator arenas and buffers reach
    // their working size before the baseline.
    run_cycles(h.player_addr(), WARMUP).await;
    wait_until("warm-up players gone", || h.connection_count() == 1).await;
    let rss_before = rss_bytes();
    let started = Instant::now();
    run_cycles(h.player_addr(), CYCLES).await;
    let took = started.elapsed();
    wait_until("every player forgotten", || h.connection_count() == 1).await;
    wait_until("streamer told of every leave", || left.load(Ordering::Relaxed) == WARMUP + CYCLES).await;
    assert_eq!(joined.load(Ordering::Relaxed), WARMUP + CYCLES);
    // Listeners plus the streamer's connection task; nothing per player.
    wait_until("player tasks ended", || h.live_tasks() == listeners + 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = rss_bytes();

    // Dropping the streamer's socket ends the last connection.
    reader.abort();
    let _ = reader.await;
    wait_until("registry empty", || h.connection_count() == 0).await;
    wait_until("only the listeners are left", || h.live_tasks() == listeners).await;
    let snapshot = h.snapshot();
    assert!(snapshot.players.is_empty() && snapshot.streamers.is_empty());

    let growth = rss_after as i64 - rss_before as i64;
    eprintln!(
        "churn: {CYCLES} cycles in {took:?} ({:.0}/s); RSS before {:.1} MiB, after {:.1} MiB, growth {:+.1} KiB \
         ({:+.1} bytes per cycle)",
        CYCLES as f64 / took.as_secs_f64(),
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        growth as f64 / 1024.0,
        growth as f64 / CYCLES as f64,
    );
    // Clients and server share this process. A leak of even one 4 KiB read
    // buffer per connection would be 40 MiB. What remains is allocator
    // fragmentation and structures grown to their peak (tokio's I/O slab,
    // hash map capacity): measured +2.6 MiB after 10,000 cycles, and a
    // further 10,000 cycles did not grow it (15.7 → 15.5 MiB), so it is a
    // plateau, not a per-connection leak.
    assert!(growth < 8 << 20, "RSS grew by {} KiB over {CYCLES} cycles", growth / 1024);
    assert!(took < Duration::from_secs(60), "churn took {took:?}");
    h.shutdown().await;
}
