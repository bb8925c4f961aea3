//! `player21`: mock-player's receive side on webrtc 0.21.x, for the
//! 0.17.2-vs-0.21 comparison in `run.sh`. N players in one process join the
//! only streamer on a signalling server (loopback ICE only), receive H.264
//! without decoding it for `--duration` seconds, leave, and a JSON report
//! gives each join phase's percentiles.

mod load;
mod peer;
mod player;
mod rtp_count;
mod settings;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// mock-player's receive side on webrtc 0.21.x (loopback ICE only).
#[derive(Parser, Debug)]
#[command(name = "player21")]
struct Cli {
    /// Signalling server player WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// Players in this process.
    #[arg(long, default_value_t = 1)]
    players: usize,
    /// Players started per second.
    #[arg(long, default_value_t = 10.0)]
    ramp: f64,
    /// Seconds each player stays (from its start), then leaves.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds a join may take until the first RTP packet.
    #[arg(long, default_value_t = 20.0)]
    join_timeout: f64,
    /// Add a NACK generator to the interceptors (mock-player has RTCP reports only).
    #[arg(long)]
    nack_generator: bool,
    /// ICE connectivity-check interval in ms (library default: 200).
    #[arg(long)]
    ice_check_interval_ms: Option<u64>,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let cfg = player::PlayerConfig {
        url: cli.url,
        duration: Duration::from_secs_f64(cli.duration),
        join_timeout: Duration::from_secs_f64(cli.join_timeout),
        rtc: settings::PlayerRtcOptions {
            nack_generator: cli.nack_generator,
            ice_check_interval: cli.ice_check_interval_ms.map(Duration::from_millis),
        },
    };
    let report = load::run_load(cfg, cli.players, cli.ramp).await;
    let first = report.phases.get("4 first_rtp").cloned().unwrap_or_default();
    println!(
        "passed {}/{}  first RTP p50 {:.1} ms p99 {:.1} ms  frames {}  failures {:?}",
        report.passed, report.players, first.p50, first.p99, report.total_video_frames, report.failures
    );
    if let Some(path) = cli.report {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if report.passed < report.players {
        std::process::exit(1);
    }
    Ok(())
}
