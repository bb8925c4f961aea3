//! Churn: does a long-lived peer give back what each player took? A mock streamer (or an SFU
//! with a streamer behind it, or one mock-player process joining again and again) runs in a
//! process of its own; rounds of players join it, stream
//! for a moment and leave, first `--warmup` joins, then `--cycles` more. The peer's resident
//! memory, open descriptors, threads and UDP sockets are read from `/proc` after the warm-up
//! and at the end (each after the peer has settled), and between rounds (the round's
//! connections closed) for the growth per 1,000 joins (a least-squares slope over the measured
//! part). The streamer and the SFU
//! also report their allocator's figures with every reading ([`HeapProbe`]): live heap
//! against what the allocator keeps freed, which tells a leak from fragmentation.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::bench::process::{heap_from_json, start_sfu, start_streamer, HeapProbe, Kids, Picture};
use crate::bench::target::{Target, TargetOpts};
use crate::bench::{fig, BenchReport, Goal};

#[derive(Debug, Clone, clap::Args)]
pub struct ChurnOpts {
    /// The long-lived peer under test: `streamer` (mock-streamer), `sfu` (sfu-stub, fed by
    /// a mock streamer; the SFU is measured) or `player` (one mock-player process whose players
    /// join, stream and leave round after round; the player process is measured).
    #[arg(long, default_value = "streamer")]
    pub peer: String,
    /// Joins before the baseline is read (allocators and caches settle).
    #[arg(long, default_value_t = 1000)]
    pub warmup: usize,
    /// Join/leave cycles measured after the warm-up.
    #[arg(long, default_value_t = 10_000)]
    pub cycles: usize,
    /// Players that join together in one round.
    #[arg(long, default_value_t = 20)]
    pub batch: usize,
    /// Seconds each player stays (after its join).
    #[arg(long, default_value_t = 1.5)]
    pub stay: f64,
    /// Video of the mock streamer (small: this measures churn, not media load).
    #[arg(long, default_value_t = 320)]
    pub width: u32,
    #[arg(long, default_value_t = 240)]
    pub height: u32,
    /// Seconds the peer stays up, idle, after the last reading (`streamer` and `sfu`), with
    /// its pid printed: time to take a heap profile of what it still holds (attach
    /// `heaptrack -p PID` after the warm-up, `kill -9` it now; see the bench README).
    #[arg(long, default_value_t = 0.0)]
    pub linger: f64,
}

/// What `/proc` shows of the peer at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PeerReading {
    /// Joins so far (warm-up included).
    pub joins: usize,
    pub rss_kib: u64,
    pub fds: usize,
    pub threads: usize,
    pub udp_sockets: usize,
    /// Live heap (allocated, not freed), from the peer's allocator; `None` where the peer
    /// does not answer heap probes.
    pub heap_in_use_kib: Option<u64>,
    /// Freed memory in the peer's allocator's free lists (resident only where a trim has not
    /// given its pages back).
    pub allocator_free_kib: Option<u64>,
}

impl PeerReading {
    /// `None` when the process is gone.
    pub fn read(pid: u32, joins: usize) -> Option<PeerReading> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
        };
        let mut fds = 0;
        let mut sockets = HashSet::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
            fds += 1;
            if let Ok(link) = std::fs::read_link(entry.path()) {
                let link = link.to_string_lossy();
                if let Some(inode) = link.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    sockets.insert(inode.to_string());
                }
            }
        }
        let udp_sockets = udp_inodes(pid).intersection(&sockets).count();
        Some(PeerReading {
            joins,
            rss_kib: field("VmRSS:")?,
            fds,
            threads: field("Threads:")? as usize,
            udp_sockets,
            ..PeerReading::default()
        })
    }

    /// This reading with the allocator's figures from `probe`, when there is one.
    pub fn with_heap(self, probe: Option<&mut HeapProbe>) -> PeerReading {
        self.with_usage(probe.and_then(HeapProbe::read))
    }

    /// This reading with the allocator's figures `usage`, when there are some.
    pub fn with_usage(mut self, usage: Option<proto::rtc::AllocatorUsage>) -> PeerReading {
        if let Some(usage) = usage {
            self.heap_in_use_kib = Some(usage.in_use / 1024);
            self.allocator_free_kib = Some(usage.free_held / 1024);
        }
        self
    }
}

