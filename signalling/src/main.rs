//! The `signalling` binary: flags in, a running server out, until Ctrl-C or SIGTERM.
//!
//! Everything else lives in the library so tests and the harness run the same server.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use signalling::cli::{self, Cli, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    match serve(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole cause chain on one line, without a backtrace.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves the configuration, runs the server, and shuts it down on Ctrl-C or SIGTERM.
async fn serve(cli: Cli) -> anyhow::Result<()> {
    let level_flag_given = cli.settings.log_level_console.is_some();
    let resolved = cli::resolve_full(cli).context("invalid configuration")?;
    init_tracing(level_flag_given, &resolved.log_level, resolved.log_format)?;
    for warning in &resolved.warnings {
        tracing::warn!("{warning}");
    }
    // Listen for signals before binding, so a SIGTERM during start-up still shuts down cleanly.
    let stop = shutdown_signal()?;

    let handle = signalling::run(resolved.config).await.context("failed to start the signalling server")?;
    let (ws, http) = if handle.is_tls() { ("wss", "https") } else { ("ws", "http") };
    println!("streamer listening on {ws}://{}", handle.streamer_addr());
    println!("player listening on {http}://{} (WebSocket and HTTP)", handle.player_addr());
    println!("sfu listening on {ws}://{}", handle.sfu_addr());
    if let Some(addr) = handle.management_addr() {
        println!("management listening on http://{addr} (/api, /metrics, admin; keep it private)");
    }
    if let Some(addr) = handle.redirect_addr() {
        println!("redirecting http://{addr} to https");
    }

    stop.await?;
    tracing::info!("shutting down");
    handle.shutdown().await;
    Ok(())
}

/// Console logging under proto::logging's rule: `--log_level_console` on the command line beats
/// `RUST_LOG`, which beats the configured level (config file, else `info`); as text or, with
/// `--log_format json`, one JSON object per line for log shippers.
fn init_tracing(level_flag_given: bool, level: &str, format: LogFormat) -> anyhow::Result<()> {
    let format = match format {
        LogFormat::Text => proto::logging::Format::Text,
        LogFormat::Json => proto::logging::Format::Json,
    };
    let flag = level_flag_given.then_some(level);
    proto::logging::init(flag, level, format, proto::logging::Output::Stdout)?;
    Ok(())
}

/// A future that resolves on Ctrl-C (SIGINT), or on SIGTERM (what `docker stop` and systemd
/// send). On Unix the handlers are installed by this call, not when the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    })
}

/// A future that resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    Ok(async { tokio::signal::ctrl_c().await.context("cannot listen for Ctrl-C") })
}
