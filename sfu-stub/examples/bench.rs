//! CPU of the SFU per forwarded player.
//!
//! Everything runs in this process on loopback: a signalling server, a mock
//! streamer (320x240 or `--size`, 30 fps), the SFU on its own Tokio runtime
//! whose threads are named `sfu-rt`, and N mock players. The SFU's CPU is
//! the sum of utime+stime of the `sfu-rt` threads (/proc/self/task/*/stat)
//! over a measuring window once every player streams.
//!
//! ```text
//! cargo run --release -p sfu-stub --example bench -- 10 50 100
//! ```
//! Options (env): RUNS (default 3), WINDOW_SECS (default 10), SIZE (WxH, default 320x240),
//! BITRATE (default 300000).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mock_player::live::{Live, Phase};
use mock_player::rtc::RtcContext;
use mock_player::{Player, PlayerConfig};
use testkit::procfs;
use testkit::stats::median;
use tokio_util::sync::CancellationToken;

const SFU_THREAD: &str = "sfu-rt";

fn env<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn process_cpu_secs() -> f64 {
    procfs::cpu_secs(std::process::id()).unwrap_or(0.0)
}

fn rss_mb() -> f64 {
    procfs::rss_kib(std::process::id()).map_or(0.0, |kib| kib as f64 / 1024.0)
}

struct RunResult {
    sfu_cpu_pct: f64,
    process_cpu_pct: f64,
    delivered_pct: f64,
    streaming: usize,
    join_secs: f64,
    dropped: u64,
    keyframe_requests: u64,
    rss_mb: f64,
    mbps_per_player: f64,
}

async fn one_run(n: usize, window: Duration, sfu_rt: &tokio::runtime::Handle) -> anyhow::Result<RunResult> {
    let srv = signalling::run(signalling::ServerConfig::ephemeral()).await?;
    let (w, h) = std::env::var("SIZE")
        .ok()
        .and_then(|s| s.split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?))))
        .unwrap_or((320, 240));
    let st = mock_streamer::spawn(mock_streamer::StreamerConfig {
        url: format!("ws://{}", srv.streamer_addr()),
        streamer_ids: vec!["S1".into()],
        video: mock_streamer::video::VideoSettings {
            width: w,
            height: h,
            fps: 30,
            bitrate_bps: env("BITRATE", 300_000),
        },
        ..Default::default()
    })?;
    let sfu_cfg = sfu_stub::SfuConfig {
        url: format!("ws://{}", srv.sfu_addr()),
        list_interval: Duration::from_millis(200),
        ..Default::default()
    };
    // The SFU is spawned from its own runtime so that all its tasks
    // (webrtc-rs's included) run on the `sfu-rt` threads.
    let sfu = sfu_rt.spawn(async move { sfu_stub::spawn(sfu_cfg) }).await??;
    let mut events = sfu.events();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(e) = events.recv().await {
            if e == sfu_stub::SfuEvent::Streaming {
                break;
            }
        }
    })
    .await?;
    // Players that list before the server has the SFU listed would not find it.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !srv.snapshot().streamers.iter().any(|s| s.streamer_id == "SFU" && s.streaming) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await?;

    let rtc = RtcContext::new(true)?;
    let cfg = Arc::new(PlayerConfig {
        url: format!("ws://{}", srv.player_addr()),
        streamer_id: Some("SFU".into()),
        join_timeout: Duration::from_secs(60),
        list_interval: Duration::from_millis(200),
        ..Default::default()
    });
    let cancel = CancellationToken::new();
    let mut lives = Vec::new();
    let mut tasks = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        let live = Arc::new(Live::default());
        lives.push(live.clone());
        let player = Player::new(i, cfg.clone(), Some(rtc.clone()), live);
        tasks.push(tokio::spawn(player.run(cancel.clone(), None)));
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let all_streaming = tokio::time::timeout(Duration::from_secs(60), async {
        while lives.iter().any(|l| l.phase() != Phase::Streaming) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok();
    let join_secs = started.elapsed().as_secs_f64();
    if !all_streaming {
        eprintln!("  not every player joined within 60 s");
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // settle: keyframes, ramp
    let frames0: Vec<u64> = lives.iter().map(|l| l.frames.load(Relaxed)).collect();
    let bytes0 = sfu.stats().bytes_forwarded;
    let (sfu0, proc0, t0) = (procfs::thread_cpu_secs(SFU_THREAD), process_cpu_secs(), Instant::now());
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64();
    let sfu_cpu = procfs::thread_cpu_secs(SFU_THREAD) - sfu0;
    let proc_cpu = process_cpu_secs() - proc0;
    let frames: u64 = lives.iter().zip(&frames0).map(|(l, f0)| l.frames.load(Relaxed) - f0).sum();
    let expected = 30.0 * secs * n as f64;
    let s = sfu.stats();
    let mbps_per_player = (s.bytes_forwarded - bytes0) as f64 * 8.0 / secs / 1e6 / n as f64;
    let rss = rss_mb();
    let streaming = lives.iter().filter(|l| l.phase() == Phase::Streaming).count();
    cancel.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    sfu.stop().await;
    st.stop().await;
    srv.shutdown().await;
    Ok(RunResult {
        sfu_cpu_pct: 100.0 * sfu_cpu / secs,
        process_cpu_pct: 100.0 * proc_cpu / secs,
        delivered_pct: 100.0 * frames as f64 / expected,
        streaming,
        join_secs,
        dropped: s.packets_dropped,
        keyframe_requests: s.keyframe_requests_sent,
        rss_mb: rss,
        mbps_per_player,
    })
}

fn main() -> anyhow::Result<()> {
    let counts: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let counts = if counts.is_empty() { vec![10, 50, 100] } else { counts };
    let runs: usize = env("RUNS", 3);
    let window = Duration::from_secs(env("WINDOW_SECS", 10));
    let sfu_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name(SFU_THREAD).enable_all().build()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("rest").enable_all().build()?;
    println!(
        "players | SFU CPU % of a core (median of {runs}) | per player | Mbit/s per player | process CPU % | delivered frames % | joined | join s | dropped pkts | PLIs | RSS MB"
    );
    for n in counts {
        let mut results = Vec::new();
        for run in 0..runs {
            let r = rt.block_on(one_run(n, window, sfu_rt.handle()))?;
            eprintln!(
                "  n={n} run {run}: sfu {:.1}% process {:.1}% delivered {:.1}% streaming {}/{n} join {:.1}s dropped {} PLIs {} RSS {:.0} MB",
                r.sfu_cpu_pct, r.process_cpu_pct, r.delivered_pct, r.streaming, r.join_secs, r.dropped, r.keyframe_requests, r.rss_mb
            );
            results.push(r);
        }
        let m = |f: fn(&RunResult) -> f64| median(&results.iter().map(f).collect::<Vec<_>>());
        let sfu = m(|r| r.sfu_cpu_pct);
        println!(
            "{n} | {sfu:.1} | {:.3} | {:.2} | {:.1} | {:.1} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0}",
            sfu / n as f64,
            m(|r| r.mbps_per_player),
            m(|r| r.process_cpu_pct),
            m(|r| r.delivered_pct),
            m(|r| r.streaming as f64),
            m(|r| r.join_secs),
            m(|r| r.dropped as f64),
            m(|r| r.keyframe_requests as f64),
            m(|r| r.rss_mb),
        );
    }
    Ok(())
}
