//! `bench`: signalling capacity and media load, as repeatable commands.
//! See `e2e/bench/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use e2e::bench::children::{PlayerChurnChild, PlayersChild, SfuChild, StreamerChild};
use e2e::bench::churn::ChurnOpts;
use e2e::bench::idle::IdleOpts;
use e2e::bench::joins::JoinsOpts;
use e2e::bench::latency::LatencyOpts;
use e2e::bench::media::MediaOpts;
use e2e::bench::soak::SoakOpts;
use e2e::bench::target::TargetOpts;
use e2e::bench::BenchReport;

/// Benchmarks of a Pixel Streaming signalling server (ours, or any other by URL) and of the
/// media path (mock streamer → players, directly and through the SFU). Every figure is the
/// median over --runs runs; the output names the machine's core count. Loopback only.
#[derive(Debug, Parser)]
#[command(
    name = "bench",
    version,
    after_help = "Examples:\n  \
bench idle --connections 50000\n  \
bench joins --concurrency 1000 --duration 30\n  \
bench latency --players 1000 --rates 1000,10000,50000\n  \
bench media --players 50,100,200,300\n  \
bench churn --peer streamer --warmup 1000 --cycles 10000\n  \
bench soak --duration 3600\n  \
bench joins --server-url ws://127.0.0.1:80 --streamer-url ws://127.0.0.1:8888 --server-pid 1234"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    target: TargetOpts,
    /// Runs per bench (figures are medians over them; at least 3 for figures you quote).
    #[arg(long, default_value_t = 3, global = true)]
    runs: usize,
    /// A few seconds per bench with tiny sizes: checks that the bench produces numbers (CI).
    #[arg(long, global = true)]
    smoke: bool,
    /// Also write the report(s) as JSON to FILE.
    #[arg(long, value_name = "FILE", global = true)]
    json: Option<PathBuf>,
    /// Also run the same bench, in this invocation, against another server (its player URL),
    /// and print each figure of both with the ratio ours / other.
    #[arg(long, value_name = "URL", global = true)]
    compare_url: Option<String>,
    /// Streamer URL of the compared server (default: port 8888 on its host).
    #[arg(long, value_name = "URL", global = true)]
    compare_streamer_url: Option<String>,
    /// SFU URL of the compared server (default: port 8889 on its host).
    #[arg(long, value_name = "URL", global = true)]
    compare_sfu_url: Option<String>,
    /// Process id of the compared server (for its memory and CPU).
    #[arg(long, value_name = "PID", global = true)]
    compare_pid: Option<u32>,
    /// Also run the same bench, in this invocation, against our server as a cluster of N
    /// nodes on Redis (see --nodes), and print each figure of both with the ratio.
    #[arg(long, value_name = "N", global = true, conflicts_with = "compare_url")]
    compare_nodes: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Server resident memory per idle player WebSocket (N connections).
    Idle(IdleOpts),
    /// Join throughput (joins/s) and server CPU seconds per 1,000 joins at a given concurrency.
    Joins(JoinsOpts),
    /// Streamer → player forwarding latency (p50/p99/max) at offered message rates.
    Latency(LatencyOpts),
    /// Mock streamer → N players, direct and through the SFU: delivery, first frame, CPU, memory.
    Media(MediaOpts),
    /// A long-lived peer (mock streamer or SFU) under join/leave churn: RSS, descriptors,
    /// threads and UDP sockets after a warm-up and at the end, growth per 1,000 joins.
    Churn(ChurnOpts),
    /// The whole stack (server, streamer, SFU, players joining and leaving) left running for
    /// --duration seconds (3600: the one-hour soak): every process's memory, descriptors and
    /// sockets over time.
    Soak(SoakOpts),
    /// Every signalling bench, then media (with each bench's defaults; not churn).
    All,
    #[command(hide = true)]
    ChildSignalling {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    #[command(hide = true)]
    ChildStreamer(StreamerChild),
    #[command(hide = true)]
    ChildSfu(SfuChild),
    #[command(hide = true)]
    ChildPlayers(PlayersChild),
    #[command(hide = true)]
    ChildPlayerChurn(PlayerChurnChild),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let quiet = matches!(
        cli.cmd,
        Cmd::ChildPlayers(_)
            | Cmd::ChildPlayerChurn(_)
            | Cmd::ChildSfu(_)
            | Cmd::ChildStreamer(_)
            | Cmd::ChildSignalling { .. }
    );
    if quiet {
        // No log flag: RUST_LOG, else errors only (proto::logging's rule).
        let output = proto::logging::Output::Stderr;
        if let Err(e) = proto::logging::init(None, "error", proto::logging::Format::Text, output) {
            eprintln!("bench: error: {e}");
            return ExitCode::from(2);
        }
    }
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `Ok(false)`: ran, but (in smoke mode) a figure was not a number.
fn run(cli: Cli) -> anyhow::Result<bool> {
    let runs = if cli.smoke { 1 } else { cli.runs.clamp(1, 100) };
    let rt = || tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime");
    let reports: Vec<BenchReport> = match cli.cmd {
        Cmd::ChildSignalling { args } => return e2e::bench::children::signalling(args).map(|()| true),
        Cmd::ChildStreamer(a) => return e2e::bench::children::streamer(a).map(|()| true),
        Cmd::ChildSfu(a) => return e2e::bench::children::sfu(a).map(|()| true),
        Cmd::ChildPlayers(a) => return e2e::bench::children::players(a).map(|()| true),
        Cmd::ChildPlayerChurn(a) => return e2e::bench::children::player_churn(a).map(|()| true),
        Cmd::Idle(_) | Cmd::Joins(_) | Cmd::Latency(_) | Cmd::Media(_) | Cmd::Churn(_) | Cmd::Soak(_) => {
            let rt = rt()?;
            let mut v = vec![rt.block_on(one(&cli.cmd, &cli.target, runs, cli.smoke))?];
            if let Some(url) = &cli.compare_url {
                print!("{}", v[0].to_text());
                let other = TargetOpts {
                    server_url: Some(url.clone()),
                    streamer_url: cli.compare_streamer_url.clone(),
                    sfu_url: cli.compare_sfu_url.clone(),
                    server_pid: cli.compare_pid,
                    spawn_ours: false,
                    server_bin: None,
                    server_arg: Vec::new(),
                    nodes: 1,
                };
                v.push(rt.block_on(one(&cli.cmd, &other, runs, cli.smoke))?);
                print!("{}", v[1].to_text());
                print!("{}", e2e::bench::compare_text(&v[0], &v[1]));
                return finish(&cli, &v).map(|()| v.iter().all(BenchReport::has_numbers));
            }
            if let Some(nodes) = cli.compare_nodes {
                print!("{}", v[0].to_text());
                let other = TargetOpts { nodes, ..cli.target.clone() };
                v.push(rt.block_on(one(&cli.cmd, &other, runs, cli.smoke))?);
                print!("{}", v[1].to_text());
                print!("{}", e2e::bench::compare_text(&v[0], &v[1]));
                return finish(&cli, &v).map(|()| v.iter().all(BenchReport::has_numbers));
            }
            v
        }
        Cmd::All => {
            let rt = rt()?;
            let (t, s) = (&cli.target, cli.smoke);
            let mut v = Vec::new();
            v.push(rt.block_on(e2e::bench::idle::run(t, &parse_default::<IdleOpts>("idle"), runs, s))?);
            print!("{}", v[0].to_text());
            v.push(rt.block_on(e2e::bench::joins::run(t, &parse_default::<JoinsOpts>("joins"), runs, s))?);
            print!("{}", v[1].to_text());
            v.push(rt.block_on(e2e::bench::latency::run(t, &parse_default::<LatencyOpts>("latency"), runs, s))?);
            print!("{}", v[2].to_text());
            v.push(rt.block_on(e2e::bench::media::run(t, &parse_default::<MediaOpts>("media"), runs, s))?);
            v
        }
    };
    if let Some(r) = reports.last() {
        print!("{}", r.to_text());
    }
    finish(&cli, &reports)?;
    Ok(reports.iter().all(BenchReport::has_numbers))
}

async fn one(cmd: &Cmd, t: &TargetOpts, runs: usize, smoke: bool) -> anyhow::Result<BenchReport> {
    match cmd {
        Cmd::Idle(o) => e2e::bench::idle::run(t, o, runs, smoke).await,
        Cmd::Joins(o) => e2e::bench::joins::run(t, o, runs, smoke).await,
        Cmd::Latency(o) => e2e::bench::latency::run(t, o, runs, smoke).await,
        Cmd::Media(o) => e2e::bench::media::run(t, o, runs, smoke).await,
        Cmd::Churn(o) => e2e::bench::churn::run(t, o, runs, smoke).await,
        Cmd::Soak(o) => e2e::bench::soak::run(t, o, smoke).await,
        _ => anyhow::bail!("not a bench"),
    }
}

/// Write the JSON report(s).
fn finish(cli: &Cli, reports: &[BenchReport]) -> anyhow::Result<()> {
    if let Some(path) = &cli.json {
        let value =
            if reports.len() == 1 { serde_json::to_value(&reports[0])? } else { serde_json::to_value(reports)? };
        std::fs::write(path, serde_json::to_string_pretty(&value)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A bench's options at their defaults.
fn parse_default<T: clap::FromArgMatches + clap::Args>(name: &'static str) -> T {
    let cmd = T::augment_args(clap::Command::new(name));
    let m = cmd.get_matches_from([name]);
    match T::from_arg_matches(&m) {
        Ok(t) => t,
        Err(e) => e.exit(),
    }
}
