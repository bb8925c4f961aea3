//! The end-of-run report: percentiles of each join phase and of the media and
//! data-channel figures, failures grouped by reason, and the timeline the
//! load scheduler sampled. Text for humans, JSON for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::player::{JoinTimes, PlayerStats};
use proto::rtc::repair_traffic::RepairTraffic;

/// Nearest-rank percentiles of a set of values.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(mut v: Vec<f64>) -> Percentiles {
        v.retain(|x| x.is_finite());
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[i.clamp(1, v.len()) - 1]
        };
        Percentiles {
            n: v.len(),
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// One sample of the whole run.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Sample {
    pub t_secs: f64,
    pub started: usize,
    pub joining: usize,
    pub streaming: usize,
    pub failed: usize,
    pub done: usize,
    /// Video frames per second over all players.
    pub fps: f64,
    /// Media bits per second over all players.
    pub bitrate_bps: f64,
    /// Freezes so far over all players (WebRTC's definition).
    #[serde(default)]
    pub freezes: u64,
}

impl Sample {
    /// The live progress line, the same in a single run and on a coordinator:
    /// `t_secs` into the run, out of `players` in all.
    pub fn progress_line(&self, t_secs: f64, players: usize) -> String {
        format!(
            "[{t_secs:6.1}s] started {}/{players}  joining {}  streaming {}  failed {}  done {}  | {:.0} fps  {:.2} Mbit/s",
            self.started,
            self.joining,
            self.streaming,
            self.failed,
            self.done,
            self.fps,
            self.bitrate_bps / 1e6
        )
    }
}

/// What the players of one network profile saw (`clean`, or an `--impair`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ProfileFigures {
    pub players: usize,
    pub passed: usize,
    pub fps: Percentiles,
    pub loss: Percentiles,
    /// Per player: its frames' latency p50, p99 and maximum (ms).
    pub latency_p50_ms: Percentiles,
    pub latency_p99_ms: Percentiles,
    pub latency_max_ms: Percentiles,
    pub freezes: Percentiles,
    pub frozen_secs: Percentiles,
    /// Per player: frames complete ÷ (complete + incomplete).
    pub frames_complete: Percentiles,
    pub nacks_sent: Percentiles,
    pub plis_sent: Percentiles,
    pub retransmitted: Percentiles,
    pub keyframes: Percentiles,
    /// Sums over the profile's players.
    pub repair: RepairTraffic,
    pub frames_complete_total: u64,
    pub frames_incomplete_total: u64,
}

impl ProfileFigures {
    fn of(players: &[&PlayerStats]) -> ProfileFigures {
        let streamed: Vec<&&PlayerStats> = players.iter().filter(|s| !s.tracks.is_empty()).collect();
        let per = |f: &dyn Fn(&PlayerStats) -> f64| Percentiles::of(streamed.iter().map(|s| f(s)).collect());
        let timed: Vec<&&&PlayerStats> = streamed.iter().filter(|s| s.latency.n > 0).collect();
        let lat = |f: &dyn Fn(&PlayerStats) -> f64| Percentiles::of(timed.iter().map(|s| f(s)).collect());
        ProfileFigures {
            players: players.len(),
            passed: players.iter().filter(|s| s.passed).count(),
            fps: per(&|s| s.fps),
            loss: per(&|s| s.loss),
            latency_p50_ms: lat(&|s| s.latency.p50_ms),
            latency_p99_ms: lat(&|s| s.latency.p99_ms),
            latency_max_ms: lat(&|s| s.latency.max_ms),
            freezes: per(&|s| s.freezes as f64),
            frozen_secs: per(&|s| s.frozen_secs),
            frames_complete: Percentiles::of(
                streamed
                    .iter()
                    .filter(|s| s.frames_complete + s.frames_incomplete > 0)
                    .map(|s| s.frames_complete as f64 / (s.frames_complete + s.frames_incomplete) as f64)
                    .collect(),
            ),
            nacks_sent: per(&|s| s.repair.nacks_sent as f64),
            plis_sent: per(&|s| s.repair.plis_sent as f64),
            retransmitted: per(&|s| s.retransmitted as f64),
            keyframes: per(&|s| s.keyframes as f64),
            repair: players.iter().fold(RepairTraffic::default(), |a, s| a + s.repair),
            frames_complete_total: players.iter().map(|s| s.frames_complete).sum(),
            frames_incomplete_total: players.iter().map(|s| s.frames_incomplete).sum(),
        }
    }
}