/// Inodes of the UDP sockets in the peer's network namespace (`/proc/<pid>/net/udp{,6}`).
fn udp_inodes(pid: u32) -> HashSet<String> {
    let mut out = HashSet::new();
    for table in ["udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else { continue };
        for line in text.lines().skip(1) {
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode …
            if let Some(inode) = line.split_whitespace().nth(9) {
                out.insert(inode.to_string());
            }
        }
    }
    out
}

/// Least-squares slope of RSS (KiB) against joins, in MB per 1,000 joins.
pub fn growth_mb_per_1000(readings: &[PeerReading]) -> f64 {
    slope_mb_per_1000(readings, |r| Some(r.rss_kib))
}

/// Least-squares slope of live heap (KiB) against joins, in MB per 1,000 joins (over the
/// readings that have it).
pub fn heap_growth_mb_per_1000(readings: &[PeerReading]) -> f64 {
    slope_mb_per_1000(readings, |r| r.heap_in_use_kib)
}

fn slope_mb_per_1000(readings: &[PeerReading], kib: impl Fn(&PeerReading) -> Option<u64>) -> f64 {
    let points: Vec<(f64, f64)> = readings.iter().filter_map(|r| Some((r.joins as f64, kib(r)? as f64))).collect();
    let n = points.len() as f64;
    if points.len() < 2 {
        return f64::NAN;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in &points {
        let dx = x - mx;
        sxy += dx * (y - my);
        sxx += dx * dx;
    }
    if sxx == 0.0 {
        return f64::NAN;
    }
    sxy / sxx * 1000.0 / 1024.0
}

pub async fn run(target: &TargetOpts, o: &ChurnOpts, runs: usize, smoke: bool) -> anyhow::Result<BenchReport> {
    if !["streamer", "sfu", "player"].contains(&o.peer.as_str()) {
        bail!("--peer: unknown peer {:?} (streamer, sfu, player)", o.peer);
    }
    let o = if smoke { ChurnOpts { warmup: 10, cycles: 20, batch: 10, stay: 0.5, ..o.clone() } } else { o.clone() };
    let mut report = BenchReport::new("churn", "", smoke);
    let mut per_run = Vec::new();
    for run in 0..runs {
        let mut t = Target::start(target).await?;
        report.server = t.label.clone();
        let r = one_run(&t, &o, run).await;
        t.stop();
        let r = r.with_context(|| format!("churn run {}", run + 1))?;
        let (start, end) = (r.start, r.end);
        let growth = growth_mb_per_1000(&r.readings);
        // The same from the two settled readings alone: no player connected at
        // either, where every round's reading has a batch of them.
        let per_1000 = |from: u64, to: u64| {
            (to as f64 - from as f64) / 1024.0 * 1000.0 / (end.joins.saturating_sub(start.joins)).max(1) as f64
        };
        let settled = per_1000(start.rss_kib, end.rss_kib);
        // Live heap against RSS: a heap that stays put while RSS grows is the allocator
        // keeping freed memory (fragmentation), not a leak.
        let heap = match (start.heap_in_use_kib, end.heap_in_use_kib, start.allocator_free_kib, end.allocator_free_kib)
        {
            (Some(h0), Some(h1), Some(f0), Some(f1)) => Some((h0, h1, f0, f1)),
            _ => None,
        };
        let heap_growth = heap_growth_mb_per_1000(&r.readings);
        if let Some((h0, h1, f0, f1)) = heap {
            eprintln!(
                "churn {} run {}: live heap {:.1} → {:.1} MB ({heap_growth:+.3} MB per 1,000 joins over the rounds, {:+.3} settled to settled), allocator's free lists {:.1} → {:.1} MB (resident only in part)",
                o.peer,
                run + 1,
                h0 as f64 / 1024.0,
                h1 as f64 / 1024.0,
                per_1000(h0, h1),
                f0 as f64 / 1024.0,
                f1 as f64 / 1024.0,
            );
        }
        eprintln!(
            "churn {} run {}: RSS {:.1} → {:.1} MB ({growth:+.2} MB per 1,000 joins over the rounds, {settled:+.2} settled to settled), fds {} → {}, threads {} → {}, UDP sockets {} → {}, failed joins {}",
            o.peer,
            run + 1,
            start.rss_kib as f64 / 1024.0,
            end.rss_kib as f64 / 1024.0,
            start.fds,
            end.fds,
            start.threads,
            end.threads,
            start.udp_sockets,
            end.udp_sockets,
            r.failed
        );
        let p = &o.peer;
        per_run.push(vec![
            fig(&format!("{p} RSS after warm-up"), "MB", start.rss_kib as f64 / 1024.0, Goal::None),
            fig(&format!("{p} RSS at the end"), "MB", end.rss_kib as f64 / 1024.0, Goal::None),
            fig(&format!("{p} RSS growth per 1,000 joins"), "MB", growth, Goal::AtMost(0.1)),
            fig(&format!("{p} RSS growth per 1,000 joins, settled to settled"), "MB", settled, Goal::AtMost(0.1)),
            fig(&format!("{p} open fds after warm-up"), "", start.fds as f64, Goal::None),
            fig(&format!("{p} open fds growth"), "", end.fds as f64 - start.fds as f64, Goal::AtMost(0.0)),
            fig(&format!("{p} threads after warm-up"), "", start.threads as f64, Goal::None),
            fig(&format!("{p} threads growth"), "", end.threads as f64 - start.threads as f64, Goal::None),
            fig(
                &format!("{p} UDP sockets growth"),
                "",
                end.udp_sockets as f64 - start.udp_sockets as f64,
                Goal::AtMost(0.0),
            ),
            fig("failed joins", "", r.failed as f64, Goal::AtMost(0.0)),
        ]);
        if let Some((h0, h1, f0, f1)) = heap {
            let figs = per_run.last_mut().context("this run's figures")?;
            figs.push(fig(&format!("{p} live heap after warm-up"), "MB", h0 as f64 / 1024.0, Goal::None));
            figs.push(fig(&format!("{p} live heap at the end"), "MB", h1 as f64 / 1024.0, Goal::None));
            figs.push(fig(&format!("{p} live heap growth per 1,000 joins"), "MB", heap_growth, Goal::AtMost(0.1)));
            figs.push(fig(
                &format!("{p} live heap growth per 1,000 joins, settled to settled"),
                "MB",
                per_1000(h0, h1),
                Goal::AtMost(0.1),
            ));
            figs.push(fig(&format!("{p} allocator's free lists after warm-up"), "MB", f0 as f64 / 1024.0, Goal::None));
            figs.push(fig(&format!("{p} allocator's free lists at the end"), "MB", f1 as f64 / 1024.0, Goal::None));
        }
        report.details.push(json!({ "start": start, "end": end, "readings": r.readings, "failed": r.failed }));
    }
    report.runs = runs;
    report.figures_from_runs(&per_run);
    report.notes.push(format!(
        "{} warm-up joins, then {} join/leave cycles in rounds of {} players staying {} s; {}x{} video; readings after the warm-up and at the end are taken once the peer has settled (descriptor count unchanged for 1 s), {}; live heap from the peer's allocator (glibc mallinfo2) with each reading; growth target: 1 MB per 10,000 joins",
        o.warmup,
        o.cycles,
        o.batch,
        o.stay,
        o.width,
        o.height,
        if o.peer == "player" {
            "after every round as soon as the player process reports it"
        } else {
            "between rounds once the round's connections have closed and one trim period (1.1 s) later"
        }
    ));
    Ok(report)
}

struct Outcome {
    start: PeerReading,
    end: PeerReading,
    /// After each measured round.
    readings: Vec<PeerReading>,
    failed: usize,
}

async fn one_run(t: &Target, o: &ChurnOpts, run: usize) -> anyhow::Result<Outcome> {
    let sid = format!("ChurnStreamer{run}");
    let mut kids = Kids(Vec::new());
    let picture = Picture { width: o.width, height: o.height, fps: 30, bitrate: 300_000 };
    start_streamer(&mut kids, t, &sid, picture).await?;
    let join_id = if o.peer == "sfu" {
        let fid = format!("ChurnSFU{run}");
        start_sfu(&mut kids, t, &fid, &sid).await?;
        fid
    } else {
        sid
    };
    if o.peer == "player" {
        return player_run(t, o, &join_id, kids).await;
    }
    let pid = kids.0.last().map(|c| c.id()).context("peer process")?;
    let mut probe = kids.0.last_mut().and_then(HeapProbe::take);
    let (mut joins, mut failed) = (0usize, 0usize);
    let round = || one_round(&t.player_url, &join_id, o.batch.max(1), o.stay);
    while joins < o.warmup {
        let (n, f) = round().await?;
        (joins, failed) = (joins + n, failed + f);
    }
    let start = settled(pid, joins, probe.as_mut()).await?;
    let end_at = joins + o.cycles;
    let mut readings = vec![start];
    let mut shown = Instant::now();
    while joins < end_at {
        let (n, f) = round().await?;
        (joins, failed) = (joins + n, failed + f);
        readings.push(between_rounds(pid, joins, &start, probe.as_mut()).await?);
        if shown.elapsed() > Duration::from_secs(10) {
            let last = readings.last().copied().unwrap_or_default();
            let heap = last.heap_in_use_kib.map(|h| format!(" (live heap {:.1} MB)", h as f64 / 1024.0));
            eprintln!(
                "churn: {joins}/{end_at} joins, peer RSS {:.1} MB{}, fds {}, UDP sockets {}",
                last.rss_kib as f64 / 1024.0,
                heap.unwrap_or_default(),
                last.fds,
                last.udp_sockets
            );
            shown = Instant::now();
        }
    }
    let end = settled(pid, joins, probe.as_mut()).await?;
    if o.linger > 0.0 {
        eprintln!("churn: the peer (pid {pid}) stays up, idle, for {} s (--linger)", o.linger);
        tokio::time::sleep(Duration::from_secs_f64(o.linger)).await;
    }
    readings.push(end);
    Ok(Outcome { start, end, readings, failed })
}

/// `--peer player`: the rounds run inside one mock-player child process, which pauses after
/// the warm-up and at the end for the settled readings.
async fn player_run(t: &Target, o: &ChurnOpts, sid: &str, mut kids: Kids) -> anyhow::Result<Outcome> {
    use std::io::{BufRead, Write};
    let s = |v: &str| v.to_string();
    let mut child = crate::bench::process::spawn_self_piped(&[
        s("child-player-churn"),
        s("--url"),
        t.player_url.clone(),
        s("--streamer"),
        sid.to_string(),
        s("--batch"),
        o.batch.max(1).to_string(),
        s("--stay"),
        o.stay.to_string(),
        s("--warmup"),
        o.warmup.to_string(),
        s("--cycles"),
        o.cycles.to_string(),
    ])?;
    let pid = child.id();
    let mut to_child = child.stdin.take().context("child stdin")?;
    let from_child = child.stdout.take().context("child stdout")?;
    kids.0.push(child);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from_child).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // A round takes `stay` plus the joins; allow for a slow machine.
    let per_round = Duration::from_secs_f64(o.stay + 30.0);
    let limit = per_round * (o.warmup.div_ceil(o.batch.max(1)) as u32 + 1);
    let number = |line: &str, word: &str| -> anyhow::Result<usize> {
        line.strip_prefix(word)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("unexpected line from the player process: {line:?}"))
    };
    // Once the process has settled, its allocator's figures (`HEAP` → `HEAP <json>`).
    async fn with_heap(
        reading: PeerReading,
        to_child: &mut std::process::ChildStdin,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    ) -> anyhow::Result<PeerReading> {
        writeln!(to_child, "HEAP").context("asking the player process for its heap")?;
        let line = next_line(rx, Duration::from_secs(10)).await?;
        Ok(reading.with_usage(line.strip_prefix("HEAP ").and_then(heap_from_json)))
    }
    let line = next_line(&mut rx, limit).await?;
    let start = settled(pid, number(&line, "WARM ")?, None).await?;
    let start = with_heap(start, &mut to_child, &mut rx).await?;
    writeln!(to_child).context("resuming the player process")?;
    let mut readings = vec![start];
    let mut shown = Instant::now();
    let (end_joins, failed) = loop {
        let line = next_line(&mut rx, limit).await?;
        if let Some(rest) = line.strip_prefix("DONE ") {
            let mut it = rest.split_whitespace().filter_map(|n| n.parse::<usize>().ok());
            break (it.next().unwrap_or(0), it.next().unwrap_or(0));
        }
        let joins = number(&line, "JOINS ")?;
        let reading = PeerReading::read(pid, joins).context("the player process has gone")?;
        readings.push(reading.with_usage(line.splitn(3, ' ').nth(2).and_then(heap_from_json)));
        if shown.elapsed() > Duration::from_secs(10) {
            eprintln!("churn: {joins}/{} joins", o.warmup + o.cycles);
            shown = Instant::now();
        }
    };
    let end = settled(pid, end_joins, None).await?;
    let end = with_heap(end, &mut to_child, &mut rx).await?;
    readings.push(end);
    drop(to_child);
    Ok(Outcome { start, end, readings, failed })
}

