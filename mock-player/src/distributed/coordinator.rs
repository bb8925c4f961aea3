//! The coordinator (`mock-player --redis-url … --agents N`): waits for N idle
//! agents, measures each one's clock offset, splits the players by capacity,
//! sends every agent its plan with one agreed start, prints live progress per
//! agent and in total once a second, gives up on agents it stops hearing
//! from (their players fail as "agent lost"), and merges everything into one
//! report. Ctrl-C stops every agent's players and still produces the report.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{PlayerConfig, ProgressMode};
use crate::distributed::agent::LIST_TTL;
use crate::distributed::bus::{self, AgentInfo, Bus, BusError, RunPlan, ToAgent, ToCoordinator};
use crate::distributed::clock::{self, now_ms, Exchange};
use crate::distributed::merge::{self, AgentResult, DistributedReport, Finished, Lost};
use crate::distributed::metrics::{self, Board};
use crate::distributed::plan;
use crate::distributed::wire::WireConfig;
use crate::report::Sample;

/// A distributed run.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub redis_url: String,
    pub prefix: String,
    /// Wait for this many idle agents…
    pub agents: usize,
    /// …at most this long.
    pub agents_timeout: Duration,
    pub player: PlayerConfig,
    pub players: usize,
    /// Overall players per second.
    pub ramp: f64,
    /// Overall joins in flight.
    pub max_joining: usize,
    pub progress: ProgressMode,
    pub metrics_addr: Option<SocketAddr>,
    /// An agent not heard from this long is lost.
    pub lost_after: Duration,
    /// Ping/pong exchanges per agent for its clock offset.
    pub clock_exchanges: u32,
}

impl CoordinatorConfig {
    pub fn new(redis_url: &str, agents: usize, player: PlayerConfig, players: usize) -> CoordinatorConfig {
        CoordinatorConfig {
            redis_url: redis_url.to_string(),
            prefix: "mock-player".to_string(),
            agents,
            agents_timeout: Duration::from_secs(60),
            player,
            players,
            ramp: 10.0,
            max_joining: 50,
            progress: ProgressMode::Plain,
            metrics_addr: None,
            lost_after: Duration::from_secs(5),
            clock_exchanges: 5,
        }
    }
}

/// Why a distributed run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(
        "only {free} of {wanted} agents free after {waited:?} (prefix {prefix:?}); {}",
        describe_others(busy, held)
    )]
    NotEnoughAgents {
        free: usize,
        wanted: usize,
        waited: Duration,
        prefix: String,
        /// Agents running another run: `name (run id)`.
        busy: Vec<String>,
        /// Idle agents claimed by another coordinator: `name (run id)`.
        held: Vec<String>,
    },
    #[error("agent {0} did not answer the clock pings")]
    AgentSilent(String),
    #[error("interrupted while waiting for agents")]
    Interrupted,
    #[error("metrics endpoint: {0}")]
    Metrics(#[from] std::io::Error),
}

/// Run across agents; `cancel` (Ctrl-C) stops every agent's players and
/// still returns the merged report.
pub async fn run_coordinator(
    cfg: CoordinatorConfig,
    cancel: CancellationToken,
) -> Result<DistributedReport, CoordinatorError> {
    let bus = Bus::connect(&cfg.redis_url, &cfg.prefix, Duration::ZERO).await?;
    let keys = bus.keys.clone();
    let run = format!("{:016x}", rand::random::<u64>());
    let done = CancellationToken::new();
    let _done_guard = done.clone().drop_guard();
    let board = Board::default();
    if let Some(addr) = cfg.metrics_addr {
        let bound = metrics::serve(addr, board.clone(), done.clone()).await?;
        println!("coordinator: metrics on http://{bound}/metrics");
    }
    // "This run is alive": agents stop a run whose key has expired.
    bus.set_for(&keys.alive(&run), "1", bus::AGENT_TTL).await?;
    {
        let (bus, key, done) = (bus.clone(), keys.alive(&run), done.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while tokio::select! { _ = done.cancelled() => false, _ = tick.tick() => true } {
                let _ = bus.set_for(&key, "1", bus::AGENT_TTL).await;
            }
            let _ = bus.del(&key).await;
        });
    }
    let agents = wait_for_agents(&bus, &cfg, &run, &cancel).await?;
    let names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
    let result = drive(&cfg, &bus, &run, &agents, &board, &done, &cancel).await;
    // The agents are free for other coordinators (a claim would also expire by itself).
    let _ = bus.release(&names, &run).await;
    result
}

