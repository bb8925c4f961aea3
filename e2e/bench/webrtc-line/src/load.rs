//! N players started at a given rate in one process, and the report:
//! percentiles of each join phase over players, frames received, failures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::player::{run_player, PlayerConfig, PlayerResult};

/// p50/p90/p99/max of one figure over players.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut v: Vec<f64>) -> Percentiles {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles { n: v.len(), p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1.0) }
    }
}

/// The run's report.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub players: usize,
    pub passed: usize,
    pub elapsed_secs: f64,
    pub phases: BTreeMap<String, Percentiles>,
    pub total_video_frames: u64,
    pub failures: BTreeMap<String, usize>,
    pub player_stats: Vec<PlayerResult>,
}

/// Start `players` players, `ramp` per second, and wait for all of them.
pub async fn run_load(cfg: PlayerConfig, players: usize, ramp: f64) -> LoadReport {
    let cfg = Arc::new(cfg);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(players);
    for i in 0..players {
        let at = start + Duration::from_secs_f64(i as f64 / ramp.max(0.001));
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move { run_player(i, &cfg).await }));
    }
    let mut results = Vec::with_capacity(players);
    for (i, t) in tasks.into_iter().enumerate() {
        results.push(t.await.unwrap_or_else(|e| PlayerResult {
            index: i,
            error: Some(format!("player task: {e}")),
            ..Default::default()
        }));
    }
    report(results, start.elapsed())
}

fn report(results: Vec<PlayerResult>, elapsed: Duration) -> LoadReport {
    let phase = |f: fn(&PlayerResult) -> Option<f64>| Percentiles::of(results.iter().filter_map(f).collect());
    let mut phases = BTreeMap::new();
    phases.insert("1 ws_connect".into(), phase(|r| r.join.ws_connect_ms));
    phases.insert("2 offer".into(), phase(|r| r.join.offer_ms));
    phases.insert("3 ice_connected".into(), phase(|r| r.join.ice_connected_ms));
    phases.insert("3b dtls_connected".into(), phase(|r| r.join.dtls_connected_ms));
    phases.insert("4 first_rtp".into(), phase(|r| r.join.first_rtp_ms));
    phases.insert("5 first_keyframe".into(), phase(|r| r.join.first_keyframe_ms));
    phases.insert("7 data_channel_open".into(), phase(|r| r.join.data_channel_open_ms));
    let mut failures = BTreeMap::new();
    for r in &results {
        if let Some(e) = &r.error {
            *failures.entry(e.clone()).or_default() += 1;
        }
    }
    LoadReport {
        players: results.len(),
        passed: results.iter().filter(|r| r.error.is_none() && r.join.first_rtp_ms.is_some()).count(),
        elapsed_secs: elapsed.as_secs_f64(),
        phases,
        total_video_frames: results.iter().map(|r| r.video_frames).sum(),
        failures,
        player_stats: results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p99, p.max), (50.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(vec![]).n, 0);
    }
}
