//! Join throughput: C concurrent players, each repeating the join sequence
//! (connect → config → listStreamers → subscribe → offer → answer → 4 ICE
//! candidates each way → leave) for D seconds. Reports joins/s and the
//! server's CPU seconds per 1,000 joins (utime + stime from `/proc/<pid>/stat`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bench::client::{join, Streamer, CANDIDATES};
use crate::bench::target::{RunTargets, Target, TargetOpts};
use crate::bench::util::{cpu_secs, loopback_addr, percentile, raise_nofile, SourceIps};
use crate::bench::{fig, BenchReport, Goal};

#[derive(Debug, Clone, clap::Args)]
pub struct JoinsOpts {
    /// Players joining at the same time (each starts a new join as soon as its last one finished).
    #[arg(long, default_value_t = 1000)]
    pub concurrency: usize,
    /// Seconds of measurement per run.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Streamers the players are spread over (1 = every join goes through one streamer socket).
    #[arg(long, default_value_t = 1)]
    pub streamers: usize,
    /// Seconds one join may take before it counts as failed.
    #[arg(long, default_value_t = 10.0)]
    pub join_timeout: f64,
}

pub async fn run(target: &TargetOpts, o: &JoinsOpts, runs: usize, smoke: bool) -> anyhow::Result<BenchReport> {
    let conc = if smoke { o.concurrency.clamp(1, 20) } else { o.concurrency.clamp(1, 20_000) };
    let secs = if smoke { 1.0 } else { o.duration.clamp(0.5, 3600.0) };
    raise_nofile((conc as u64) * 2 + 4096);
    let mut per_run = Vec::new();
    let mut report = BenchReport::new("joins", "", smoke);
    let mut targets = RunTargets::new(target);
    for run in 0..runs {
        let t = targets.next().await?;
        report.server = t.label.clone();
        let has_pid = t.pid.is_some();
        let cluster = t.is_cluster();
        let r = one_run(
            t,
            conc,
            o.streamers.clamp(1, 64),
            secs,
            Duration::from_secs_f64(o.join_timeout.clamp(0.1, 120.0)),
            run,
        )
        .await;
        targets.end_run();
        let r = r?;
        eprintln!("joins run {}: {}", run + 1, r);
        let g = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let mut figs = vec![
            fig("joins per second", "joins/s", g("joins_per_sec"), Goal::AtLeast(5000.0)),
            fig("joins completed", "count", g("joins"), Goal::None),
            fig("joins failed", "count", g("failed"), Goal::None),
            fig("join time p50", "ms", g("join_ms_p50"), Goal::None),
            fig("join time p99", "ms", g("join_ms_p99"), Goal::None),
            fig("bench (client) CPU per 1,000 joins", "CPU-s", g("client_cpu_per_1000"), Goal::None),
            fig("streamer got answer+4 ICE for", "% of joins", g("streamer_complete_pct"), Goal::None),
        ];
        if has_pid {
            figs.insert(1, fig("server CPU per 1,000 joins", "CPU-s", g("server_cpu_per_1000"), Goal::AtMost(0.07)));
            figs.insert(2, fig("server CPU busy", "% of 1 core", g("server_cpu_pct"), Goal::None));
        }
        if cluster {
            figs.push(fig("Redis commands per join", "count", g("redis_cmds_per_join"), Goal::None));
            figs.push(fig("Redis bytes per join", "B", g("redis_bytes_per_join"), Goal::None));
        }
        per_run.push(figs);
        report.details.push(r);
    }
    report.runs = runs;
    report.figures_from_runs(&per_run);
    report.notes.push(format!(
        "concurrency {conc}, {secs} s per run, {} streamer(s); reference server (Node): 0.74 server CPU-s per 1,000 joins, ~1,400 joins/s (client-bound)",
        o.streamers.clamp(1, 64)
    ));
    report.notes.push(
        "the bench's own CPU per join is shown: on a small machine joins/s is bounded by client + server CPU together"
            .into(),
    );
    Ok(report)
}

