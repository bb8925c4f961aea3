//! Child-process entry points of the `bench` executable: the signalling
//! server, the mock streamer, the SFU and the mock players each run from
//! their library in a process of their own, so `/proc/<pid>` shows what each
//! one costs. (Used when the sibling binaries are absent, and always for the
//! media bench's peers so it does not depend on their command lines.)
//!
//! The streamer and SFU children answer heap probes on stdin
//! ([`crate::bench::process::HeapProbe`]), so the churn and soak benches can
//! tell live heap from memory the allocator keeps.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::bench::process::heap_json;

/// `bench child-streamer`
#[derive(Debug, Clone, clap::Args)]
pub struct StreamerChild {
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub id: String,
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    #[arg(long, default_value_t = 360)]
    pub height: u32,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    #[arg(long, default_value_t = 1_000_000)]
    pub bitrate: u32,
}

/// `bench child-sfu`
#[derive(Debug, Clone, clap::Args)]
pub struct SfuChild {
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub streamer: String,
}

/// `bench child-players`
#[derive(Debug, Clone, clap::Args)]
pub struct PlayersChild {
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub streamer: String,
    #[arg(long)]
    pub players: usize,
    #[arg(long)]
    pub duration: f64,
    #[arg(long)]
    pub report: PathBuf,
    /// `mock-player --impair` (checked by the parent).
    #[arg(long)]
    pub impair: Option<String>,
    #[arg(long, default_value_t = 1.0)]
    pub impair_share: f64,
}

/// `bench child-player-churn`: one long-lived mock-player process joining in rounds. It
/// prints `WARM <joins>` after the warm-up and `DONE <joins> <failed>` at the end, each time
/// waiting for a line on stdin (the bench reads its `/proc` meanwhile and may ask `HEAP`,
/// answered `HEAP <json>`), and `JOINS <joins> <json>` after every measured round (the JSON:
/// its allocator's figures, `proto::rtc::AllocatorUsage`).
#[derive(Debug, Clone, clap::Args)]
pub struct PlayerChurnChild {
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub streamer: String,
    #[arg(long)]
    pub batch: usize,
    #[arg(long)]
    pub stay: f64,
    #[arg(long)]
    pub warmup: usize,
    #[arg(long)]
    pub cycles: usize,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")
}

pub fn signalling(args: Vec<String>) -> anyhow::Result<()> {
    use clap::Parser;
    let cli = signalling::cli::Cli::try_parse_from(std::iter::once("signalling".to_string()).chain(args))?;
    let resolved = signalling::cli::resolve_full(cli).context("invalid configuration")?;
    runtime()?.block_on(async {
        let handle = signalling::run(resolved.config).await.context("starting the server")?;
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        handle.shutdown().await;
        anyhow::Ok(())
    })
}

/// For every line on stdin, one `HEAP <json>` line on stdout: the allocator's figures
/// ([`proto::rtc::AllocatorUsage`], `null` without glibc), read on a thread of its own so an
/// answer never waits for the runtime. Ends with stdin.
fn answer_heap_probes() {
    use std::io::{BufRead, Write};
    let spawned = std::thread::Builder::new().name("heap-probe".into()).spawn(|| {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
            let mut out = std::io::stdout().lock();
            if writeln!(out, "HEAP {}", heap_json()).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no heap-probe thread: the bench gets no heap figures");
    }
}

pub fn streamer(a: StreamerChild) -> anyhow::Result<()> {
    answer_heap_probes();
    runtime()?.block_on(async {
        let config = mock_streamer::StreamerConfig {
            url: a.url,
            streamer_ids: vec![a.id],
            video: mock_streamer::video::VideoSettings {
                width: a.width,
                height: a.height,
                fps: a.fps,
                bitrate_bps: a.bitrate,
            },
            ping_interval: None,
            ..mock_streamer::StreamerConfig::default()
        };
        let handle = mock_streamer::spawn(config).context("starting the streamer")?;
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        let _ = tokio::time::timeout(Duration::from_secs(3), handle.stop()).await;
        anyhow::Ok(())
    })
}

pub fn sfu(a: SfuChild) -> anyhow::Result<()> {
    answer_heap_probes();
    runtime()?.block_on(async {
        let config = sfu_stub::SfuConfig {
            url: a.url,
            id: a.id,
            streamer: Some(a.streamer),
            list_interval: Duration::from_millis(200),
            ping_interval: None,
            ..sfu_stub::SfuConfig::default()
        };
        let handle = sfu_stub::spawn(config).context("starting the SFU")?;
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        let _ = tokio::time::timeout(Duration::from_secs(3), handle.stop()).await;
        anyhow::Ok(())
    })
}

pub fn players(a: PlayersChild) -> anyhow::Result<()> {
    let impair = a.impair.as_deref().map(str::parse).transpose()?;
    let report = runtime()?.block_on(async {
        let cfg = mock_player::PlayerConfig {
            url: a.url,
            streamer_id: Some(a.streamer),
            duration: Some(Duration::from_secs_f64(a.duration.clamp(0.5, 3600.0))),
            join_timeout: Duration::from_secs(20),
            list_interval: Duration::from_millis(200),
            impair,
            impair_share: a.impair_share,
            ..mock_player::PlayerConfig::default()
        };
        // All at once: no ramp, every join in flight.
        let load = mock_player::LoadConfig {
            players: a.players.max(1),
            ramp: 0.0,
            max_joining: a.players.max(1),
            ..mock_player::LoadConfig::default()
        };
        mock_player::run_load(cfg, load, CancellationToken::new()).await
    })?;
    let json = serde_json::to_string(&report).context("serialising the report")?;
    std::fs::write(&a.report, json).with_context(|| format!("writing {}", a.report.display()))?;
    Ok(())
}

pub fn player_churn(a: PlayerChurnChild) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let say = |text: String| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}").and_then(|()| out.flush())
    };
    // Paused until the bench says go; a `HEAP` line meanwhile is answered with the allocator's
    // figures (read once the bench has seen the process settle).
    let wait_for_bench = || -> std::io::Result<()> {
        loop {
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line)? == 0 || line.trim() != "HEAP" {
                return Ok(());
            }
            say(format!("HEAP {}", heap_json()))?;
        }
    };
    let rt = runtime()?;
    let (mut joins, mut failed) = (0usize, 0usize);
    let round = || crate::bench::churn::one_round(&a.url, &a.streamer, a.batch.max(1), a.stay);
    while joins < a.warmup {
        let (n, f) = rt.block_on(round())?;
        (joins, failed) = (joins + n, failed + f);
    }
    say(format!("WARM {joins}"))?;
    wait_for_bench()?;
    let end = joins + a.cycles;
    while joins < end {
        let (n, f) = rt.block_on(round())?;
        (joins, failed) = (joins + n, failed + f);
        say(format!("JOINS {joins} {}", heap_json()))?;
    }
    say(format!("DONE {joins} {failed}"))?;
    wait_for_bench()?;
    Ok(())
}