/// Failures with the same reason.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailureGroup {
    pub kind: String,
    pub count: usize,
    pub example: String,
}

/// The result of a run (one player or many).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub players: usize,
    pub joined: usize,
    pub passed: usize,
    pub failed: usize,
    pub signalling_only: bool,
    pub elapsed_secs: f64,
    /// Per join phase (ms from the start of the join): ws_connect, offer,
    /// ice_connected, first_rtp, first_keyframe, joined.
    pub phases: BTreeMap<String, Percentiles>,
    pub fps: Percentiles,
    pub bitrate_bps: Percentiles,
    /// Fraction of packets lost per player.
    pub loss: Percentiles,
    pub jitter_ms: Percentiles,
    pub dc_rtt_ms: Percentiles,
    /// `LatencyTest` round trips (include the streamer's processing).
    pub latency_test_ms: Percentiles,
    /// Every player together; [`LoadReport::profiles`] splits them by network profile.
    pub all: ProfileFigures,
    /// By network profile (`clean`, or the `--impair` string).
    pub profiles: BTreeMap<String, ProfileFigures>,
    /// How the players' clock offsets (for frame latency) were found, and how many players each way.
    pub clock_offsets: BTreeMap<String, usize>,
    pub total_video_frames: u64,
    pub total_input_sent: u64,
    pub reconnects: u64,
    /// Players per track kind, codec and (video) picture size, e.g.
    /// `"video H264 640x360"` → 20: what the players negotiated and got.
    pub media: BTreeMap<String, usize>,
    pub failures: Vec<FailureGroup>,
    pub timeline: Vec<Sample>,
    pub player_stats: Vec<PlayerStats>,
}

impl LoadReport {
    pub fn build(
        mut stats: Vec<PlayerStats>,
        timeline: Vec<Sample>,
        elapsed_secs: f64,
        signalling_only: bool,
    ) -> LoadReport {
        stats.sort_by_key(|s| s.index);
        let phase =
            |f: fn(&JoinTimes) -> Option<f64>| Percentiles::of(stats.iter().filter_map(|s| f(&s.join)).collect());
        let mut phases = BTreeMap::new();
        phases.insert("1 ws_connect".to_string(), phase(|j| j.ws_connect_ms));
        phases.insert("2 offer".to_string(), phase(|j| j.offer_ms));
        if !signalling_only {
            phases.insert("3 ice_connected".to_string(), phase(|j| j.ice_connected_ms));
            phases.insert("3b dtls_connected".to_string(), phase(|j| j.dtls_connected_ms));
            phases.insert("4 first_rtp".to_string(), phase(|j| j.first_rtp_ms));
            phases.insert("5 first_keyframe".to_string(), phase(|j| j.first_keyframe_ms));
        }
        phases.insert("6 joined".to_string(), phase(|j| j.joined_ms));
        let streamed: Vec<&PlayerStats> = stats.iter().filter(|s| !s.tracks.is_empty()).collect();
        let per = |f: fn(&PlayerStats) -> f64| Percentiles::of(streamed.iter().map(|s| f(s)).collect());

        let mut groups: BTreeMap<String, FailureGroup> = BTreeMap::new();
        for s in &stats {
            if let (Some(kind), Some(msg)) = (&s.error_kind, &s.error) {
                groups
                    .entry(kind.clone())
                    .or_insert_with(|| FailureGroup { kind: kind.clone(), count: 0, example: msg.clone() })
                    .count += 1;
            }
        }
        let mut by_profile: BTreeMap<String, Vec<&PlayerStats>> = BTreeMap::new();
        for s in &stats {
            let name = if s.profile.is_empty() { "clean" } else { s.profile.as_str() };
            by_profile.entry(name.to_string()).or_default().push(s);
        }
        let profiles = by_profile.iter().map(|(k, v)| (k.clone(), ProfileFigures::of(v))).collect();
        let everyone: Vec<&PlayerStats> = stats.iter().collect();
        let mut clock_offsets = BTreeMap::new();
        for s in stats.iter().filter(|s| s.latency.n > 0) {
            let how = s.clock_offset.source.split(" (").next().unwrap_or_default().to_string();
            *clock_offsets.entry(how).or_insert(0) += 1;
        }
        let mut failures: Vec<FailureGroup> = groups.into_values().collect();
        failures.sort_by_key(|f| std::cmp::Reverse(f.count));

        LoadReport {
            players: stats.len(),
            joined: stats.iter().filter(|s| s.joined).count(),
            passed: stats.iter().filter(|s| s.passed).count(),
            failed: stats.iter().filter(|s| !s.passed).count(),
            signalling_only,
            elapsed_secs,
            phases,
            fps: per(|s| s.fps),
            bitrate_bps: per(|s| s.bitrate_bps),
            loss: per(|s| s.loss),
            jitter_ms: per(|s| s.jitter_ms),
            dc_rtt_ms: Percentiles::of(stats.iter().flat_map(|s| s.dc.rtt_ms.iter().copied()).collect()),
            latency_test_ms: Percentiles::of(stats.iter().flat_map(|s| s.dc.latency_test_ms.iter().copied()).collect()),
            all: ProfileFigures::of(&everyone),
            profiles,
            clock_offsets,
            total_video_frames: stats.iter().map(|s| s.video_frames).sum(),
            total_input_sent: stats.iter().map(|s| s.dc.input_sent).sum(),
            reconnects: stats.iter().map(|s| u64::from(s.reconnects)).sum(),
            media: media_kinds(&stats),
            failures,
            timeline,
            player_stats: stats,
        }
    }

