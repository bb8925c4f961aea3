//! Idle connections: open N player WebSockets, let them sit, and read the
//! server's resident memory per connection from `/proc/<pid>/status`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bench::client::{connect, next_json};
use crate::bench::target::{RunTargets, Target, TargetOpts};
use crate::bench::util::{loopback_addr, raise_nofile, rss_kib, SourceIps};
use crate::bench::{fig, BenchReport, Goal};

#[derive(Debug, Clone, clap::Args)]
pub struct IdleOpts {
    /// Player connections to open (up to 50,000 and more: spread over 127.0.0.2, 127.0.0.3, …).
    #[arg(long, default_value_t = 5000)]
    pub connections: usize,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 256)]
    pub parallel: usize,
    /// Seconds to let the server settle after the last connect before reading its memory.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
}

pub async fn run(target: &TargetOpts, o: &IdleOpts, runs: usize, smoke: bool) -> anyhow::Result<BenchReport> {
    let n = if smoke { o.connections.min(200) } else { o.connections };
    let settle = Duration::from_secs_f64(if smoke { 0.3 } else { o.settle.clamp(0.0, 60.0) });
    let limit = raise_nofile(n as u64 + 4096);
    if limit < n as u64 + 100 {
        bail!("RLIMIT_NOFILE is {limit}: too low for {n} connections (run as root or raise `ulimit -Hn`)");
    }
    let mut per_run = Vec::new();
    let mut report = BenchReport::new("idle", "", smoke);
    let mut targets = RunTargets::new(target);
    for run in 0..runs {
        let t = targets.next().await?;
        report.server = t.label.clone();
        let r = one_run(t, n, o.parallel.clamp(1, 10_000), settle).await;
        targets.end_run();
        let r = r?;
        eprintln!("idle run {}: {}", run + 1, r);
        let per_conn = r["kib_per_connection"].as_f64().unwrap_or(f64::NAN);
        let conns = r["connected"].as_f64().unwrap_or(f64::NAN);
        per_run.push(vec![
            fig("connections open", "count", conns, Goal::None),
            // The target is 8 KB: 8,000 bytes.
            fig("server RSS per idle connection", "KiB", per_conn, Goal::AtMost(8000.0 / 1024.0)),
            fig("server RSS before", "MiB", r["rss_before_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0, Goal::None),
            fig(
                "server RSS with connections",
                "MiB",
                r["rss_after_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
                Goal::None,
            ),
            fig("connect rate", "conn/s", r["connects_per_sec"].as_f64().unwrap_or(f64::NAN), Goal::None),
        ]);
        report.details.push(r);
    }
    report.runs = runs;
    report.figures_from_runs(&per_run);
    report.notes.push(format!(
        "reference server (Node) measured 18.6 KiB per idle connection at 5,000 connections; this bench's RLIMIT_NOFILE {limit} (inherited by a server it starts; start another server with `ulimit -n` high enough)"
    ));
    Ok(report)
}

async fn one_run(t: &Target, n: usize, parallel: usize, settle: Duration) -> anyhow::Result<serde_json::Value> {
    let Some(pid) = t.pid else { bail!("the idle bench needs the server's pid (--server-pid) to read its memory") };
    let addr = loopback_addr(&t.player_url)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid).context("reading the server's RSS")?;
    let ips = SourceIps::for_sockets(n);
    let cancel = CancellationToken::new();
    let connected = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(parallel));
    let mut set = JoinSet::new();
    let t0 = Instant::now();
    let connect_deadline = t0 + Duration::from_secs(120 + n as u64 / 200);
    for i in 0..n {
        if Instant::now() > connect_deadline {
            break;
        }
        let permit = gate.clone().acquire_owned().await?;
        let (url, c, ok, bad, src) =
            (t.player_url.clone(), cancel.clone(), connected.clone(), failed.clone(), ips.get(i));
        set.spawn(async move {
            let ws = tokio::time::timeout(Duration::from_secs(20), async {
                let mut ws = connect(&url, addr, Some(src)).await?;
                // Connected once the server greeted us (config).
                let first = tokio::time::timeout(Duration::from_secs(10), next_json(&mut ws)).await??;
                anyhow::ensure!(first.is_some(), "closed before config");
                anyhow::Ok(ws)
            })
            .await;
            drop(permit);
            let mut ws = match ws {
                Ok(Ok(ws)) => ws,
                _ => {
                    bad.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            ok.fetch_add(1, Ordering::Relaxed);
            // Idle: read (and drop) whatever the server sends until told to stop.
            for _ in 0..1_000_000 {
                tokio::select! {
                    _ = c.cancelled() => break,
                    m = next_json(&mut ws) => if !matches!(m, Ok(Some(_))) { break },
                }
            }
            drop(ws);
        });
        // Reap nothing here: tasks live until cancel.
    }
    // Wait for the last connects to finish.
    let wait_until = Instant::now() + Duration::from_secs(30);
    while connected.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let after = rss_kib(pid).context("reading the server's RSS")?;
    let ok = connected.load(Ordering::Relaxed);
    let bad = failed.load(Ordering::Relaxed);
    cancel.cancel();
    let drain = tokio::time::timeout(Duration::from_secs(30), async { while set.join_next().await.is_some() {} }).await;
    if drain.is_err() {
        set.abort_all();
    }
    if ok == 0 {
        bail!("no connection opened ({bad} failed)");
    }
    let per = after.saturating_sub(before) as f64 / ok as f64;
    Ok(json!({
        "connections": n, "connected": ok, "failed": bad, "source_ips": (n / 4_000 + 2).min(250),
        "rss_before_kib": before, "rss_after_kib": after, "kib_per_connection": per,
        "connect_secs": connect_secs, "connects_per_sec": ok as f64 / connect_secs.max(1e-9),
    }))
}