/// The player process's next line, within `limit`.
async fn next_line(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, limit: Duration) -> anyhow::Result<String> {
    tokio::time::timeout(limit, rx.recv())
        .await
        .context("the player process said nothing in time")?
        .context("the player process has gone")
}

/// `batch` players join at once, stay `stay` seconds and leave; (players, failed).
pub(crate) async fn one_round(url: &str, join_id: &str, batch: usize, stay: f64) -> anyhow::Result<(usize, usize)> {
    let cfg = mock_player::PlayerConfig {
        url: url.to_string(),
        streamer_id: Some(join_id.to_string()),
        duration: Some(Duration::from_secs_f64(stay.clamp(0.1, 60.0))),
        join_timeout: Duration::from_secs(20),
        list_interval: Duration::from_millis(200),
        ..mock_player::PlayerConfig::default()
    };
    let load = mock_player::LoadConfig {
        players: batch,
        ramp: 0.0,
        max_joining: batch,
        progress: mock_player::ProgressMode::Off,
        ..mock_player::LoadConfig::default()
    };
    let r = mock_player::run_load(cfg, load, CancellationToken::new()).await?;
    Ok((r.players, r.failed))
}

/// A reading between two rounds, at a comparable moment each time: once the peer's
/// descriptors and UDP sockets are back to `baseline` (the round's connections closed; at most
/// 3 s), and one trim period later (`proto::rtc::release_freed_memory` gives freed memory back
/// at most once a second). Read straight after a round instead, the peer's RSS swings by
/// several MB with how far its teardown has got, more than the growth being measured.
async fn between_rounds(
    pid: u32,
    joins: usize,
    baseline: &PeerReading,
    probe: Option<&mut HeapProbe>,
) -> anyhow::Result<PeerReading> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = PeerReading::read(pid, joins).context("the peer process has gone")?;
        if (now.fds <= baseline.fds && now.udp_sockets <= baseline.udp_sockets) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Ok(PeerReading::read(pid, joins).context("the peer process has gone")?.with_heap(probe))
}