    /// Every player passed (and there was at least one).
    pub fn all_passed(&self) -> bool {
        self.players > 0 && self.failed == 0
    }

    /// Human-readable summary.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "players {}  joined {}  passed {}  failed {}  in {:.1} s{}",
            self.players,
            self.joined,
            self.passed,
            self.failed,
            self.elapsed_secs,
            if self.signalling_only { "  (signalling only)" } else { "" }
        );
        let _ = writeln!(o, "{:<22} {:>6} {:>10} {:>10} {:>10} {:>10}", "", "n", "p50", "p90", "p99", "max");
        let mut row = |name: &str, p: &Percentiles, unit: &str, scale: f64| text_row(&mut o, name, p, unit, scale);
        for (name, p) in &self.phases {
            let name = name.split_once(' ').map_or(name.as_str(), |(_, n)| n);
            row(name, p, "ms", 1.0);
        }
        if !self.signalling_only {
            row("fps", &self.fps, "1/s", 1.0);
            row("bitrate", &self.bitrate_bps, "kbit/s", 0.001);
            row("loss", &self.loss, "%", 100.0);
            row("jitter", &self.jitter_ms, "ms", 1.0);
            row("dc rtt", &self.dc_rtt_ms, "ms", 1.0);
            row("latency test", &self.latency_test_ms, "ms", 1.0);
            figures_rows(&mut row, &self.all);
            let _ = writeln!(
                o,
                "video frames {}  input sent {}  reconnects {}",
                self.total_video_frames, self.total_input_sent, self.reconnects
            );
        }
        if !self.signalling_only && self.all.repair != RepairTraffic::default() {
            let r = &self.all.repair;
            let _ = writeln!(
                o,
                "repair: NACKs sent {} (for {} packets)  retransmissions received {}  PLIs sent {}  FIRs sent {}  \
                 frames complete {} incomplete {}",
                r.nacks_sent,
                r.nacked_packets_sent,
                self.player_stats.iter().map(|s| s.retransmitted).sum::<u64>(),
                r.plis_sent,
                r.firs_sent,
                self.all.frames_complete_total,
                self.all.frames_incomplete_total,
            );
        }
        if !self.clock_offsets.is_empty() {
            let ways: Vec<String> = self.clock_offsets.iter().map(|(k, n)| format!("{k} × {n}")).collect();
            let _ = writeln!(o, "latency clock: {}", ways.join(", "));
        }
        if self.profiles.len() > 1 || self.profiles.keys().any(|k| k != "clean") {
            for (name, f) in &self.profiles {
                let _ = writeln!(o, "profile {name}: {} players, {} passed", f.players, f.passed);
                let mut row =
                    |name: &str, p: &Percentiles, unit: &str, scale: f64| text_row(&mut o, name, p, unit, scale);
                row("fps", &f.fps, "1/s", 1.0);
                row("loss", &f.loss, "%", 100.0);
                figures_rows(&mut row, f);
            }
        }
        if !self.media.is_empty() {
            let kinds: Vec<String> = self.media.iter().map(|(k, n)| format!("{k} × {n}")).collect();
            let _ = writeln!(o, "media: {}", kinds.join(", "));
        }
        if self.failures.is_empty() {
            let _ = writeln!(o, "failures: none");
        } else {
            let _ = writeln!(o, "failures:");
            for f in &self.failures {
                let _ = writeln!(o, "  {:>6} × {}: {}", f.count, f.kind, f.example);
            }
        }
        o
    }
}

