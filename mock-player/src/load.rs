//! The load scheduler: starts players at a ramp with a bounded number of joins
//! in flight, samples their live counters (progress line, timeline) and
//! aggregates their stats into a [`LoadReport`]. One player is the same code
//! with `players = 1`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{LoadConfig, PlayerConfig, ProgressMode};
use crate::error::PlayerError;
use crate::live::{Live, Phase};
use crate::player::Player;
use crate::report::{LoadReport, Sample};
use crate::rtc::RtcContext;

/// Run `load.players` players with `cfg` until they finish (duration,
/// expected frames, failure) or `cancel` fires.
pub async fn run_load(
    cfg: PlayerConfig,
    load: LoadConfig,
    cancel: CancellationToken,
) -> Result<LoadReport, PlayerError> {
    run_load_with(cfg, load, LoadHooks::default(), cancel).await
}

/// What a load agent changes in a run (the default is a plain run).
#[derive(Debug, Default)]
pub struct LoadHooks {
    /// Start the ramp at this instant instead of now (agents agree on it).
    pub start_at: Option<Instant>,
    /// The first player's index: these players are `first_index..first_index + players` of a larger run.
    pub first_index: usize,
    /// Receives every sample of the live counters (once per `sample_interval`).
    pub samples: Option<tokio::sync::watch::Sender<Sample>>,
}

/// [`run_load`] with [`LoadHooks`].
pub async fn run_load_with(
    cfg: PlayerConfig,
    load: LoadConfig,
    hooks: LoadHooks,
    cancel: CancellationToken,
) -> Result<LoadReport, PlayerError> {
    // One context per network profile: clean, and `--impair`'s for the
    // players `impair_share` picks.
    let (clean, impaired) = if cfg.signalling_only {
        (None, None)
    } else {
        let impaired =
            cfg.impair.filter(|i| !i.is_none()).map(|i| RtcContext::for_config(&cfg, Some(i))).transpose()?;
        (Some(RtcContext::for_config(&cfg, None)?), impaired)
    };
    let signalling_only = cfg.signalling_only;
    let cfg = Arc::new(cfg);
    if let Some(at) = hooks.start_at {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
        }
    }
    let start = Instant::now();
    let lives: Arc<Vec<Arc<Live>>> = Arc::new((0..load.players).map(|_| Arc::new(Live::default())).collect());
    let started = Arc::new(AtomicUsize::new(0));

    let sampler_stop = CancellationToken::new();
    let sampler =
        tokio::spawn(sample(lives.clone(), started.clone(), load.clone(), start, sampler_stop.clone(), hooks.samples));

    let joining = Arc::new(Semaphore::new(load.max_joining.max(1)));
    let mut set = JoinSet::new();
    let ramp = if load.ramp > 0.0 { load.ramp } else { f64::INFINITY };
    for (i, live) in lives.iter().enumerate() {
        let at = start + Duration::from_secs_f64(i as f64 / ramp);
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            p = async {
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                joining.clone().acquire_owned().await
            } => match p { Ok(p) => p, Err(_) => break },
        };
        let index = hooks.first_index + i;
        let rtc = match cfg.impairment_of(index) {
            Some(_) => impaired.clone(),
            None => clean.clone(),
        };
        let player = Player::new(index, cfg.clone(), rtc, live.clone());
        let c = cancel.clone();
        let started_at = start.elapsed().as_secs_f64();
        started.fetch_add(1, Ordering::Relaxed);
        set.spawn(async move {
            let mut s = player.run(c, Some(permit)).await;
            s.started_at_secs = started_at;
            s
        });
    }
    let mut stats = Vec::with_capacity(load.players);
    while let Some(r) = set.join_next().await {
        match r {
            Ok(s) => stats.push(s),
            Err(e) => tracing::error!(error = %e, "player task panicked"),
        }
    }
    sampler_stop.cancel();
    let timeline = sampler.await.unwrap_or_default();
    Ok(LoadReport::build(stats, timeline, start.elapsed().as_secs_f64(), signalling_only))
}

async fn sample(
    lives: Arc<Vec<Arc<Live>>>,
    started: Arc<AtomicUsize>,
    load: LoadConfig,
    start: Instant,
    stop: CancellationToken,
    out: Option<tokio::sync::watch::Sender<Sample>>,
) -> Vec<Sample> {
    let tty = load.progress == ProgressMode::Auto && std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(load.sample_interval);
    tick.tick().await;
    let mut timeline = Vec::new();
    let (mut last_frames, mut last_bytes, mut last_t) = (0u64, 0u64, Instant::now());
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        let n = started.load(Ordering::Relaxed).min(lives.len());
        let mut s = Sample { t_secs: start.elapsed().as_secs_f64(), started: n, ..Default::default() };
        let (mut frames, mut bytes) = (0u64, 0u64);
        for l in &lives[..n] {
            match l.phase() {
                Phase::Waiting | Phase::Joining => s.joining += 1,
                Phase::Streaming => s.streaming += 1,
                Phase::Failed => s.failed += 1,
                Phase::Done => s.done += 1,
            }
            frames += l.frames.load(Ordering::Relaxed);
            bytes += l.bytes.load(Ordering::Relaxed);
            s.freezes += l.freezes.load(Ordering::Relaxed);
        }
        let now = Instant::now();
        let dt = now.duration_since(last_t).as_secs_f64();
        if dt > 0.0 {
            s.fps = frames.saturating_sub(last_frames) as f64 / dt;
            s.bitrate_bps = bytes.saturating_sub(last_bytes) as f64 * 8.0 / dt;
        }
        (last_frames, last_bytes, last_t) = (frames, bytes, now);
        if let Some(out) = &out {
            out.send_replace(s.clone());
        }
        if !stopping {
            let line = s.progress_line(s.t_secs, lives.len());
            let mut out = std::io::stdout().lock();
            if tty {
                let _ = write!(out, "\r{line}\x1b[K");
                let _ = out.flush();
            } else if load.progress != ProgressMode::Off {
                let _ = writeln!(out, "{line}");
            }
            timeline.push(s);
        } else {
            if tty {
                let _ = writeln!(std::io::stdout());
            }
            return timeline;
        }
    }
}
