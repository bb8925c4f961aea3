//! sfu-stub: the forwarding Pixel Streaming SFU (see the library docs).

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use proto::logging::{Format, Output};
use proto::rtc::IcePolicy;
use sfu_stub::SfuConfig;
use tokio_util::sync::CancellationToken;

/// A Pixel Streaming SFU: receives one streamer's media once and forwards
/// it (the simulcast layer each player asked for) to many players, relaying
/// each player's data channel to the streamer.
#[derive(Debug, Parser)]
#[command(name = "sfu-stub", version)]
struct Args {
    /// The signalling server's SFU WebSocket endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:8889", env = "SFU_URL")]
    url: String,
    /// The id this SFU registers with `endpointId`; players subscribe to it.
    #[arg(long, default_value = "SFU")]
    id: String,
    /// The streamer to subscribe to. Default: the first listed id that is not
    /// this SFU's (the list is asked for again every `--list-interval-ms`
    /// while there is none).
    #[arg(long)]
    streamer: Option<String>,
    /// The simulcast layer (spatial index, 0 = the lowest resolution) a player
    /// gets until it sends `layerPreference`. Default: the highest. Clamped
    /// to the layers the streamer sends.
    #[arg(long)]
    default_layer: Option<usize>,
    /// Gather ICE candidates on 127.0.0.1 only (UDP4, no mDNS), ignore the
    /// server's ICE servers and drop remote candidates that are not
    /// loopback. `--ice-loopback-only false` uses every interface and the
    /// STUN/TURN servers from the server's `config`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    ice_loopback_only: bool,
    /// Re-send `listStreamers` this often (milliseconds) while not subscribed.
    #[arg(long, default_value_t = 2000)]
    list_interval_ms: u64,
    /// At most one keyframe request (PLI) to the streamer per layer this
    /// often (milliseconds); requests in between are merged.
    #[arg(long, default_value_t = 500)]
    keyframe_interval_ms: u64,
    /// Start a new player at once with the newest keyframe of its layer (and
    /// the frames since) while that keyframe is at most this old
    /// (milliseconds); older, or 0 (no cache): it waits for a new keyframe.
    #[arg(long, default_value_t = 1000)]
    keyframe_cache_ms: u64,
    /// RTP packets queued per player and track; beyond that the player's
    /// packets are dropped and it resumes at the next keyframe.
    #[arg(long, default_value_t = 512)]
    player_queue: usize,
    /// `stopStreaming` after this long (milliseconds) without RTP from the streamer.
    #[arg(long, default_value_t = 5000)]
    stall_timeout_ms: u64,
    /// Renew the connection to the streamer once it has carried this many players' data
    /// channels, when no player is connected (0 = never): webrtc-rs keeps every data channel's
    /// statistics while a connection lives, so a long-lived one grows with every player.
    #[arg(long, default_value_t = 1000, value_name = "PLAYERS")]
    renew_upstream_after: usize,
    /// Send `ping` to the server this often (seconds, 0 = never).
    #[arg(long, default_value_t = 30)]
    ping_interval_secs: u64,
    /// Log statistics this often (seconds, 0 = never).
    #[arg(long, default_value_t = 10)]
    stats_interval_secs: u64,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `sfu_stub=debug`. This flag, when
    /// given, beats RUST_LOG, which beats the default: info,webrtc=error,rtc=error (webrtc-rs's
    /// routine DTLS and ICE warnings off the console; `rtc` covers every `rtc_*` crate).
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    proto::logging::init(args.log.as_deref(), "info,webrtc=error,rtc=error", Format::Text, Output::Stdout)?;
    let config = SfuConfig {
        url: args.url.clone(),
        id: args.id.clone(),
        streamer: args.streamer.clone(),
        default_layer: args.default_layer,
        ice: if args.ice_loopback_only { IcePolicy::LOOPBACK } else { IcePolicy::ANY },
        list_interval: Duration::from_millis(args.list_interval_ms.max(100)),
        keyframe_interval: Duration::from_millis(args.keyframe_interval_ms),
        keyframe_cache: Duration::from_millis(args.keyframe_cache_ms),
        player_queue: args.player_queue,
        stall_timeout: Duration::from_millis(args.stall_timeout_ms.max(500)),
        ping_interval: (args.ping_interval_secs > 0).then(|| Duration::from_secs(args.ping_interval_secs)),
        renew_upstream_after: args.renew_upstream_after,
        ..SfuConfig::default()
    };
    let sfu = sfu_stub::spawn(config).context("cannot start the SFU")?;
    let cancel = CancellationToken::new();
    if args.stats_interval_secs > 0 {
        let every = Duration::from_secs(args.stats_interval_secs);
        let cancel = cancel.clone();
        let stats = sfu.stats_source();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        tracing::info!(target: "stats", "{}\n{}", stats.snapshot().summary().trim_end(), proto::rtc::memory_line());
                    }
                }
            }
        });
    }
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    cancel.cancel();
    tracing::info!("stopping");
    let last = sfu.stop().await;
    tracing::info!(target: "stats", "{}", last.summary());
    Ok(())
}
