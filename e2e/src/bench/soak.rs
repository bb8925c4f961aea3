//! Soak: the whole local stack left running with players churning, as a harness left on for
//! days or a staging streamer serving test after test. Our server, a mock streamer, an SFU
//! forwarding it, and one mock-player process whose players join, stream and leave in rounds
//! (half directly, half through the SFU), each in a process of its own, for `--duration`
//! seconds. Every process's RSS, descriptors, threads and UDP sockets are read every
//! `--every` seconds; the report gives each after the warm-up and at the end, and the RSS
//! slope per hour over the part after the warm-up; for the streamer and the SFU also their
//! live heap ([`HeapProbe`]), which tells a leak from memory the allocator keeps.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::bench::churn::{growth_mb_per_1000, heap_growth_mb_per_1000, PeerReading};
use crate::bench::process::{spawn_self_piped, start_sfu, start_streamer, HeapProbe, Kids, Picture};
use crate::bench::target::{Target, TargetOpts};
use crate::bench::{fig, BenchReport, Goal};

#[derive(Debug, Clone, clap::Args)]
pub struct SoakOpts {
    /// Seconds the stack runs (3600: the one-hour soak).
    #[arg(long, default_value_t = 3600.0)]
    pub duration: f64,
    /// Seconds excluded at the start (allocators and caches settle).
    #[arg(long, default_value_t = 120.0)]
    pub warmup: f64,
    /// Seconds between readings.
    #[arg(long, default_value_t = 10.0)]
    pub every: f64,
    /// Players per round, for each of the two paths (direct, through the SFU).
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Seconds each player stays.
    #[arg(long, default_value_t = 3.0)]
    pub stay: f64,
}

const PROCESSES: [&str; 5] = ["signalling", "streamer", "sfu", "players (direct)", "players (SFU)"];

