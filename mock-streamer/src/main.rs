//! mock-streamer: stands in for an Unreal Engine Pixel Streaming application.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mock_streamer::config::codecs_from_names;
use mock_streamer::video::VideoSettings;
use mock_streamer::{numbered_ids, StreamerConfig};
use proto::logging::{Format, Output};
use proto::rtc::IcePolicy;

/// A headless Pixel Streaming streamer: connects to the signalling server's
/// streamer port and serves every player real H.264 video (a live test
/// pattern with a frame counter) and the Pixel Streaming data channel.
#[derive(Debug, Parser)]
#[command(name = "mock-streamer", version)]
struct Args {
    /// Signalling server streamer endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:8888")]
    url: String,
    /// Streamer id to register (with --count N: <id>, <id>1, <id>2, …).
    #[arg(long, default_value = "DefaultStreamer")]
    id: String,
    /// Number of streamers to run in this process.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Explicit comma-separated streamer ids (overrides --id/--count).
    #[arg(long, value_delimiter = ',')]
    ids: Option<Vec<String>>,
    /// Video width in pixels.
    #[arg(long, default_value_t = 1280)]
    width: u32,
    /// Video height in pixels.
    #[arg(long, default_value_t = 720)]
    height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Target encoder bitrate in bits per second.
    #[arg(long, default_value_t = 2_000_000)]
    bitrate: u32,
    /// Video codecs to offer, most preferred first (h264, vp8, vp9, av1). Each player's answer
    /// picks one; each codec in use is encoded once, whatever its number of players. Default:
    /// every codec this build encodes, H.264 first (Unreal's default order).
    #[arg(long, value_delimiter = ',', conflicts_with = "codec")]
    codecs: Option<Vec<String>>,
    /// Offer only this codec (the same as --codecs X).
    #[arg(long)]
    codec: Option<String>,
    /// Log every decoded player input message readably.
    #[arg(long)]
    print_input: bool,
    /// Echo each UIInteraction back to its player as a Response.
    #[arg(long)]
    respond: bool,
    /// Print per-player and total stats every N seconds (0 = never).
    #[arg(long, default_value_t = 10)]
    stats_interval: u64,
    /// Write the final stats as JSON to this file on exit.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Gather ICE candidates on 127.0.0.1 only, no STUN/TURN (default).
    #[arg(long, default_value_t = true, overrides_with = "no_ice_loopback_only")]
    ice_loopback_only: bool,
    /// Use every interface and the ICE servers from the server's config (real deployments).
    #[arg(long, overrides_with = "ice_loopback_only")]
    no_ice_loopback_only: bool,
    /// No WebRTC at all: answer playerConnected with a canned SDP offer (signalling load tests).
    #[arg(long)]
    signalling_only: bool,
    /// Offer SFU connections three simulcast encodings (rids f/h/q: full, half, quarter resolution).
    #[arg(long)]
    simulcast: bool,
    /// Add an Opus audio track (a 440 Hz tone) to every offer. Needs libopus (libopus0) at run time.
    #[arg(long)]
    audio: bool,
    /// Send a signalling ping every N seconds (0 = never).
    #[arg(long, default_value_t = 30)]
    ping_interval: u64,
    /// Largest delay between reconnect attempts, in seconds.
    #[arg(long, default_value_t = 10)]
    reconnect_max: u64,
}

/// The log filter without `RUST_LOG`: webrtc-rs's own warnings are routine here (`webrtc` and
/// `rtc` match by prefix: every crate of webrtc-rs 0.21, `rtc_ice`, `rtc_dtls`, …).
const DEFAULT_LOG: &str = "info,webrtc=error,rtc=error";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // No log flag: RUST_LOG, else the default (proto::logging's rule).
    proto::logging::init(None, DEFAULT_LOG, Format::Text, Output::Stdout)?;
    let args = Args::parse();
    let video_codecs = match (&args.codecs, &args.codec) {
        (Some(list), _) => codecs_from_names(list).context("--codecs")?,
        (None, Some(one)) => codecs_from_names(std::slice::from_ref(one)).context("--codec")?,
        (None, None) => mock_streamer::encoder::compiled_codecs(),
    };
    let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    let config = StreamerConfig {
        url: args.url,
        streamer_ids: args.ids.unwrap_or_else(|| numbered_ids(&args.id, args.count)),
        video: VideoSettings { width: args.width, height: args.height, fps: args.fps, bitrate_bps: args.bitrate },
        video_codecs,
        ice: IcePolicy { loopback_only: args.ice_loopback_only && !args.no_ice_loopback_only },
        print_input: args.print_input,
        respond: args.respond,
        signalling_only: args.signalling_only,
        simulcast: args.simulcast,
        audio: args.audio,
        stats_interval: secs(args.stats_interval),
        ping_interval: secs(args.ping_interval),
        reconnect_max: Duration::from_secs(args.reconnect_max.max(1)),
        ..StreamerConfig::default()
    };
    let handle = mock_streamer::spawn(config).context("starting the streamers")?;
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    tracing::info!("Ctrl-C: shutting down");
    let stats = handle.stop().await;
    println!("{}", stats.summary().trim_end());
    if let Some(path) = args.stats_json {
        let json = serde_json::to_string_pretty(&stats)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