async fn one_run(
    t: &Target,
    conc: usize,
    nstreamers: usize,
    secs: f64,
    join_timeout: Duration,
    run: usize,
) -> anyhow::Result<serde_json::Value> {
    let addr = loopback_addr(&t.player_url)?;
    let cancel = CancellationToken::new();
    let mut streamers = Vec::new();
    for i in 0..nstreamers {
        streamers.push(Streamer::start(&t.streamer_url, &format!("BenchStreamer{run}x{i}"), cancel.clone()).await?);
    }
    let ids: Arc<Vec<String>> = Arc::new(streamers.iter().map(|s| s.id.clone()).collect());
    for id in ids.iter() {
        crate::bench::client::wait_listed(&t.player_url, id, Duration::from_secs(10)).await?;
    }
    let answer = Arc::new(mock_player::canned::answer_sdp(&mock_streamer::canned::canned_offer()));
    // Expected sockets: ~ joins/s x TIME_WAIT (60 s) per source address pool.
    let ips = SourceIps::fixed(64);
    let joins = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let times: Arc<Mutex<Vec<f64>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs_f64(secs);
    let mut set = JoinSet::new();
    let me = std::process::id();
    // Workers start ramping in immediately; measurement covers [start, end].
    for w in 0..conc {
        let (url, ids, answer, ips) = (t.player_url.clone(), ids.clone(), answer.clone(), ips.clone());
        let (joins, failed, times, errors, cancel) =
            (joins.clone(), failed.clone(), times.clone(), errors.clone(), cancel.clone());
        set.spawn(async move {
            let mut local = Vec::new();
            // Bounded: at most 10 million joins per worker, and by time.
            for k in 0..10_000_000usize {
                let now = Instant::now();
                if now >= end || cancel.is_cancelled() {
                    break;
                }
                let sid = &ids[(w + k) % ids.len()];
                let src = ips.get(w + k * conc);
                let res = join(&url, addr, Some(src), sid, &answer, join_timeout).await;
                let done = Instant::now();
                match res {
                    Ok((mut ws, timing)) => {
                        if done >= start && done <= end {
                            joins.fetch_add(1, Ordering::Relaxed);
                            local.push(timing.total_ms);
                        }
                        // Leave: a close frame, then drop the socket.
                        let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
                    }
                    Err(e) => {
                        if done >= start && done <= end {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Ok(mut v) = errors.lock() {
                            if v.len() < 5 {
                                v.push(format!("{e:#}"));
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            if let Ok(mut v) = times.lock() {
                v.extend(local);
            }
        });
    }
    tokio::time::sleep_until(start.into()).await;
    let server0 = t.cpu_secs();
    let redis0 = t.redis_counters().await;
    let me0 = cpu_secs(me);
    let j0 = joins.load(Ordering::Relaxed);
    tokio::time::sleep_until(end.into()).await;
    let server1 = t.cpu_secs();
    let redis1 = t.redis_counters().await;
    let me1 = cpu_secs(me);
    let n = joins.load(Ordering::Relaxed) - j0;
    let bad = failed.load(Ordering::Relaxed);
    let drain =
        tokio::time::timeout(join_timeout + Duration::from_secs(5), async { while set.join_next().await.is_some() {} });
    if drain.await.is_err() {
        set.abort_all();
    }
    // Let the streamers see the last answers and disconnects.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut answers, mut cands, mut connected) = (0u64, 0u64, 0u64);
    for s in &streamers {
        answers += s.counters.answers.load(Ordering::Relaxed);
        cands += s.counters.candidates.load(Ordering::Relaxed);
        connected += s.counters.player_connected.load(Ordering::Relaxed);
    }
    cancel.cancel();
    for s in streamers {
        s.stop().await;
    }
    if n == 0 {
        let errs = errors.lock().map(|v| v.join("; ")).unwrap_or_default();
        bail!("no join completed in {secs} s ({bad} failed: {errs})");
    }
    let mut times = times.lock().map(|v| v.clone()).unwrap_or_default();
    times.sort_by(|a, b| a.total_cmp(b));
    let wall = secs;
    let server_cpu = match (server0, server1) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    let client_cpu = match (me0, me1) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    // Includes the heartbeats of the window (a few per second per node).
    let redis = match (redis0, redis1) {
        (Some(a), Some(b)) => b.per(&a, n as f64),
        _ => (f64::NAN, f64::NAN, serde_json::Value::Null),
    };
    let complete = (answers.min(cands / CANDIDATES as u64)) as f64 / connected.max(1) as f64 * 100.0;
    let errors = errors.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(json!({
        "concurrency": conc, "secs": wall, "streamers": nstreamers,
        "joins": n, "failed": bad, "joins_per_sec": n as f64 / wall,
        "server_cpu_secs": server_cpu, "server_cpu_per_1000": server_cpu / n as f64 * 1000.0,
        "server_cpu_pct": server_cpu / wall * 100.0,
        "client_cpu_secs": client_cpu, "client_cpu_per_1000": client_cpu / n as f64 * 1000.0,
        "join_ms_p50": percentile(&times, 50.0), "join_ms_p99": percentile(&times, 99.0),
        "streamer_player_connected": connected, "streamer_answers": answers, "streamer_candidates": cands,
        "streamer_complete_pct": complete, "errors": errors,
        "redis_cmds_per_join": redis.0, "redis_bytes_per_join": redis.1, "redis_calls_per_join": redis.2,
    }))
}
