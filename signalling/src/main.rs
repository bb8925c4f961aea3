//! The `signalling` binary: flags in, a running server out, until Ctrl-C or SIGTERM.
//!
//! Everything else lives in the library so tests and the harness run the same server.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

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
    let resolved = cli::resolve_full(cli).context("invalid configuration")?;
    init_tracing(&resolved.log_level, resolved.log_format)?;
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
    if let Some(addr) = handle.redirect_addr() {
        println!("redirecting http://{addr} to https");
    }

    stop.await?;
    tracing::info!("shutting down");
    handle.shutdown().await;
    Ok(())
}

/// Console logging at `--log_level_console` (a set `RUST_LOG` overrides it), as text or, with
/// `--log_format json`, one JSON object per line for log shippers.
fn init_tracing(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(&directives).with_context(|| format!("invalid RUST_LOG {directives:?}"))?
        }
        _ => EnvFilter::new(level),
    };
    match format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
    }
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