pub async fn run(target: &TargetOpts, o: &SoakOpts, smoke: bool) -> anyhow::Result<BenchReport> {
    let o = if smoke { SoakOpts { duration: 4.0, warmup: 1.0, every: 1.0, batch: 3, stay: 0.5 } } else { o.clone() };
    let mut report = BenchReport::new("soak", "", smoke);
    let t = Target::start(target).await?;
    report.server = t.label.clone();
    let server_pid = t.pid.context("the soak needs our server's pid (it reads /proc)")?;
    let s = |v: &str| v.to_string();
    let mut kids = Kids(Vec::new());
    let picture = Picture { width: 320, height: 240, fps: 30, bitrate: 300_000 };
    start_streamer(&mut kids, &t, "SoakStreamer", picture).await?;
    start_sfu(&mut kids, &t, "SoakSFU", "SoakStreamer").await?;
    // Indexed like PROCESSES: the server is not a child and answers no probe.
    let mut probes: Vec<Option<HeapProbe>> =
        std::iter::once(None).chain(kids.0.iter_mut().map(HeapProbe::take)).collect();
    // The player processes run rounds until stopped (`--cycles` beyond any soak); each says
    // `JOINS <n>` after every round.
    let joins: Vec<std::sync::Arc<std::sync::atomic::AtomicUsize>> = (0..2).map(|_| Default::default()).collect();
    for (watch, joined) in ["SoakStreamer", "SoakSFU"].into_iter().zip(joins.iter().cloned()) {
        let mut child = spawn_self_piped(&[
            s("child-player-churn"),
            s("--url"),
            t.player_url.clone(),
            s("--streamer"),
            s(watch),
            s("--batch"),
            o.batch.max(1).to_string(),
            s("--stay"),
            o.stay.to_string(),
            s("--warmup"),
            s("0"),
            s("--cycles"),
            s("100000000"),
        ])?;
        // Let it past its (empty) warm-up pause at once; its lines are not needed.
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            writeln!(stdin).context("starting the player process")?;
            std::mem::forget(stdin);
        }
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(n) = line.strip_prefix("JOINS ").and_then(|r| r.split_whitespace().next()?.parse().ok())
                    {
                        joined.store(n, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
        kids.0.push(child);
    }
    let pids: Vec<u32> = std::iter::once(server_pid).chain(kids.0.iter().map(|c| c.id())).collect();
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(o.duration.max(1.0));
    let warm = Duration::from_secs_f64(o.warmup.clamp(0.0, o.duration));
    // Per process: readings after the warm-up, `joins` standing in for seconds since start.
    let mut series: Vec<Vec<PeerReading>> = vec![Vec::new(); pids.len()];
    let mut shown = Instant::now();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs_f64(o.every.clamp(0.2, 600.0))).await;
        let secs = started.elapsed().as_secs() as usize;
        for (i, pid) in pids.iter().enumerate() {
            let probe = probes.get_mut(i).and_then(Option::as_mut);
            let reading = PeerReading::read(*pid, secs)
                .with_context(|| format!("{} (pid {pid}) has gone after {secs} s", PROCESSES[i]))?
                .with_heap(probe);
            if started.elapsed() >= warm {
                series[i].push(reading);
            }
        }
        if shown.elapsed() > Duration::from_secs(60) || smoke {
            let rss: Vec<String> = series
                .iter()
                .zip(PROCESSES)
                .filter_map(|(s, name)| {
                    let r = s.last()?;
                    let heap = r.heap_in_use_kib.map(|h| format!(" (live heap {:.1})", h as f64 / 1024.0));
                    Some(format!("{name} {:.1} MB{}", r.rss_kib as f64 / 1024.0, heap.unwrap_or_default()))
                })
                .collect();
            eprintln!("soak: {secs}/{} s, RSS: {}", o.duration, rss.join(", "));
            shown = Instant::now();
        }
    }
    let total: Vec<usize> = joins.iter().map(|j| j.load(std::sync::atomic::Ordering::Relaxed)).collect();
    drop(kids);
    drop(t);
    let mut figs = vec![
        fig("joins, directly", "count", total[0] as f64, Goal::None),
        fig("joins, through the SFU", "count", total[1] as f64, Goal::None),
    ];
    for (i, name) in PROCESSES.iter().enumerate() {
        let (Some(first), Some(last)) = (series[i].first().copied(), series[i].last().copied()) else {
            continue;
        };
        // The slope per 1,000 "joins" is per 1,000 s here: scale to an hour.
        let per_hour = growth_mb_per_1000(&series[i]) * 3.6;
        figs.push(fig(&format!("{name} RSS after warm-up"), "MB", first.rss_kib as f64 / 1024.0, Goal::None));
        figs.push(fig(&format!("{name} RSS at the end"), "MB", last.rss_kib as f64 / 1024.0, Goal::None));
        figs.push(fig(&format!("{name} RSS growth per hour"), "MB", per_hour, Goal::None));
        if let (Some(h0), Some(h1)) = (first.heap_in_use_kib, last.heap_in_use_kib) {
            figs.push(fig(&format!("{name} live heap after warm-up"), "MB", h0 as f64 / 1024.0, Goal::None));
            figs.push(fig(&format!("{name} live heap at the end"), "MB", h1 as f64 / 1024.0, Goal::None));
            let heap_per_hour = heap_growth_mb_per_1000(&series[i]) * 3.6;
            figs.push(fig(&format!("{name} live heap growth per hour"), "MB", heap_per_hour, Goal::None));
        }
        figs.push(fig(&format!("{name} fds after warm-up"), "", first.fds as f64, Goal::None));
        figs.push(fig(&format!("{name} fds growth"), "", last.fds as f64 - first.fds as f64, Goal::None));
        figs.push(fig(
            &format!("{name} UDP sockets growth"),
            "",
            last.udp_sockets as f64 - first.udp_sockets as f64,
            Goal::None,
        ));
        figs.push(fig(&format!("{name} threads growth"), "", last.threads as f64 - first.threads as f64, Goal::None));
    }
    report.runs = 1;
    report.figures_from_runs(&[figs]);
    report.details.push(json!({ "processes": PROCESSES, "series": series }));
    report.notes.push(format!(
        "{} s with players churning: rounds of {} players staying {} s, directly and through the SFU, in two player processes; readings every {} s, the first {} s excluded; fds and sockets at the end are read while players are still joining (a round in flight), so a small difference is expected",
        o.duration, o.batch, o.stay, o.every, o.warmup
    ));
    Ok(report)
}
