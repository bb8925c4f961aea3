//! `harness`: the one-command local Pixel Streaming stack.
//!
//! Starts the signalling server, mock streamer(s), optionally an SFU and mock
//! players, all in this process on 127.0.0.1, prints what runs and the URL
//! to open, shows live status, and stops everything on Ctrl-C.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use e2e::topology::{PlayerGroup, SfuSpec, Topology};

/// Run a local Pixel Streaming stack: signalling server, mock streamer, and
/// optionally an SFU and mock players, on 127.0.0.1.
///
/// Open the printed URL in a browser to watch the live test pattern and click
/// into it (clicks reach the mock streamer as MouseDown input).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// A topology file (TOML or JSON) describing streamers, SFU and players;
    /// the flags below then only override the ports.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Player port: the browser URL and the players' WebSocket.
    #[arg(long, default_value_t = 8080)]
    player_port: u16,

    /// Streamer port (Unreal Engine connects here with -PixelStreamingURL).
    #[arg(long, default_value_t = 8888)]
    streamer_port: u16,

    /// SFU port.
    #[arg(long, default_value_t = 8889)]
    sfu_port: u16,

    /// Number of mock streamers (DefaultStreamer, DefaultStreamer1, …).
    #[arg(long, default_value_t = 1)]
    streamers: usize,

    /// Number of headless mock players to run against the stack.
    #[arg(long, default_value_t = 0)]
    players: usize,

    /// Put an SFU between the first streamer and the mock players (the
    /// streamer then offers it three simulcast layers).
    #[arg(long)]
    sfu: bool,

    /// Video size and rate of the mock streamers.
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 720)]
    height: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,

    /// Log each input message the streamer decodes (clicks, keys, …).
    #[arg(long)]
    print_input: bool,

    /// Signalling nodes: with 2 or more, a cluster on a Redis the harness starts (needs
    /// redis-server). The streamers join node a; the SFU and mock players the last node,
    /// so everything between them crosses Redis. Node i listens on each port + 100 × i.
    #[arg(long, default_value_t = 1, value_name = "N")]
    nodes: usize,

    /// Seconds between status lines (0 = no status).
    #[arg(long, default_value_t = 2)]
    status_interval: u64,

    /// Put the mock players on a bad network, as `mock-player --impair` does:
    /// e.g. `--impair "delay=40ms,jitter=10ms,loss=2%,rate=8mbit"` (with --players;
    /// in a topology file each player group has its own `impair` key).
    #[arg(long, value_name = "PROFILE")]
    impair: Option<String>,
}

