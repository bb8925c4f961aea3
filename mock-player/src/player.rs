//! [`Player`]: one headless player, used alone and in load mode.
//!
//! A player runs join attempts ([`crate::attempt`]): with `reconnect`, a lost
//! streamer or socket starts a new one. It adds up what they measured and
//! judges the result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::attempt::{run_attempt, AttemptContext, AttemptEnd, AttemptStats};
use crate::clock_offset::ClockOffsetReport;
use crate::config::PlayerConfig;
use crate::datachannel::DcStats;
use crate::error::PlayerError;
use crate::latency_histogram::LatencySummary;
use crate::live::{Live, Phase};
use crate::rtc::RtcContext;
use crate::rtp_stats::TrackSummary;
use proto::rtc::repair_traffic::RepairTraffic;

/// Milliseconds from the start of a join attempt to each phase.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct JoinTimes {
    pub ws_connect_ms: Option<f64>,
    pub offer_ms: Option<f64>,
    pub ice_connected_ms: Option<f64>,
    /// Peer connection connected (ICE and DTLS done).
    pub dtls_connected_ms: Option<f64>,
    pub first_rtp_ms: Option<f64>,
    pub first_keyframe_ms: Option<f64>,
    /// Until "streaming": first RTP, or the answer sent with `signalling_only`.
    pub joined_ms: Option<f64>,
}

/// Everything one player measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlayerStats {
    pub index: usize,
    pub streamer_id: Option<String>,
    /// The id the server gave us (from the offer's `playerId`, when present).
    pub player_id: Option<String>,
    pub joined: bool,
    /// The first join.
    pub join: JoinTimes,
    /// Joins after a reconnect.
    pub rejoins: Vec<JoinTimes>,
    pub reconnects: u32,
    /// Every track of every peer connection this player had.
    pub tracks: Vec<TrackSummary>,
    pub video_frames: u64,
    pub keyframes: u64,
    pub fps: f64,
    pub bitrate_bps: f64,
    pub loss: f64,
    pub jitter_ms: f64,
    /// The network profile this player ran on: `clean`, or its `--impair`.
    pub profile: String,
    /// Capture → decodable latency of each video frame (the video track
    /// with the most frames), with the clock offset it was corrected by.
    pub latency: LatencySummary,
    pub clock_offset: ClockOffsetReport,
    /// Video frames released complete and given up incomplete.
    pub frames_complete: u64,
    pub frames_incomplete: u64,
    /// Freezes (WebRTC's definition) and the time spent frozen.
    pub freezes: u64,
    pub frozen_secs: f64,
    /// Packets that arrived late to fill a gap (retransmissions).
    pub retransmitted: u64,
    /// NACKs, PLIs and FIRs this player sent (and received).
    pub repair: RepairTraffic,
    pub dc: DcStats,
    /// Offers received (renegotiations included).
    pub offers: u32,
    pub sfu: bool,
    pub elapsed_secs: f64,
    pub passed: bool,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    /// Time since the run's start (load mode) when this player started.
    pub started_at_secs: f64,
}

/// One player.
pub struct Player {
    pub index: usize,
    cfg: Arc<PlayerConfig>,
    rtc: Option<Arc<RtcContext>>,
    live: Arc<Live>,
}

impl Player {
    /// `rtc` is required unless `cfg.signalling_only`.
    pub fn new(index: usize, cfg: Arc<PlayerConfig>, rtc: Option<Arc<RtcContext>>, live: Arc<Live>) -> Player {
        Player { index, cfg, rtc, live }
    }

    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Run until done; `join_permit` is released once joined (or failed).
    pub async fn run(self, cancel: CancellationToken, mut join_permit: Option<OwnedSemaphorePermit>) -> PlayerStats {
        let start = Instant::now();
        let stop_at = self.cfg.duration.map(|d| start + d);
        let mut stats = PlayerStats {
            index: self.index,
            streamer_id: self.cfg.streamer_id.clone(),
            profile: self.rtc.as_ref().and_then(|r| r.path.impairment).map_or("clean".into(), |i| i.to_string()),
            ..Default::default()
        };
        let mut attempt = 0u32;
        let result = loop {
            let ctx = AttemptContext {
                index: self.index,
                number: attempt,
                cfg: &self.cfg,
                rtc: self.rtc.clone(),
                live: &self.live,
            };
            let report = run_attempt(ctx, &cancel, stop_at, join_permit.take()).await;
            join_permit = report.join_permit;
            stats.add_attempt(report.stats);
            attempt += 1;
            match report.end {
                AttemptEnd::Stop => break Ok(()),
                AttemptEnd::Lost(e)
                    if self.cfg.reconnect && !cancel.is_cancelled() && stop_at.is_none_or(|s| Instant::now() < s) =>
                {
                    tracing::info!(player = self.index, reason = %e, "lost the streamer; reconnecting");
                    stats.reconnects += 1;
                    self.live.set_phase(Phase::Waiting);
                    tokio::select! {
                        _ = cancel.cancelled() => break Ok(()),
                        _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                    }
                }
                AttemptEnd::Lost(e) | AttemptEnd::Fatal(e) => break Err(e),
            }
        };
        drop(join_permit);
        let mut s = stats;
        s.elapsed_secs = start.elapsed().as_secs_f64();
        summarise_media(&mut s);
        let verdict = result.and_then(|()| self.judge(&s));
        match verdict {
            Ok(()) => {
                s.passed = true;
                self.live.set_phase(Phase::Done);
            }
            Err(e) => {
                s.error_kind = Some(e.kind().to_string());
                s.error = Some(e.to_string());
                self.live.set_phase(Phase::Failed);
            }
        }
        s
    }

