//! Forwarding latency: P players joined to one streamer; the streamer sends
//! `iceCandidate` messages addressed to them round-robin at a fixed offered
//! rate, each carrying its send time (an extra field: the protocol keeps
//! unknown fields); each player records receive time − send time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_util::sync::CancellationToken;

use crate::bench::client::{join, msg_type, next_json, Streamer};
use crate::bench::target::{RunTargets, Target, TargetOpts};
use crate::bench::util::{loopback_addr, percentile, raise_nofile, SourceIps};
use crate::bench::{fig, BenchReport, Goal};

#[derive(Debug, Clone, clap::Args)]
pub struct LatencyOpts {
    /// Connected players the messages are spread over.
    #[arg(long, default_value_t = 1000)]
    pub players: usize,
    /// Offered rates, messages per second (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1000u64, 10_000, 50_000])]
    pub rates: Vec<u64>,
    /// Seconds of sending per rate.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
}

pub async fn run(target: &TargetOpts, o: &LatencyOpts, runs: usize, smoke: bool) -> anyhow::Result<BenchReport> {
    let players = if smoke { o.players.clamp(1, 20) } else { o.players.clamp(1, 50_000) };
    let secs = if smoke { 0.3 } else { o.duration.clamp(0.2, 600.0) };
    let rates: Vec<u64> = if smoke { vec![1000] } else { o.rates.iter().map(|r| (*r).clamp(1, 1_000_000)).collect() };
    if rates.is_empty() {
        bail!("--rates is empty");
    }
    raise_nofile(players as u64 + 4096);
    let mut per_run = Vec::new();
    let mut report = BenchReport::new("latency", "", smoke);
    let mut targets = RunTargets::new(target);
    for run in 0..runs {
        let t = targets.next().await?;
        report.server = t.label.clone();
        let has_pid = t.pid.is_some();
        let cluster = t.is_cluster();
        let r = one_run(t, players, &rates, secs, run).await;
        targets.end_run();
        let r = r?;
        let mut figs = Vec::new();
        for (rate, v) in rates.iter().zip(r.as_array().into_iter().flatten()) {
            eprintln!("latency run {} at {rate}/s: {v}", run + 1);
            let g = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let goal = if *rate == 10_000 { Goal::AtMost(2.0) } else { Goal::None };
            figs.push(fig(&format!("{rate}/s p50"), "ms", g("p50_ms"), Goal::None));
            figs.push(fig(&format!("{rate}/s p99"), "ms", g("p99_ms"), goal));
            figs.push(fig(&format!("{rate}/s max"), "ms", g("max_ms"), Goal::None));
            figs.push(fig(&format!("{rate}/s delivered"), "%", g("delivered_pct"), Goal::None));
            figs.push(fig(&format!("{rate}/s achieved send rate"), "msg/s", g("sent_per_sec"), Goal::None));
            if has_pid {
                figs.push(fig(&format!("{rate}/s server CPU"), "% of 1 core", g("server_cpu_pct"), Goal::None));
            }
            if cluster {
                figs.push(fig(
                    &format!("{rate}/s Redis commands per message"),
                    "count",
                    g("redis_cmds_per_msg"),
                    Goal::None,
                ));
                figs.push(fig(&format!("{rate}/s Redis bytes per message"), "B", g("redis_bytes_per_msg"), Goal::None));
            }
        }
        per_run.push(figs);
        report.details.push(r);
    }
    report.runs = runs;
    report.figures_from_runs(&per_run);
    report.notes.push(format!(
        "{players} connected players, {secs} s per rate; the time includes the bench's own send and receive scheduling (same machine), so it is an upper bound on the server's part"
    ));
    Ok(report)
}

