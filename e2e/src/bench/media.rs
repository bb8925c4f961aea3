//! Media load: a mock streamer → N mock players directly, and → SFU → N mock
//! players; all N players join at once. Each peer runs in its own process
//! (the peers' libraries, started by this executable) so its CPU and memory
//! are read from `/proc`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::bench::process::{spawn_self, start_sfu, start_streamer, Kids, Picture};
use crate::bench::target::{stop_child, Target, TargetOpts};
use crate::bench::util::{percentile, ProcSample};
use crate::bench::{fig, BenchReport, Goal};

#[derive(Debug, Clone, clap::Args)]
pub struct MediaOpts {
    /// Player counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec![50usize, 100, 200, 300])]
    pub players: Vec<usize>,
    /// Topologies: direct, sfu (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["direct".to_string(), "sfu".to_string()])]
    pub modes: Vec<String>,
    /// Seconds each player streams.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Video size and rate of the mock streamer.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    #[arg(long, default_value_t = 360)]
    pub height: u32,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    #[arg(long, default_value_t = 1_000_000)]
    pub bitrate: u32,
    /// Put the players on a bad network, as `mock-player --impair` takes it
    /// (e.g. "delay=40ms,jitter=10ms,loss=2%"); with --impair-share, only a share of them.
    #[arg(long, value_name = "PROFILE")]
    pub impair: Option<String>,
    #[arg(long, default_value_t = 1.0, value_name = "SHARE")]
    pub impair_share: f64,
}

pub async fn run(target: &TargetOpts, o: &MediaOpts, runs: usize, smoke: bool) -> anyhow::Result<BenchReport> {
    let counts: Vec<usize> = if smoke { vec![2] } else { o.players.iter().map(|n| (*n).clamp(1, 5000)).collect() };
    let modes: Vec<String> = if smoke { vec!["direct".into()] } else { o.modes.clone() };
    for m in &modes {
        if m != "direct" && m != "sfu" {
            bail!("--modes: unknown topology {m:?} (direct, sfu)");
        }
    }
    let secs = if smoke { 2.0 } else { o.duration.clamp(1.0, 3600.0) };
    if let Some(profile) = &o.impair {
        profile.parse::<proto::impairment::Impairment>()?;
        if !(0.0..=1.0).contains(&o.impair_share) {
            bail!("--impair-share {}: a share between 0 and 1", o.impair_share);
        }
    }
    let mut report = BenchReport::new("media", "", smoke);
    let mut per_run: Vec<Vec<_>> = vec![Vec::new(); runs];
    for mode in &modes {
        for &n in &counts {
            for (run, figs) in per_run.iter_mut().enumerate() {
                let mut t = Target::start(target).await?;
                report.server = t.label.clone();
                let r = one_run(&t, o, mode, n, secs, run).await;
                t.stop();
                let r = r.with_context(|| format!("{mode} N={n} run {}", run + 1))?;
                eprintln!("media {mode} N={n} run {}: {r}", run + 1);
                let g = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
                let k = |s: &str| format!("{mode} N={n} {s}");
                let ttff_goal50 = if n == 100 { Goal::AtMost(150.0) } else { Goal::None };
                let ttff_goal99 = if n == 100 { Goal::AtMost(500.0) } else { Goal::None };
                figs.push(fig(&k("joined"), "%", g("joined_pct"), Goal::None));
                figs.push(fig(&k("delivered frames"), "%", g("delivered_pct"), Goal::None));
                figs.push(fig(&k("first frame p50"), "ms", g("ttff_p50_ms"), ttff_goal50));
                figs.push(fig(&k("first frame p99"), "ms", g("ttff_p99_ms"), ttff_goal99));
                figs.push(fig(&k("offer received p50"), "ms", g("offer_ms_p50"), Goal::None));
                figs.push(fig(&k("ICE connected p50"), "ms", g("ice_connected_ms_p50"), Goal::None));
                figs.push(fig(&k("DTLS connected p50"), "ms", g("dtls_connected_ms_p50"), Goal::None));
                figs.push(fig(&k("frame latency p50"), "ms", g("frame_latency_p50_ms"), Goal::None));
                figs.push(fig(&k("freezes per player p50"), "count", g("freezes_per_player_p50"), Goal::None));
                // With --impair: the same per network profile (clean, and the impaired share).
                if o.impair.is_some() {
                    for (profile, f) in r["profiles"].as_object().into_iter().flatten() {
                        let p50 = |key: &str| f[key]["p50"].as_f64().unwrap_or(f64::NAN);
                        let name = |what: &str| k(&format!("[{profile}] {what}"));
                        figs.push(fig(&name("frame latency p50"), "ms", p50("latency_p50_ms"), Goal::None));
                        figs.push(fig(&name("frame latency p99"), "ms", p50("latency_p99_ms"), Goal::None));
                        figs.push(fig(&name("freezes per player p50"), "count", p50("freezes"), Goal::None));
                        figs.push(fig(&name("NACKs per player p50"), "count", p50("nacks_sent"), Goal::None));
                    }
                }
                for p in ["players", "streamer", "sfu", "server"] {
                    let cpu = g(&format!("{p}_cpu_pct_per_player"));
                    let mem = g(&format!("{p}_kib_per_player"));
                    if cpu.is_finite() || mem.is_finite() {
                        figs.push(fig(&k(&format!("{p} CPU per player")), "% of 1 core", cpu, Goal::None));
                        figs.push(fig(&k(&format!("{p} memory per player")), "KiB", mem, Goal::None));
                    }
                }
                report.details.push(r);
            }
        }
    }
    report.runs = runs;
    report.figures_from_runs(&per_run);
    report.notes.push(format!(
        "{}x{} at {} fps, {} bit/s, {secs} s per run; players all join at once; first frame = first complete keyframe (first RTP packet if none); delivered = frames received / (fps x time after the first frame); memory per player: streamer/SFU/server = (peak RSS - RSS before the players) / N, players = peak RSS of the players' process / N",
        o.width, o.height, o.fps, o.bitrate
    ));
    Ok(report)
}

