//! `mock-player`: headless Pixel Streaming players for tests and load.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mock_player::distributed::{self, AgentConfig, CoordinatorConfig};
use mock_player::{html, run_load, LoadConfig, LoadReport, PlayerConfig, ProgressMode};
use proto::logging::{Format, Output};
use tokio_util::sync::CancellationToken;

/// Headless Pixel Streaming player(s): join a streamer through a signalling
/// server, receive its media without decoding it, talk the data-channel
/// protocol, and measure. Exit code: 0 pass, 1 fail (reason printed), 2 usage
/// or setup error.
#[derive(Parser, Debug)]
#[command(name = "mock-player", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Signalling server player WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// Streamer id to subscribe to. Default: the only streamer listed (re-listed every second while none is).
    #[arg(long = "streamer", value_name = "ID")]
    streamer: Option<String>,
    /// Gather and accept only 127.0.0.1 host candidates and ignore the server's ICE servers.
    /// `--ice-loopback-only=false` uses real interfaces and the `peerConnectionOptions` of the server's `config`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    ice_loopback_only: bool,
    /// Video codecs the answer prefers, most preferred first, like a browser's
    /// `setCodecPreferences` (e.g. `--codec-preference vp9,h264`). Default: H.264 first, then the
    /// rest in Chromium's order, as Epic's frontend answers by default. The player receives h264,
    /// vp8, vp9 and av1 (frames, keyframes and picture size read without decoding).
    #[arg(long, value_name = "CODECS", value_delimiter = ',')]
    codec_preference: Vec<String>,
    /// Do not ask for retransmissions of lost packets (no RTCP NACK, no `nack` in the answer).
    /// By default players NACK, as browsers do.
    #[arg(long)]
    no_nack: bool,
    /// Put the player's peer connection on a bad network: delay, jitter (± around the delay,
    /// order kept), random loss and a rate limit, each direction, applied in the player's own UDP
    /// path (no netem or root needed), e.g. `--impair "delay=40ms,jitter=10ms,loss=2%,rate=8mbit"`.
    #[arg(long, value_name = "PROFILE", value_parser = parse_impairment)]
    impair: Option<proto::impairment::Impairment>,
    /// With --impair and --players: the share of players that get it (0..1, spread evenly over
    /// the players; the rest are clean). The report splits its figures by profile.
    #[arg(long, default_value_t = 1.0, value_name = "SHARE", value_parser = parse_share)]
    impair_share: f64,
    /// `all` (default) or `relay`: ICE through TURN relays only, as `iceTransportPolicy: "relay"`
    /// (the TURN servers are the `iceServers` of the server's `config`; with --ice-loopback-only,
    /// those on 127.0.0.1). A refused TURN credential fails the join with the server's reason.
    #[arg(long, default_value = "all", value_parser = ["all", "relay"])]
    ice_transport_policy: String,
    /// Send `layerPreference` (spatial,temporal) after answering, e.g. `--layer 1,0` (for SFUs).
    #[arg(long, value_name = "S,T", value_parser = parse_layer)]
    layer: Option<(i64, i64)>,
    /// When the streamer disconnects or the socket closes, wait for the streamer to come back and rejoin.
    #[arg(long)]
    reconnect: bool,
    /// Input events per second per player on the data channel (mouse moves, clicks, keys, UIInteraction); 0 = none.
    #[arg(long, default_value_t = 0.0, value_name = "N")]
    input_rate: f64,
    /// Send a LatencyTest and a DataChannelLatencyTest every second and measure round trips.
    #[arg(long)]
    latency_test: bool,
    /// Run for this many seconds (per player, from its start), then judge. Default: until --expect-frames is reached, or Ctrl-C.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Pass only if each player received at least N video frames (without --duration: stop as soon as it has).
    #[arg(long, value_name = "N")]
    expect_frames: Option<u64>,
    /// Pass only if each player's video frame rate was at least F.
    #[arg(long, value_name = "F")]
    min_fps: Option<f64>,
    /// Number of players in this process (one runtime, one WebRTC API object).
    #[arg(long, default_value_t = 1, value_name = "N")]
    players: usize,
    /// Players started per second.
    #[arg(long, default_value_t = 10.0, value_name = "R")]
    ramp: f64,
    /// At most this many joins in flight (started but not yet streaming or failed).
    #[arg(long, default_value_t = 50, value_name = "N")]
    max_joining: usize,
    /// Seconds a join may take (connect to first RTP; with --signalling-only, to the answer) before it fails.
    #[arg(long, default_value_t = 20.0, value_name = "SECS")]
    join_timeout: f64,
    /// No WebRTC at all: answer offers with a canned SDP and canned ICE candidates (signalling load tests).
    #[arg(long)]
    signalling_only: bool,
    /// Write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the report as a self-contained HTML page with charts to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Progress output: auto (an updating line on a terminal, plain lines otherwise), plain, off.
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "off"])]
    progress: String,
    /// Run across `mock-player agent` processes through this Redis (see --agents).
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// With --redis-url: wait until N idle agents are present and split the players over them.
    #[arg(long, default_value_t = 1, value_name = "N")]
    agents: usize,
    /// With --redis-url: wait at most this long for the agents.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    agents_timeout: f64,
    /// Redis key prefix (agents and coordinator must agree; lets several clusters share a Redis).
    #[arg(long, default_value = "mock-player", value_name = "PREFIX", global = true)]
    redis_prefix: String,
    /// With --redis-url: serve the live counters (per agent and total) as Prometheus metrics on ADDR.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Log filter (tracing-subscriber EnvFilter syntax), on stderr. This flag, when given, beats
    /// RUST_LOG, which beats the default: warn,webrtc=error,rtc=error (it keeps webrtc-rs's own
    /// teardown warnings quiet; a target matches by prefix, so `rtc` covers rtc_ice, rtc_sctp,
    /// rtc_dtls and the other crates of webrtc-rs 0.21's core).
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
}