/// A reading once the peer's descriptor count has not changed for 1 s (at most 15 s): players
/// that just left are torn down asynchronously. With the allocator's figures from `probe`.
async fn settled(pid: u32, joins: usize, probe: Option<&mut HeapProbe>) -> anyhow::Result<PeerReading> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = PeerReading::read(pid, joins).context("the peer process has gone")?;
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = PeerReading::read(pid, joins).context("the peer process has gone")?;
        if now.fds != last.fds || now.udp_sockets != last.udp_sockets {
            since = Instant::now();
        }
        last = now;
    }
    Ok(last.with_heap(probe))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(joins: usize, rss_kib: u64) -> PeerReading {
        PeerReading { joins, rss_kib, ..PeerReading::default() }
    }

    #[test]
    fn growth_is_the_least_squares_slope() {
        // 1 MiB more every 1,000 joins.
        let r: Vec<PeerReading> = (0..5).map(|i| at(1000 * i, 50_000 + 1024 * i as u64)).collect();
        assert!((growth_mb_per_1000(&r) - 1.0).abs() < 1e-9);
        let flat = [at(0, 10), at(500, 10), at(1000, 10)];
        assert_eq!(growth_mb_per_1000(&flat), 0.0);
        assert!(growth_mb_per_1000(&[at(0, 1)]).is_nan());
    }

    #[test]
    fn heap_growth_uses_only_the_readings_that_have_it() {
        let with = |joins: usize, heap: u64| PeerReading { joins, heap_in_use_kib: Some(heap), ..at(joins, 0) };
        // 0.5 MiB more live heap every 1,000 joins; the reading without a figure is skipped.
        let r = [with(0, 1000), at(500, 0), with(1000, 1512), with(2000, 2024)];
        assert!((heap_growth_mb_per_1000(&r) - 0.5).abs() < 1e-9);
        assert!(heap_growth_mb_per_1000(&[at(0, 5), at(1000, 6)]).is_nan());
    }

    #[test]
    fn reads_this_process() {
        let r = PeerReading::read(std::process::id(), 7).expect("this process");
        assert_eq!(r.joins, 7);
        assert!(r.rss_kib > 0 && r.fds >= 3 && r.threads >= 1);
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let with = PeerReading::read(std::process::id(), 7).expect("this process");
        assert!(with.udp_sockets >= 1, "{with:?}");
        drop(sock);
    }
}
