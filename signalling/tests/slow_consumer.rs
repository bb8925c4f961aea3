//! A player that stops reading is closed when its queue fills; nobody else waits.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use signalling::{ServerConfig, ServerHandle};
use tokio::io::AsyncWriteExt;

/// A server with `send_queue_len` and no rate limit, streamer `S`, and a
/// subscribed player that never reads its socket (kept open by the caller).
async fn with_stuck_player(send_queue_len: usize) -> (ServerHandle, Client, String, tokio::net::TcpStream, String) {
    let mut config = ServerConfig::ephemeral();
    config.send_queue_len = send_queue_len;
    config.rate_limit_per_sec = 0;
    let h = server(config).await;
    let (mut s, id) = Client::streamer(&h, "S").await;
    let mut stuck = dead_player(h.player_addr()).await;
    stuck.write_all(&masked_text_frame(br#"{"type":"subscribe","streamerId":"S"}"#)).await.unwrap();
    let stuck_id = s.expect_type("playerConnected").await["playerId"].as_str().unwrap().to_string();
    (h, s, id, stuck, stuck_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_that_never_reads_is_closed_and_others_keep_flowing() {
    let (h, mut s, id, _stuck, stuck_id) = with_stuck_player(32).await;
    let (mut good, good_id) = Client::subscribed_player(&h, &mut s, &id).await;

    // Megabytes towards the stuck player, interleaved with small messages to
    // the good one, whose delivery must stay prompt.
    let big_sdp = "a".repeat(64 * 1024);
    let mut worst = Duration::ZERO;
    let mut disconnected = false;
    for i in 0..200 {
        s.send(json!({"type": "offer", "sdp": big_sdp, "playerId": stuck_id})).await;
        let sent = Instant::now();
        s.send(json!({"type": "offer", "sdp": format!("small-{i}"), "playerId": good_id})).await;
        assert_eq!(good.recv().await["sdp"], format!("small-{i}"));
        worst = worst.max(sent.elapsed());
        if h.snapshot().players.iter().all(|p| p.player_id != stuck_id) {
            disconnected = true;
            break;
        }
    }
    assert!(disconnected, "the stuck player was never closed");
    assert_eq!(s.recv().await, json!({"type": "playerDisconnected", "playerId": stuck_id}));
    // Generous bound for a noisy 2-core machine; the point is "not blocked".
    assert!(worst < Duration::from_millis(500), "good player waited {worst:?}");
    h.shutdown().await;
}

/// Percentile of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_one_player_is_stuck_the_others_forwarding_latency_stays_low() {
    let (h, mut s, id, _stuck, stuck_id) = with_stuck_player(64).await;
    let mut good = Vec::new();
    for _ in 0..5 {
        good.push(Client::subscribed_player(&h, &mut s, &id).await);
    }

    // 256 KiB towards the stuck player, then one small frame to each good
    // player, round after round: the stuck player's socket buffers fill, then
    // its queue, and it is closed, while the others are timed throughout.
    let big_sdp = "a".repeat(256 * 1024);
    let mut latencies = Vec::new();
    let mut closed_after = None;
    for round in 0..400 {
        s.send(json!({"type": "offer", "sdp": big_sdp, "playerId": stuck_id})).await;
        let sent = Instant::now();
        for (_, pid) in &good {
            s.send(json!({"type": "offer", "sdp": format!("r{round}"), "playerId": pid})).await;
        }
        for (p, _) in &mut good {
            assert_eq!(p.recv().await["sdp"], format!("r{round}"));
            latencies.push(sent.elapsed());
        }
        if closed_after.is_none() && h.snapshot().players.iter().all(|p| p.player_id != stuck_id) {
            closed_after = Some(round);
        }
        if closed_after.is_some_and(|r| round >= r + 20) {
            break;
        }
    }
    let closed_after = closed_after.expect("the stuck player was never closed");
    assert_eq!(s.recv().await, json!({"type": "playerDisconnected", "playerId": stuck_id}));
    latencies.sort();
    let (p50, p99, max) = (pct(&latencies, 0.5), pct(&latencies, 0.99), latencies[latencies.len() - 1]);
    let server_p99 = h.metrics().forward_latency.quantile_upper_bound(0.99);
    eprintln!(
        "slow consumer: closed after {closed_after} rounds (~{} MiB sent to it); others' end-to-end latency over \
         {} messages: p50 {p50:?}, p99 {p99:?}, max {max:?}; server forwarding p99 <= {server_p99:?}",
        closed_after / 4,
        latencies.len()
    );
    // Generous bounds for a noisy 2-core machine; the point is "not blocked".
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    assert!(max < Duration::from_millis(500), "max {max:?}");
    assert_eq!(h.metrics().close_count(1008), 1);
    h.shutdown().await;
}