fn topology_from(cli: &Cli) -> anyhow::Result<Topology> {
    let mut topology = match &cli.config {
        Some(path) => Topology::load(path)?,
        None => {
            let mut t = Topology::default();
            let streamer = &mut t.streamers[0];
            streamer.count = cli.streamers.max(1);
            streamer.width = cli.width;
            streamer.height = cli.height;
            streamer.fps = cli.fps;
            streamer.print_input = cli.print_input;
            streamer.simulcast = cli.sfu;
            if cli.sfu {
                t.sfu = Some(SfuSpec { streamer: Some(streamer.id.clone()), ..SfuSpec::default() });
            }
            if cli.players > 0 {
                let watch = if cli.sfu { Some("SFU".to_string()) } else { Some(streamer.id.clone()) };
                t.players.push(PlayerGroup {
                    streamer: watch,
                    count: cli.players,
                    impair: cli.impair.clone(),
                    ..PlayerGroup::default()
                });
            } else if cli.impair.is_some() {
                anyhow::bail!("--impair applies to the mock players: add --players N");
            }
            t
        }
    };
    if cli.config.is_some() && cli.impair.is_some() {
        anyhow::bail!("--impair with --config: set `impair` on the topology's player groups instead");
    }
    topology.signalling.player_port = cli.player_port;
    topology.signalling.streamer_port = cli.streamer_port;
    topology.signalling.sfu_port = cli.sfu_port;
    if cli.nodes > 1 || topology.signalling.nodes == 0 {
        topology.signalling.nodes = cli.nodes;
    }
    Ok(topology)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // No log flag: RUST_LOG, else the default (proto::logging's rule).
    // webrtc-rs warns about routine things (a browser's unknown DTLS
    // extensions, ICE pairs still being gathered): keep the console for ours.
    // (`webrtc` and `rtc` match by prefix: every crate of webrtc-rs 0.21.)
    let default = "warn,webrtc=error,rtc=error,input=info";
    let output = proto::logging::Output::Stderr;
    if let Err(e) = proto::logging::init(None, default, proto::logging::Format::Text, output) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let topology = topology_from(&cli)?;
    let running = topology.start().await.context("starting the stack")?;
    let running_since = std::time::Instant::now();
    let player_addr = running.player_server().player_addr();
    println!("Pixel Streaming local stack is up:");
    let cluster = running.servers().count() > 1;
    for (i, node) in running.servers().enumerate() {
        let name = if cluster { format!("node {}", e2e::topology::node_name(i)) } else { "signalling".into() };
        println!(
            "  {name:<10}  streamers ws://{}  players ws://{}  SFUs ws://{}  page http://{}/",
            node.streamer_addr(),
            node.player_addr(),
            node.sfu_addr(),
            node.player_addr()
        );
    }
    if cluster {
        println!("              (one cluster on a Redis started for it; any node lists every streamer,");
        println!("               matchmaking: http://{player_addr}/match)");
    }
    for id in topology.streamer_ids() {
        let spec = &topology.streamers[0];
        let codecs = if spec.codecs.is_empty() { "H.264, VP8, VP9, AV1".to_string() } else { spec.codecs.join(", ") };
        println!("  streamer    {id} (mock, {}x{}, offers {codecs})", spec.width, spec.height);
    }
    if let Some(sfu) = &topology.sfu {
        println!("  sfu         {} forwarding {}", sfu.id, sfu.streamer.as_deref().unwrap_or("the first streamer"));
    }
    if !running.players.is_empty() {
        println!("  players     {} headless mock players", running.players.len());
    }
    println!();
    println!("Open http://{player_addr}/ in a browser to watch (REST: http://{player_addr}/api/status).");
    println!("Press Ctrl-C to stop.");

    let mut status = (cli.status_interval > 0).then(|| tokio::time::interval(Duration::from_secs(cli.status_interval)));
    let terminal = std::io::stdout().is_terminal();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = async { status.as_mut().expect("guarded").tick().await }, if status.is_some() => {
                let line = status_line(&running);
                if terminal {
                    print!("\r\x1b[2K{line}");
                    let _ = std::io::stdout().flush();
                } else {
                    println!("{line}");
                }
            }
        }
    }
    println!("\nstopping…");
    let started = running_since.elapsed().as_secs_f64();
    let players = running.stop().await;
    if !players.is_empty() {
        // What the mock players got (latency, freezes, repair traffic; by network profile).
        let report = mock_player::LoadReport::build(players, Vec::new(), started, false);
        print!("{}", report.to_text());
    }
    println!("stopped");
    Ok(())
}

fn status_line(running: &e2e::Running) -> String {
    // Each node's own streamers and connections, summed over the nodes.
    let (mut streamers, mut viewers, mut connections) = (0, 0, 0);
    for node in running.servers() {
        let snapshot = node.snapshot();
        streamers += snapshot.streamers.len();
        viewers += snapshot.streamers.iter().map(|s| s.subscribers.len()).sum::<usize>();
        connections += node.connection_count();
    }
    let mut line = format!("streamers {streamers}  subscribers {viewers}  connections {connections}");
    if !running.players.is_empty() {
        line.push_str(&format!("  mock players streaming {}/{}", running.players_streaming(), running.players.len()));
    }
    let stats: Vec<_> = running.streamers.iter().flat_map(|s| s.stats().streamers).collect();
    let frames: u64 = stats.iter().map(|s| s.frames_encoded).sum();
    let inputs: u64 = stats.iter().map(|s| s.totals.input_messages).sum();
    line.push_str(&format!("  frames encoded {frames}  input messages {inputs}"));
    line
}