/// One row of the text table: `name (unit)`, n, p50, p90, p99, max (× `scale`).
fn text_row(o: &mut String, name: &str, p: &Percentiles, unit: &str, scale: f64) {
    let label = format!("{name} ({unit})");
    if p.n == 0 {
        let _ = writeln!(o, "{label:<22} {:>6} {:>10}", 0, "-");
        return;
    }
    let _ = writeln!(
        o,
        "{label:<22} {:>6} {:>10} {:>10} {:>10} {:>10}",
        p.n,
        fmt(p.p50 * scale),
        fmt(p.p90 * scale),
        fmt(p.p99 * scale),
        fmt(p.max * scale)
    );
}

/// The latency, freeze and repair rows of one set of players.
fn figures_rows(row: &mut impl FnMut(&str, &Percentiles, &str, f64), f: &ProfileFigures) {
    row("frame latency p50", &f.latency_p50_ms, "ms", 1.0);
    row("frame latency p99", &f.latency_p99_ms, "ms", 1.0);
    row("frame latency max", &f.latency_max_ms, "ms", 1.0);
    row("freezes", &f.freezes, "count", 1.0);
    row("frozen", &f.frozen_secs, "s", 1.0);
    row("frames complete", &f.frames_complete, "%", 100.0);
    row("NACKs sent", &f.nacks_sent, "count", 1.0);
    row("PLIs sent", &f.plis_sent, "count", 1.0);
    row("retransmitted", &f.retransmitted, "pkts", 1.0);
    row("keyframes", &f.keyframes, "count", 1.0);
}

/// Players per distinct track (kind, codec, picture size); a player with two
/// video tracks of one kind counts once.
fn media_kinds(stats: &[PlayerStats]) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for s in stats {
        let mut mine: Vec<String> = s
            .tracks
            .iter()
            .map(|t| match t.kind.as_str() {
                "video" => format!("video {} {}x{}", t.codec, t.width, t.height),
                kind => format!("{kind} {}", t.codec),
            })
            .collect();
        mine.sort();
        mine.dedup();
        for k in mine {
            *kinds.entry(k).or_insert(0) += 1;
        }
    }
    kinds
}

fn fmt(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.n, p.p50, p.p90, p.p99, p.max), (100, 50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(vec![]).n, 0);
        let p = Percentiles::of(vec![3.0]);
        assert_eq!((p.p50, p.p99), (3.0, 3.0));
    }

    #[test]
    fn groups_failures() {
        let mk = |i, kind: Option<&str>| PlayerStats {
            index: i,
            passed: kind.is_none(),
            error_kind: kind.map(String::from),
            error: kind.map(|k| format!("{k} happened")),
            ..Default::default()
        };
        let r = LoadReport::build(
            vec![mk(0, None), mk(1, Some("join_timeout")), mk(2, Some("join_timeout")), mk(3, Some("connect"))],
            vec![],
            1.0,
            false,
        );
        assert_eq!(r.failed, 3);
        assert_eq!(r.failures[0].kind, "join_timeout");
        assert_eq!(r.failures[0].count, 2);
        assert!(r.to_text().contains("join_timeout"));
        assert!(!r.all_passed());
    }

    #[test]
    fn names_what_each_player_received() {
        let track = |kind: &str, codec: &str, w, h| crate::rtp_stats::TrackSummary {
            kind: kind.into(),
            codec: codec.into(),
            width: w,
            height: h,
            ..Default::default()
        };
        let player = |tracks| PlayerStats { passed: true, tracks, ..Default::default() };
        let r = LoadReport::build(
            vec![
                player(vec![track("video", "H264", 640, 360), track("audio", "opus", 0, 0)]),
                player(vec![track("video", "H264", 640, 360), track("audio", "opus", 0, 0)]),
                player(vec![track("video", "VP8", 320, 180)]),
            ],
            vec![],
            1.0,
            false,
        );
        let media: Vec<(&str, usize)> = r.media.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        assert_eq!(media, [("audio opus", 2), ("video H264 640x360", 2), ("video VP8 320x180", 1)]);
        assert!(r.to_text().contains("media: audio opus × 2, video H264 640x360 × 2, video VP8 320x180 × 1"));
    }
}
