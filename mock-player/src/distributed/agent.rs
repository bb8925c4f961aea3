//! `mock-player agent`: a thin process around [`run_load_with`]. It
//! advertises itself in Redis, waits for a coordinator's plan, runs its share
//! of the players starting at the agreed moment, streams its live counters
//! once a second, sends every player's result at the end, and waits for the
//! next run. It reconnects to Redis by itself; a run whose coordinator has
//! gone (or whose Redis is unreachable) for `lost_after` is stopped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{LoadConfig, ProgressMode};
use crate::distributed::bus::{self, AgentInfo, Bus, BusError, RunPlan, ToAgent, ToCoordinator, Usage};
use crate::distributed::clock::now_ms;
use crate::distributed::metrics::{self, Board};
use crate::distributed::process;
use crate::distributed::wire::WireStats;
use crate::load::{run_load_with, LoadHooks};
use crate::report::Sample;

/// How an agent is started.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub redis_url: String,
    /// Key prefix shared with the coordinator.
    pub prefix: String,
    pub name: String,
    /// Players this agent can hold (the coordinator splits by it).
    pub capacity: usize,
    pub metrics_addr: Option<SocketAddr>,
    /// Stop a run when its coordinator's key is gone (or Redis unreachable) this long.
    pub lost_after: Duration,
    /// Also write each run's raw per-player results to `DIR/{run}-{name}.json`.
    pub results_dir: Option<std::path::PathBuf>,
}

/// Results per message: a few hundred KB at most.
const RESULTS_PER_MESSAGE: usize = 200;
/// Lists expire this long after their last push (a dead reader leaves no garbage).
pub(crate) const LIST_TTL: Duration = Duration::from_secs(600);

/// The run an agent is busy with.
struct Current {
    run: String,
    cancel: CancellationToken,
}

/// Default agent name: host name and process id.
pub fn default_name() -> String {
    format!("{}-{}", host_name(), std::process::id())
}

pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "agent".to_string())
}