/// The log filter without `--log` or `RUST_LOG`.
const DEFAULT_LOG: &str = "warn,webrtc=error,rtc=error";

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Wait for runs from a coordinator (`mock-player --redis-url … --agents N …`) and run a share of their players.
    Agent(AgentArgs),
}

#[derive(clap::Args, Debug)]
struct AgentArgs {
    /// The Redis the coordinator uses.
    #[arg(long, value_name = "URL")]
    redis_url: String,
    /// Name in reports. Default: host name and process id.
    #[arg(long)]
    name: Option<String>,
    /// Players this agent can hold; the coordinator splits players in proportion.
    #[arg(long, default_value_t = 400, value_name = "N")]
    capacity: usize,
    /// Serve this agent's live counters as Prometheus metrics on ADDR.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Also keep each run's raw per-player results here, as `{run}-{name}.json`.
    #[arg(long, value_name = "DIR")]
    keep_results: Option<PathBuf>,
}

fn parse_impairment(s: &str) -> Result<proto::impairment::Impairment, String> {
    s.parse().map_err(|e: proto::impairment::ImpairmentError| e.to_string())
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: a share between 0 and 1 (0.1 = every tenth player)")),
    }
}

fn parse_layer(s: &str) -> Result<(i64, i64), String> {
    let (a, b) = s.split_once(',').ok_or("expected S,T")?;
    Ok((
        a.trim().parse().map_err(|e| format!("spatial layer: {e}"))?,
        b.trim().parse().map_err(|e| format!("temporal layer: {e}"))?,
    ))
}

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("--{name} must be a non-negative number of seconds"))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let logs = proto::logging::init(cli.log.as_deref(), DEFAULT_LOG, Format::Text, Output::Stderr);
    if let Err(e) = logs {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mock-player: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::Agent(a)) = &cli.command {
        return run_agent(a, &cli.redis_prefix);
    }
    if cli.players == 0 {
        anyhow::bail!("--players must be at least 1");
    }
    let url = url::Url::parse(&cli.url).with_context(|| format!("--url {:?}", cli.url))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        anyhow::bail!("--url {:?}: the scheme must be ws or wss", cli.url);
    }
    let cfg = PlayerConfig {
        url: cli.url.clone(),
        streamer_id: cli.streamer.clone(),
        ice_loopback_only: cli.ice_loopback_only,
        layer: cli.layer,
        reconnect: cli.reconnect,
        input_rate: cli.input_rate.max(0.0),
        latency_test: cli.latency_test,
        duration: cli.duration.map(|d| secs("duration", d)).transpose()?,
        expect_frames: cli.expect_frames,
        stop_at_expected_frames: true,
        min_fps: cli.min_fps,
        join_timeout: secs("join-timeout", cli.join_timeout)?,
        list_interval: Duration::from_secs(1),
        signalling_only: cli.signalling_only,
        codec_preference: cli.codec_preference.clone(),
        nack: !cli.no_nack,
        impair: cli.impair,
        impair_share: cli.impair_share,
        relay_only: cli.ice_transport_policy == "relay",
    };
    let load = LoadConfig {
        players: cli.players,
        ramp: cli.ramp,
        max_joining: cli.max_joining.max(1),
        progress: match cli.progress.as_str() {
            "plain" => ProgressMode::Plain,
            "off" => ProgressMode::Off,
            _ => ProgressMode::Auto,
        },
        sample_interval: Duration::from_secs(1),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the tokio runtime")?;
    if let Some(redis_url) = &cli.redis_url {
        return run_distributed(&cli, redis_url, cfg, load, &rt);
    }
    if cli.metrics_addr.is_some() {
        anyhow::bail!("--metrics-addr needs --redis-url (a distributed run)");
    }
    let report = rt.block_on(async {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("mock-player: interrupted, finishing");
                c.cancel();
            }
        });
        run_load(cfg, load, cancel).await
    })?;
    print!("{}", report.to_text());
    if let Some(path) = &cli.report {
        let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.html {
        std::fs::write(path, html::render(&report)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(verdict(&report))
}

/// Exit code and last line: 2 for a bad URL, 0 when every player passed, 1 otherwise.
fn verdict(report: &LoadReport) -> ExitCode {
    if report.player_stats.iter().any(|p| p.error_kind.as_deref() == Some("bad_url")) {
        return ExitCode::from(2);
    }
    if report.all_passed() {
        println!("PASS");
        ExitCode::SUCCESS
    } else {
        let reason = report
            .failures
            .first()
            .map(|f| format!("{} player(s): {}", f.count, f.example))
            .unwrap_or_else(|| "no player ran".into());
        println!("FAIL: {reason}");
        ExitCode::from(1)
    }
}

/// Ctrl-C cancels the returned token.
fn on_ctrl_c(what: &'static str) -> CancellationToken {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("mock-player: interrupted, {what}");
            c.cancel();
        }
    });
    cancel
}