/// The run itself, once its agents are claimed.
async fn drive(
    cfg: &CoordinatorConfig,
    bus: &Bus,
    run: &str,
    agents: &[AgentInfo],
    board: &Board,
    done: &CancellationToken,
    cancel: &CancellationToken,
) -> Result<DistributedReport, CoordinatorError> {
    let keys = bus.keys.clone();
    let run = run.to_string();
    let bytes0 = bus.net_bytes().await.ok();

    // Every message of this run, popped by one task so that no pop is ever
    // cancelled halfway (that could lose a message).
    let (tx, mut inbox) = mpsc::unbounded_channel::<(ToCoordinator, f64)>();
    {
        let rx_bus = Bus::connect(&cfg.redis_url, &cfg.prefix, Duration::from_millis(500)).await?;
        let (events, done) = (keys.events(&run), done.clone());
        tokio::spawn(async move {
            while !done.is_cancelled() {
                match rx_bus.pop(&events, Duration::from_millis(500)).await {
                    Ok(Some(text)) => {
                        let at = now_ms();
                        if let Some(m) = bus::decode::<ToCoordinator>(&text) {
                            if tx.send((m, at)).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "coordinator: redis pop failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
    }

    let offsets = measure_clocks(bus, &run, agents, cfg.clock_exchanges, &mut inbox).await?;
    // Renew the claims for the moment the agents take the run (the clock pings took a while).
    let names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
    bus.claim(&names, &run, names.len(), CLAIM_TTL).await?;
    let capacities: Vec<usize> = agents.iter().map(|a| a.capacity).collect();
    let total_capacity: usize = capacities.iter().sum();
    if cfg.players > total_capacity {
        println!("coordinator: warning: {} players exceed the agents' capacity {total_capacity}", cfg.players);
    }
    let shares = plan::split(cfg.players, cfg.ramp, cfg.max_joining, &capacities);
    let worst_rtt = offsets.iter().map(|o| o.round_trip_ms).fold(0.0, f64::max);
    let start_at_ms = now_ms() + 500.0 + 2.0 * worst_rtt;
    let mut results: Vec<AgentResult> = Vec::new();
    let mut last_seen: Vec<Instant> = Vec::new();
    for ((a, share), offset) in agents.iter().zip(&shares).zip(&offsets) {
        let plan = RunPlan {
            player: WireConfig(cfg.player.clone()),
            share: share.clone(),
            start_at_ms,
            offset_ms: offset.offset_ms,
        };
        bus.push(&keys.inbox(&a.name), &ToAgent::Start { run: run.clone(), plan: Box::new(plan) }, LIST_TTL).await?;
        println!(
            "coordinator: {}: players {}..{} ({:.2}/s), clock offset {:+.1} ms ±{:.1}",
            a.name,
            share.first_index,
            share.first_index + share.players,
            share.ramp,
            offset.offset_ms,
            offset.round_trip_ms / 2.0
        );
        results.push(AgentResult::new(&a.name, a.capacity, share.clone(), *offset));
        last_seen.push(Instant::now());
    }
    let index: BTreeMap<String, usize> = agents.iter().enumerate().map(|(i, a)| (a.name.clone(), i)).collect();
    let since_start = || (now_ms() - start_at_ms) / 1000.0;

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut stopping: Option<Instant> = None;
    loop {
        if results.iter().all(|r| r.finished.is_some() || r.lost.is_some()) {
            break;
        }
        tokio::select! {
            _ = cancel.cancelled(), if stopping.is_none() => {
                println!("coordinator: interrupted, stopping every agent's players");
                stopping = Some(Instant::now());
                for r in results.iter().filter(|r| r.finished.is_none() && r.lost.is_none()) {
                    let _ = bus.push(&keys.inbox(&r.name), &ToAgent::Stop { run: run.clone() }, LIST_TTL).await;
                }
            }
            m = inbox.recv() => {
                let Some((m, _)) = m else { break };
                let Some(&i) = index.get(m.agent()) else { continue };
                let r = &mut results[i];
                if r.lost.is_some() || r.finished.is_some() {
                    continue;
                }
                last_seen[i] = Instant::now();
                match m {
                    ToCoordinator::Progress { sample, usage, .. } => {
                        r.usage = usage;
                        board.set(&r.name, &sample, usage, false);
                        if sample.t_secs > 0.0 {
                            r.live.push(sample);
                        }
                    }
                    ToCoordinator::Results { players, .. } => r.players.extend(players.into_iter().map(|p| p.0)),
                    ToCoordinator::Done { elapsed_secs, started_at_ms, timeline, usage, .. } => {
                        r.usage = usage;
                        r.finished = Some(Finished { elapsed_secs, started_at_ms, timeline });
                    }
                    ToCoordinator::Refused { reason, .. } => {
                        println!("coordinator: {} refused the run: {reason}", r.name);
                        r.lost = Some(Lost { at_secs: since_start(), reason: format!("refused: {reason}") });
                    }
                    ToCoordinator::Pong { .. } => {}
                }
            }
            _ = tick.tick() => {
                let t = since_start();
                for (r, seen) in results.iter_mut().zip(&last_seen) {
                    if r.finished.is_some() || r.lost.is_some() {
                        continue;
                    }
                    let silent = seen.elapsed();
                    let after_stop = stopping.is_some_and(|s| s.elapsed() > Duration::from_secs(10));
                    if silent >= cfg.lost_after || after_stop {
                        let reason = if after_stop {
                            "no result 10 s after the stop".to_string()
                        } else {
                            format!("no message for {:.1} s", silent.as_secs_f64())
                        };
                        println!("coordinator: agent {} lost at {t:.1} s: {reason}", r.name);
                        r.lost = Some(Lost { at_secs: t, reason });
                        board.set(&r.name, &r.live.last().cloned().unwrap_or_default(), r.usage, true);
                    }
                }
                if cfg.progress != ProgressMode::Off && t >= 0.0 {
                    print_progress(t, cfg.players, &results);
                }
                board.set("all", &total(&results), Default::default(), false);
            }
        }
    }
    done.cancel();
    let elapsed = since_start().max(0.0);
    let mut report = merge::merge(&results, start_at_ms, elapsed, cfg.player.signalling_only);
    if let (Some(b0), Ok(b1)) = (bytes0, bus.net_bytes().await) {
        report.redis_bytes = Some(b1.saturating_sub(b0));
    }
    let _ = bus.del(&keys.events(&run)).await;
    Ok(report)
}

/// The latest live sample of every agent, summed.
fn total(results: &[AgentResult]) -> Sample {
    let mut s = Sample::default();
    for r in results {
        if let Some(l) = r.live.last() {
            s.t_secs = s.t_secs.max(l.t_secs);
            s.started += l.started;
            s.joining += l.joining;
            s.streaming += l.streaming;
            s.failed += l.failed;
            s.done += l.done;
            s.fps += l.fps;
            s.bitrate_bps += l.bitrate_bps;
        }
    }
    s
}

fn print_progress(t: f64, players: usize, results: &[AgentResult]) {
    let s = total(results);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", s.progress_line(t, players));
    for r in results {
        let l = r.live.last().cloned().unwrap_or_default();
        let state = match (&r.lost, &r.finished) {
            (Some(_), _) => "  LOST",
            (_, Some(_)) => "  finished",
            _ => "",
        };
        let _ = writeln!(
            out,
            "          {:<14} started {}/{}  joining {}  streaming {}  failed {}  done {}  | {:.0} fps{state}",
            r.name, l.started, r.share.players, l.joining, l.streaming, l.failed, l.done, l.fps
        );
    }
}

/// How long a claim on an agent lasts unless renewed: long enough for the clock pings before
/// the start, short enough that a coordinator that died frees its agents soon.
const CLAIM_TTL: Duration = Duration::from_secs(15);

fn describe_others(busy: &[String], held: &[String]) -> String {
    if busy.is_empty() && held.is_empty() {
        return "no other agent is present: start more `mock-player agent`s or lower --agents".to_string();
    }
    let mut parts = Vec::new();
    if !busy.is_empty() {
        parts.push(format!("{} running another run: {}", busy.len(), busy.join(", ")));
    }
    if !held.is_empty() {
        parts.push(format!("{} claimed by another coordinator: {}", held.len(), held.join(", ")));
    }
    parts.join("; ")
}

/// Waits until `--agents` idle agents can be claimed for this run (all at once, see
/// [`Bus::claim`]), so two coordinators never share or split agents.
async fn wait_for_agents(
    bus: &Bus,
    cfg: &CoordinatorConfig,
    run: &str,
    cancel: &CancellationToken,
) -> Result<Vec<AgentInfo>, CoordinatorError> {
    let t0 = Instant::now();
    let wanted = cfg.agents.max(1);
    let mut shown = None;
    loop {
        let present = bus.agents().await?;
        let idle: Vec<String> = present.iter().filter(|a| a.run.is_none()).map(|a| a.name.clone()).collect();
        let claimed = bus.claim(&idle, run, wanted, CLAIM_TTL).await?;
        if !claimed.is_empty() {
            let chosen: Vec<AgentInfo> = present.into_iter().filter(|a| claimed.contains(&a.name)).collect();
            println!("coordinator: {} agents: {}", chosen.len(), claimed.join(", "));
            return Ok(chosen);
        }
        let busy: Vec<String> =
            present.iter().filter_map(|a| a.run.as_ref().map(|r| format!("{} (run {r})", a.name))).collect();
        let mut held = Vec::new();
        for name in &idle {
            if let Some(other) = bus.claimed_by(name).await?.filter(|o| o != run) {
                held.push(format!("{name} (run {other})"));
            }
        }
        let free = idle.len() - held.len();
        if shown != Some((free, busy.len(), held.len())) {
            println!(
                "coordinator: waiting for agents: {free}/{wanted} free ({} busy, {} claimed by another coordinator)",
                busy.len(),
                held.len()
            );
            shown = Some((free, busy.len(), held.len()));
        }
        if t0.elapsed() >= cfg.agents_timeout {
            return Err(CoordinatorError::NotEnoughAgents {
                free,
                wanted,
                waited: cfg.agents_timeout,
                prefix: cfg.prefix.clone(),
                busy,
                held,
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(CoordinatorError::Interrupted),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// `exchanges` rounds of ping/pong with every agent; the best exchange of each.
async fn measure_clocks(
    bus: &Bus,
    run: &str,
    agents: &[AgentInfo],
    exchanges: u32,
    inbox: &mut mpsc::UnboundedReceiver<(ToCoordinator, f64)>,
) -> Result<Vec<clock::Offset>, CoordinatorError> {
    let mut got: Vec<Vec<Exchange>> = vec![Vec::new(); agents.len()];
    for seq in 0..exchanges.max(1) {
        for a in agents {
            let ping = ToAgent::Ping { run: run.to_string(), seq, t0: now_ms() };
            bus.push(&bus.keys.inbox(&a.name), &ping, LIST_TTL).await?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while got.iter().any(|g| g.len() <= seq as usize) {
            let m = tokio::time::timeout_at(deadline, inbox.recv()).await;
            match m {
                Ok(Some((ToCoordinator::Pong { agent, seq: s, t0, t1, t2 }, t3))) if s == seq => {
                    if let Some(i) = agents.iter().position(|a| a.name == agent) {
                        if got[i].len() == seq as usize {
                            got[i].push(Exchange { t0, t1, t2, t3 });
                        }
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    let silent = agents.iter().zip(&got).find(|(_, g)| g.len() <= seq as usize);
                    return Err(CoordinatorError::AgentSilent(silent.map_or(String::new(), |(a, _)| a.name.clone())));
                }
            }
        }
    }
    Ok(got.iter().map(|g| clock::best(g).unwrap_or_default()).collect())
}