    fn judge(&self, s: &PlayerStats) -> Result<(), PlayerError> {
        if !s.joined {
            return Err(PlayerError::NothingReceived);
        }
        if let Some(want) = self.cfg.expect_frames {
            if s.video_frames < want {
                return Err(PlayerError::TooFewFrames { got: s.video_frames, want });
            }
        }
        if let Some(want) = self.cfg.min_fps {
            if s.fps < want {
                return Err(PlayerError::LowFps { got: s.fps, want });
            }
        }
        Ok(())
    }
}

impl PlayerStats {
    /// Add what one attempt measured; its phase times are recorded however it ended.
    fn add_attempt(&mut self, a: AttemptStats) {
        if a.joined {
            if self.joined {
                self.rejoins.push(a.times);
            } else {
                self.joined = true;
                self.join = a.times;
            }
        } else if !self.joined {
            self.join = a.times;
        }
        if a.streamer_id.is_some() {
            self.streamer_id = a.streamer_id;
        }
        if a.player_id.is_some() {
            self.player_id = a.player_id;
        }
        if let Some(sfu) = a.sfu {
            self.sfu = sfu;
        }
        self.offers += a.offers;
        self.tracks.extend(a.tracks);
        self.repair = self.repair + a.repair;
        if let Some(dc) = a.dc {
            merge_dc(&mut self.dc, dc);
        }
    }
}

fn merge_dc(into: &mut DcStats, from: DcStats) {
    into.opened |= from.opened;
    into.channels.extend(from.channels);
    into.protocol_received |= from.protocol_received;
    into.initial_settings_received |= from.initial_settings_received;
    if from.quality_control_owner.is_some() {
        into.quality_control_owner = from.quality_control_owner;
    }
    into.sent += from.sent;
    into.input_sent += from.input_sent;
    into.send_errors += from.send_errors;
    into.decode_errors += from.decode_errors;
    for (k, v) in from.received {
        *into.received.entry(k).or_default() += v;
    }
    into.rtt_ms.extend(from.rtt_ms);
    if from.clock.samples > 0 && (into.clock.samples == 0 || from.clock.network_rtt_ms < into.clock.network_rtt_ms) {
        into.clock = from.clock;
    }
    into.latency_test_ms.extend(from.latency_test_ms);
}

fn summarise_media(s: &mut PlayerStats) {
    let video: Vec<&TrackSummary> = s.tracks.iter().filter(|t| t.kind == "video").collect();
    s.video_frames = video.iter().map(|t| t.frames).sum();
    s.keyframes = video.iter().map(|t| t.keyframes).sum();
    let secs: f64 = video.iter().map(|t| t.active_secs).sum();
    let intervals: u64 = video.iter().map(|t| t.frames.saturating_sub(1)).sum();
    let bytes: u64 = s.tracks.iter().map(|t| t.bytes).sum();
    if secs > 0.0 {
        s.fps = intervals as f64 / secs;
        s.bitrate_bps = bytes as f64 * 8.0 / secs;
    }
    let lost: u64 = s.tracks.iter().map(|t| t.lost).sum();
    let packets: u64 = s.tracks.iter().map(|t| t.packets).sum();
    if lost + packets > 0 {
        s.loss = lost as f64 / (lost + packets) as f64;
    }
    if !video.is_empty() {
        s.jitter_ms = video.iter().map(|t| t.jitter_ms).sum::<f64>() / video.len() as f64;
    }
    s.frames_complete = video.iter().map(|t| t.delivery.frames_complete).sum();
    s.frames_incomplete = video.iter().map(|t| t.delivery.frames_incomplete).sum();
    s.freezes = video.iter().map(|t| t.delivery.freezes).sum();
    s.frozen_secs = video.iter().map(|t| t.delivery.frozen_secs).sum();
    s.retransmitted = s.tracks.iter().map(|t| t.retransmitted).sum();
    if let Some(main) = video.iter().max_by_key(|t| t.delivery.latency.n) {
        s.latency = main.delivery.latency;
    }
    s.clock_offset = match s.dc.clock.samples {
        0 => ClockOffsetReport { offset_ms: 0.0, source: "assumed: one clock (no --latency-test)".into() },
        n => ClockOffsetReport {
            offset_ms: s.dc.clock.offset_ms,
            source: format!(
                "estimated: LatencyTest exchanges, the least delayed of {n} (network round trip {:.1} ms)",
                s.dc.clock.network_rtt_ms
            ),
        },
    };
}