fn run_agent(a: &AgentArgs, prefix: &str) -> anyhow::Result<ExitCode> {
    let cfg = AgentConfig {
        redis_url: a.redis_url.clone(),
        prefix: prefix.to_string(),
        name: a.name.clone().unwrap_or_else(distributed::agent::default_name),
        capacity: a.capacity,
        metrics_addr: a.metrics_addr,
        lost_after: Duration::from_secs(5),
        results_dir: a.keep_results.clone(),
    };
    redis_url_ok(&cfg.redis_url)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the tokio runtime")?;
    rt.block_on(async {
        let stop = on_ctrl_c("agent stopping");
        distributed::run_agent(cfg, stop).await
    })
    .context("metrics endpoint")?;
    Ok(ExitCode::SUCCESS)
}

fn redis_url_ok(url: &str) -> anyhow::Result<()> {
    let u = url::Url::parse(url).with_context(|| format!("--redis-url {url:?}"))?;
    if !matches!(u.scheme(), "redis" | "rediss" | "unix" | "redis+unix") {
        anyhow::bail!("--redis-url {url:?}: the scheme must be redis (or rediss, unix)");
    }
    Ok(())
}

fn run_distributed(
    cli: &Cli,
    redis_url: &str,
    cfg: PlayerConfig,
    load: LoadConfig,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    redis_url_ok(redis_url)?;
    let mut c = CoordinatorConfig::new(redis_url, cli.agents.max(1), cfg, load.players);
    c.prefix = cli.redis_prefix.clone();
    c.agents_timeout = secs("agents-timeout", cli.agents_timeout)?;
    c.ramp = load.ramp;
    c.max_joining = load.max_joining;
    c.progress = load.progress;
    c.metrics_addr = cli.metrics_addr;
    let report = rt.block_on(async {
        let cancel = on_ctrl_c("stopping every agent's players");
        distributed::run_coordinator(c, cancel).await
    })?;
    print!("{}", report.report.to_text());
    print!("{}", distributed::merge::agents_text(&report.agents));
    if let Some(b) = report.redis_bytes {
        println!("redis traffic {} bytes ({:.0} per player)", b, b as f64 / report.report.players.max(1) as f64);
    }
    if let Some(path) = &cli.report {
        let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.html {
        std::fs::write(path, distributed::merge::html(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(verdict(&report.report))
}