/// Serve runs until `stop`. Only a metrics address that cannot be bound is an error.
pub async fn run_agent(cfg: AgentConfig, stop: CancellationToken) -> std::io::Result<()> {
    let board = Board::default();
    if let Some(addr) = cfg.metrics_addr {
        let bound = metrics::serve(addr, board.clone(), stop.clone()).await?;
        println!("agent {}: metrics on http://{bound}/metrics", cfg.name);
    }
    let current: Arc<Mutex<Option<Current>>> = Arc::default();
    let mut announced = false;
    while !stop.is_cancelled() {
        match serve(&cfg, &board, &current, &stop, &mut announced).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(agent = %cfg.name, error = %e, "agent: redis connection lost, reconnecting");
                println!("agent {}: redis unreachable ({e}), retrying", cfg.name);
                announced = false;
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    if let Ok(mut c) = current.lock() {
        if let Some(c) = c.take() {
            c.cancel.cancel();
        }
    }
    Ok(())
}

/// One connection's lifetime: heartbeat and inbox until an error or `stop`.
async fn serve(
    cfg: &AgentConfig,
    board: &Board,
    current: &Arc<Mutex<Option<Current>>>,
    stop: &CancellationToken,
    announced: &mut bool,
) -> Result<(), BusError> {
    let pop_wait = Duration::from_millis(500);
    let inbox_bus = Bus::connect(&cfg.redis_url, &cfg.prefix, pop_wait).await?;
    let bus = Bus::connect(&cfg.redis_url, &cfg.prefix, Duration::ZERO).await?;
    let keys = bus.keys.clone();
    heartbeat(&bus, cfg, current).await?;
    if !*announced {
        println!(
            "agent {}: capacity {}, waiting for runs on {} (prefix {:?})",
            cfg.name, cfg.capacity, cfg.redis_url, cfg.prefix
        );
        *announced = true;
    }
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    let inbox = keys.inbox(&cfg.name);
    loop {
        // The pop is never cancelled midway (a cancelled BLPOP could swallow a message).
        let popped = inbox_bus.pop(&inbox, pop_wait);
        tokio::pin!(popped);
        let text = loop {
            tokio::select! {
                r = &mut popped => break r?,
                _ = beat.tick() => heartbeat(&bus, cfg, current).await?,
            }
        };
        if stop.is_cancelled() {
            let _ = bus.del(&keys.agent(&cfg.name)).await;
            return Ok(());
        }
        let Some(text) = text else { continue };
        let Some(msg) = bus::decode::<ToAgent>(&text) else { continue };
        match msg {
            ToAgent::Ping { run, seq, t0 } => {
                let t1 = now_ms();
                let pong = ToCoordinator::Pong { agent: cfg.name.clone(), seq, t0, t1, t2: now_ms() };
                bus.push(&keys.events(&run), &pong, LIST_TTL).await?;
            }
            ToAgent::Stop { run } => {
                if let Ok(c) = current.lock() {
                    if let Some(c) = c.as_ref().filter(|c| c.run == run) {
                        println!("agent {}: run {run}: stop asked", cfg.name);
                        c.cancel.cancel();
                    }
                }
            }
            ToAgent::Start { run, plan } => {
                if !bus.exists(&keys.alive(&run)).await? {
                    tracing::warn!(%run, "agent: start for a run whose coordinator is gone, ignored");
                    continue;
                }
                let busy = current.lock().map(|c| c.as_ref().map(|c| c.run.clone())).unwrap_or_default();
                // Another coordinator's claim wins over a start from one that did not claim us.
                let claimed = bus.claimed_by(&cfg.name).await?.filter(|owner| *owner != run);
                if let Some(other) =
                    busy.map(|r| format!("busy with run {r}")).or(claimed.map(|r| format!("claimed by run {r}")))
                {
                    let reason = other;
                    bus.push(&keys.events(&run), &ToCoordinator::Refused { agent: cfg.name.clone(), reason }, LIST_TTL)
                        .await?;
                    continue;
                }
                let cancel = CancellationToken::new();
                if let Ok(mut c) = current.lock() {
                    *c = Some(Current { run: run.clone(), cancel: cancel.clone() });
                }
                heartbeat(&bus, cfg, current).await?;
                let (cfg, board, current, bus) = (cfg.clone(), board.clone(), current.clone(), bus.clone());
                tokio::spawn(async move {
                    run_one(&cfg, &bus, &board, &run, *plan, cancel).await;
                    if let Ok(mut c) = current.lock() {
                        *c = None;
                    }
                    println!("agent {}: waiting for the next run", cfg.name);
                });
            }
        }
    }
}

async fn heartbeat(bus: &Bus, cfg: &AgentConfig, current: &Arc<Mutex<Option<Current>>>) -> Result<(), BusError> {
    let run = current.lock().ok().and_then(|c| c.as_ref().map(|c| c.run.clone()));
    let info = AgentInfo {
        v: bus::VERSION,
        name: cfg.name.clone(),
        capacity: cfg.capacity,
        run,
        pid: std::process::id(),
        host: host_name(),
    };
    bus.set_for(&bus.keys.agent(&cfg.name), &serde_json::to_string(&info).unwrap_or_default(), bus::AGENT_TTL).await
}

fn usage(cpu0: f64) -> Usage {
    let (rss_bytes, peak_rss_bytes) = process::rss_bytes();
    Usage { cpu_secs: process::cpu_secs() - cpu0, rss_bytes, peak_rss_bytes }
}

/// Run one share of a run and report it.
async fn run_one(cfg: &AgentConfig, bus: &Bus, board: &Board, run: &str, plan: RunPlan, cancel: CancellationToken) {
    let cpu0 = process::cpu_secs();
    let events = bus.keys.events(run);
    let share = plan.share.clone();
    // The agreed moment on this machine's clock, as an Instant.
    let wait_ms = plan.start_at_ms + plan.offset_ms - now_ms();
    let start_at = Instant::now() + Duration::from_secs_f64(wait_ms.max(0.0) / 1000.0);
    println!(
        "agent {}: run {run}: players {}..{} at {:.2}/s, starting in {:.0} ms",
        cfg.name,
        share.first_index,
        share.first_index + share.players,
        share.ramp,
        wait_ms.max(0.0)
    );
    let load = LoadConfig {
        players: share.players,
        ramp: share.ramp,
        max_joining: share.max_joining,
        progress: ProgressMode::Off,
        sample_interval: Duration::from_secs(1),
    };
    let (tx, mut rx) = watch::channel(Sample::default());
    let hooks = LoadHooks { start_at: Some(start_at), first_index: share.first_index, samples: Some(tx) };

    // Live counters out, once a second; watch the coordinator.
    let progress_stop = CancellationToken::new();
    let contact_lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = {
        let (bus, board, name, events, stop, cancel, lost, lost_after) = (
            bus.clone(),
            board.clone(),
            cfg.name.clone(),
            events.clone(),
            progress_stop.clone(),
            cancel.clone(),
            contact_lost.clone(),
            cfg.lost_after,
        );
        let alive = bus.keys.alive(run);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_ok = Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                    _ = rx.changed() => {}
                }
                let sample = rx.borrow_and_update().clone();
                let u = usage(cpu0);
                board.set(&name, &sample, u, false);
                let msg = ToCoordinator::Progress { agent: name.clone(), sample, usage: u };
                let ok = bus.push(&events, &msg, LIST_TTL).await.is_ok() && bus.exists(&alive).await.unwrap_or(false);
                if ok {
                    last_ok = Instant::now();
                } else if last_ok.elapsed() >= lost_after && !cancel.is_cancelled() {
                    println!("agent {name}: coordinator or redis gone for {lost_after:?}, stopping the run");
                    lost.store(true, std::sync::atomic::Ordering::Relaxed);
                    cancel.cancel();
                }
            }
        })
    };

    // When a stop (the coordinator's, or lost contact) arrives, to say how long the players took.
    let stop_seen = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            cancel.cancelled().await;
            Instant::now()
        })
    };
    let result = run_load_with(plan.player.0, load, hooks, cancel.clone()).await;
    if cancel.is_cancelled() {
        if let Ok(at) = stop_seen.await {
            println!("agent {}: run {run}: players stopped {} ms after the stop", cfg.name, at.elapsed().as_millis());
        }
    } else {
        stop_seen.abort();
    }
    progress_stop.cancel();
    let _ = progress.await;
    if contact_lost.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let refused =
                ToCoordinator::Refused { agent: cfg.name.clone(), reason: format!("cannot run players: {e}") };
            let _ = bus.push(&events, &refused, LIST_TTL).await;
            return;
        }
    };
    let started_at_ms = now_ms() - report.elapsed_secs * 1000.0;
    if let Some(dir) = &cfg.results_dir {
        let path = dir.join(format!("{run}-{}.json", cfg.name));
        let written = serde_json::to_vec(&report.player_stats)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&path, json));
        if let Err(e) = written {
            println!("agent {}: writing {}: {e}", cfg.name, path.display());
        }
    }
    for chunk in report.player_stats.chunks(RESULTS_PER_MESSAGE) {
        let msg =
            ToCoordinator::Results { agent: cfg.name.clone(), players: chunk.iter().cloned().map(WireStats).collect() };
        if let Err(e) = bus.push(&events, &msg, LIST_TTL).await {
            println!("agent {}: run {run}: results not sent: {e}", cfg.name);
            return;
        }
    }
    let u = usage(cpu0);
    let done = ToCoordinator::Done {
        agent: cfg.name.clone(),
        players: report.player_stats.len(),
        elapsed_secs: report.elapsed_secs,
        started_at_ms,
        timeline: report.timeline.clone(),
        usage: u,
    };
    if let Some(last) = report.timeline.last() {
        board.set(&cfg.name, last, u, false);
    }
    match bus.push(&events, &done, LIST_TTL).await {
        Ok(()) => println!(
            "agent {}: run {run}: {} players, {} passed, {} failed in {:.1} s",
            cfg.name, report.players, report.passed, report.failed, report.elapsed_secs
        ),
        Err(e) => println!("agent {}: run {run}: results not sent: {e}", cfg.name),
    }
}