async fn one_run(t: &Target, o: &MediaOpts, mode: &str, n: usize, secs: f64, run: usize) -> anyhow::Result<Value> {
    let sid = format!("MediaStreamer{run}");
    let s = |v: &str| v.to_string();
    let mut kids = Kids(Vec::new());
    let picture = Picture { width: o.width, height: o.height, fps: o.fps, bitrate: o.bitrate };
    start_streamer(&mut kids, t, &sid, picture).await?;
    let join_id = if mode == "sfu" {
        let fid = format!("MediaSFU{run}");
        start_sfu(&mut kids, t, &fid, &sid).await?;
        fid
    } else {
        sid.clone()
    };
    // Let the streamer (and the SFU's upstream) settle.
    tokio::time::sleep(Duration::from_millis(if mode == "sfu" { 1500 } else { 500 })).await;
    let mut pids: Vec<(&str, Option<u32>)> = vec![("streamer", Some(kids.0[0].id())), ("server", t.pid)];
    if mode == "sfu" {
        pids.push(("sfu", Some(kids.0[1].id())));
    }
    let base: Vec<ProcSample> = pids.iter().map(|(_, p)| p.map(ProcSample::read).unwrap_or_default()).collect();
    let dir = tempfile::tempdir().context("temp dir")?;
    let report_path = dir.path().join("players.json");
    let t0 = Instant::now();
    let mut args = vec![
        s("child-players"),
        s("--url"),
        t.player_url.clone(),
        s("--streamer"),
        join_id,
        s("--players"),
        n.to_string(),
        s("--duration"),
        secs.to_string(),
        s("--report"),
        report_path.display().to_string(),
    ];
    if let Some(profile) = &o.impair {
        args.extend([s("--impair"), profile.clone(), s("--impair-share"), o.impair_share.to_string()]);
    }
    let mut players = spawn_self(&args)?;
    let ppid = players.id();
    let mut pl = ProcSample::read(ppid);
    let pl_cpu0 = pl.cpu_secs.unwrap_or(0.0);
    let mut cur = base.clone();
    let deadline = t0 + Duration::from_secs_f64(secs + 60.0);
    let status = loop {
        if let Some(st) = players.try_wait()? {
            break Some(st);
        }
        if Instant::now() > deadline {
            stop_child(&mut players, Duration::from_secs(2));
            break None;
        }
        pl.update(ppid);
        for (i, (_, p)) in pids.iter().enumerate() {
            if let Some(p) = p {
                cur[i].update(*p);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let wall = t0.elapsed().as_secs_f64();
    let Some(status) = status else { bail!("the players did not finish within {secs} + 60 s") };
    let _ = status; // exit 1 just means some players failed their (unset) criteria; the report says.
    let rep = read_report(&report_path)?;
    drop(kids);
    let stats = rep["player_stats"].as_array().cloned().unwrap_or_default();
    let fps = f64::from(o.fps.max(1));
    let (mut frames, mut expected, mut joined) = (0.0, 0.0, 0usize);
    let mut ttff = Vec::new();
    // Where the time to first frame goes: each join phase's median.
    let mut phases: Vec<(&str, Vec<f64>)> =
        ["ws_connect_ms", "offer_ms", "ice_connected_ms", "dtls_connected_ms", "first_rtp_ms"]
            .iter()
            .map(|k| (*k, Vec::new()))
            .collect();
    for p in &stats {
        for (k, v) in phases.iter_mut() {
            if let Some(ms) = p["join"][*k].as_f64() {
                v.push(ms);
            }
        }
    }
    for p in &stats {
        let elapsed = p["elapsed_secs"].as_f64().unwrap_or(secs);
        let first = p["join"]["first_keyframe_ms"].as_f64().or_else(|| p["join"]["first_rtp_ms"].as_f64());
        frames += p["video_frames"].as_f64().unwrap_or(0.0);
        match first {
            Some(ms) => {
                joined += 1;
                ttff.push(ms);
                expected += fps * (elapsed - ms / 1000.0).max(0.0);
            }
            None => expected += fps * elapsed,
        }
    }
    ttff.sort_by(|a, b| a.total_cmp(b));
    let mut out = json!({
        "mode": mode, "players": n, "secs": secs, "wall_secs": wall,
        "joined": joined, "joined_pct": joined as f64 / n as f64 * 100.0,
        "delivered_pct": if expected > 0.0 { (frames / expected * 100.0).min(100.0) } else { f64::NAN },
        "frames": frames, "expected_frames": expected,
        "ttff_p50_ms": percentile(&ttff, 50.0), "ttff_p99_ms": percentile(&ttff, 99.0),
        "ttff_max_ms": ttff.last().copied().unwrap_or(f64::NAN),
        "players_cpu_pct_per_player": (pl.cpu_secs.unwrap_or(f64::NAN) - pl_cpu0) / wall * 100.0 / n as f64,
        "players_kib_per_player": pl.peak_rss_kib.map_or(f64::NAN, |k| k as f64) / n as f64,
        "failures": rep["failures"].clone(),
        // What the players saw of the network: latency, freezes, repair traffic.
        "frame_latency_p50_ms": rep["all"]["latency_p50_ms"]["p50"].clone(),
        "frame_latency_p99_ms": rep["all"]["latency_p99_ms"]["p50"].clone(),
        "freezes_per_player_p50": rep["all"]["freezes"]["p50"].clone(),
        "repair": rep["all"]["repair"].clone(),
        "profiles": rep["profiles"].clone(),
    });
    for (k, mut v) in phases {
        v.sort_by(|a, b| a.total_cmp(b));
        out[format!("{}_p50", k)] = json!(percentile(&v, 50.0));
    }
    for (i, (name, pid)) in pids.iter().enumerate() {
        if pid.is_none() {
            continue;
        }
        let cpu =
            (cur[i].cpu_secs.unwrap_or(f64::NAN) - base[i].cpu_secs.unwrap_or(f64::NAN)) / wall * 100.0 / n as f64;
        let mem = (cur[i].peak_rss_kib.unwrap_or(0) as f64 - base[i].rss_kib.unwrap_or(0) as f64) / n as f64;
        out[format!("{name}_cpu_pct_per_player")] = json!(cpu);
        out[format!("{name}_kib_per_player")] = json!(mem);
    }
    Ok(out)
}

fn read_report(p: &Path) -> anyhow::Result<Value> {
    let s = std::fs::read_to_string(p).with_context(|| format!("the players wrote no report ({})", p.display()))?;
    serde_json::from_str(&s).context("parsing the players' report")
}