async fn one_run(t: &Target, players: usize, rates: &[u64], secs: f64, run: usize) -> anyhow::Result<Value> {
    let addr = loopback_addr(&t.player_url)?;
    let cancel = CancellationToken::new();
    let mut streamer = Streamer::start(&t.streamer_url, &format!("LatencyStreamer{run}"), cancel.clone()).await?;
    crate::bench::client::wait_listed(&t.player_url, &streamer.id, Duration::from_secs(10)).await?;
    let answer = Arc::new(mock_player::canned::answer_sdp(&mock_streamer::canned::canned_offer()));
    let origin = Instant::now();
    let ips = SourceIps::for_sockets(players);
    // Latencies in microseconds, per rate index (the phase is read from a shared counter).
    let phase = Arc::new(AtomicU64::new(u64::MAX));
    let samples: Arc<Mutex<Vec<Vec<f64>>>> = Arc::new(Mutex::new(vec![Vec::new(); rates.len()]));
    // Messages arrived so far, per rate index (to wait for a server that lags behind).
    let arrived: Arc<Vec<AtomicU64>> = Arc::new(rates.iter().map(|_| AtomicU64::new(0)).collect());
    let joined = Arc::new(AtomicU64::new(0));
    let attempted = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(200));
    let mut set = JoinSet::new();
    for i in 0..players {
        let (url, sid, answer, src) = (t.player_url.clone(), streamer.id.clone(), answer.clone(), ips.get(i));
        let (phase, samples, arrived, joined, attempted, cancel, gate) = (
            phase.clone(),
            samples.clone(),
            arrived.clone(),
            joined.clone(),
            attempted.clone(),
            cancel.clone(),
            gate.clone(),
        );
        let nrates = rates.len();
        set.spawn(async move {
            let permit = gate.acquire_owned().await;
            let joined_ws = join(&url, addr, Some(src), &sid, &answer, Duration::from_secs(20)).await;
            attempted.fetch_add(1, Ordering::Relaxed);
            let Ok((mut ws, _)) = joined_ws else {
                return;
            };
            drop(permit);
            joined.fetch_add(1, Ordering::Relaxed);
            let mut local: Vec<Vec<f64>> = vec![Vec::new(); nrates];
            for _ in 0..100_000_000u64 {
                let v = tokio::select! {
                    _ = cancel.cancelled() => break,
                    v = next_json(&mut ws) => match v { Ok(Some(v)) => v, _ => break },
                };
                if msg_type(&v) != "iceCandidate" {
                    continue;
                }
                let Some(sent) = v.get("benchT").and_then(Value::as_u64) else { continue };
                let now = origin.elapsed().as_micros() as u64;
                let p = phase.load(Ordering::Relaxed) as usize;
                if let Some(bucket) = local.get_mut(p) {
                    bucket.push(now.saturating_sub(sent) as f64 / 1000.0);
                    arrived[p].fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Ok(mut s) = samples.lock() {
                for (k, v) in local.into_iter().enumerate() {
                    s[k].extend(v);
                }
            }
        });
    }
    // Player ids as the streamer learnt them.
    let wait_until = Instant::now() + Duration::from_secs(60);
    let mut ids = Vec::with_capacity(players);
    while ids.len() < players && Instant::now() < wait_until {
        match tokio::time::timeout(Duration::from_millis(200), streamer.players.recv()).await {
            Ok(Some(id)) => ids.push(id),
            Ok(None) => break,
            Err(_) => {
                let all_tried = attempted.load(Ordering::Relaxed) as usize >= players;
                if all_tried && ids.len() >= joined.load(Ordering::Relaxed) as usize {
                    break;
                }
            }
        }
    }
    // Wait for the joins themselves (the streamer's offer and candidates reach the players).
    while (joined.load(Ordering::Relaxed) as usize) < ids.len() && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if ids.is_empty() {
        cancel.cancel();
        bail!("no player joined");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut results = Vec::new();
    for (k, &rate) in rates.iter().enumerate() {
        phase.store(k as u64, Ordering::Relaxed);
        let cpu0 = t.cpu_secs();
        let redis0 = t.redis_counters().await;
        let t0 = Instant::now();
        let total = (rate as f64 * secs).round() as u64;
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while sent < total && t0.elapsed() < Duration::from_secs_f64(secs * 3.0 + 1.0) {
            tick.tick().await;
            let due = ((t0.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
            while sent < due {
                let to = &ids[(sent as usize) % ids.len()];
                let now = origin.elapsed().as_micros() as u64;
                let m = json!({"type": "iceCandidate", "playerId": to, "benchT": now,
                    "candidate": {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}});
                if streamer.out.send(Ws::text(m.to_string())).is_err() {
                    break;
                }
                sent += 1;
            }
        }
        let send_secs = t0.elapsed().as_secs_f64();
        // Let the last messages arrive: at least 500 ms, and until all of them did (at most 10 s;
        // a server that lags behind would otherwise have its slowest messages left out).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let drain_until = Instant::now() + Duration::from_secs(10);
        while arrived[k].load(Ordering::Relaxed) < sent && Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let cpu1 = t.cpu_secs();
        let redis1 = t.redis_counters().await;
        let cpu = match (cpu0, cpu1) {
            (Some(a), Some(b)) => (b - a) / t0.elapsed().as_secs_f64() * 100.0,
            _ => f64::NAN,
        };
        // Includes the heartbeats of the window (a few per second per node).
        let redis = match (redis0, redis1) {
            (Some(a), Some(b)) => b.per(&a, sent as f64),
            _ => (f64::NAN, f64::NAN, Value::Null),
        };
        results.push((rate, sent, send_secs, cpu, redis));
    }
    phase.store(u64::MAX, Ordering::Relaxed);
    cancel.cancel();
    let drain = tokio::time::timeout(Duration::from_secs(10), async { while set.join_next().await.is_some() {} });
    if drain.await.is_err() {
        set.abort_all();
    }
    streamer.stop().await;
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for ((rate, sent, send_secs, cpu, redis), mut v) in results.into_iter().zip(samples) {
        v.sort_by(|a, b| a.total_cmp(b));
        out.push(json!({
            "rate": rate, "players": ids.len(), "sent": sent, "received": v.len(),
            "sent_per_sec": sent as f64 / send_secs.max(1e-9),
            "delivered_pct": v.len() as f64 / sent.max(1) as f64 * 100.0,
            "p50_ms": percentile(&v, 50.0), "p99_ms": percentile(&v, 99.0), "max_ms": v.last().copied().unwrap_or(f64::NAN),
            "server_cpu_pct": cpu,
            "redis_cmds_per_msg": redis.0, "redis_bytes_per_msg": redis.1, "redis_calls_per_msg": redis.2,
        }));
    }
    Ok(Value::Array(out))
}
