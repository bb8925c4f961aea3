//! [`Player`]: one headless player, used alone and in load mode.
//!
//! One join attempt: connect, `config`, `listStreamers` until the streamer is
//! there, `subscribe`, answer the `offer`, trickle ICE, receive. With
//! `reconnect`, a lost streamer or socket starts a new attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::Message;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use crate::canned;
use crate::config::PlayerConfig;
use crate::dc::{DcBehaviour, DcSession, DcStats};
use crate::error::PlayerError;
use crate::live::{Live, Phase};
use crate::peer::{PeerEvent, PeerSession};
use crate::rtc::RtcContext;
use crate::rtp_stats::TrackSummary;
use crate::signalling::{Event, SignallingSession};

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

/// How one attempt ended.
enum AttemptEnd {
    /// Duration, expected frames or cancellation: the run is over.
    Stop,
    /// Streamer or socket lost: reconnectable.
    Lost(PlayerError),
    /// Not worth retrying.
    Fatal(PlayerError),
}

/// One player.
pub struct Player {
    pub index: usize,
    cfg: Arc<PlayerConfig>,
    rtc: Option<Arc<RtcContext>>,
    live: Arc<Live>,
}

#[derive(Default)]
struct Acc {
    stats: PlayerStats,
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
        let mut acc = Acc::default();
        acc.stats.index = self.index;
        acc.stats.streamer_id = self.cfg.streamer_id.clone();
        let mut attempt = 0u32;
        let result = loop {
            let end = self.attempt(attempt, &cancel, stop_at, &mut acc, &mut join_permit).await;
            attempt += 1;
            match end {
                AttemptEnd::Stop => break Ok(()),
                AttemptEnd::Lost(e)
                    if self.cfg.reconnect && !cancel.is_cancelled() && stop_at.is_none_or(|s| Instant::now() < s) =>
                {
                    tracing::info!(player = self.index, reason = %e, "lost the streamer; reconnecting");
                    acc.stats.reconnects += 1;
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
        let mut s = acc.stats;
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

    /// One join attempt; its phase times are recorded however it ends.
    async fn attempt(
        &self,
        attempt: u32,
        cancel: &CancellationToken,
        stop_at: Option<Instant>,
        acc: &mut Acc,
        join_permit: &mut Option<OwnedSemaphorePermit>,
    ) -> AttemptEnd {
        let mut times = JoinTimes::default();
        let mut joined = false;
        let end = self.attempt_inner(attempt, cancel, stop_at, acc, join_permit, &mut times, &mut joined).await;
        if joined {
            if acc.stats.joined {
                acc.stats.rejoins.push(times);
            } else {
                acc.stats.joined = true;
                acc.stats.join = times;
            }
        } else if !acc.stats.joined {
            acc.stats.join = times;
        }
        end
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt_inner(
        &self,
        attempt: u32,
        cancel: &CancellationToken,
        stop_at: Option<Instant>,
        acc: &mut Acc,
        join_permit: &mut Option<OwnedSemaphorePermit>,
        times: &mut JoinTimes,
        joined: &mut bool,
    ) -> AttemptEnd {
        let cfg = &*self.cfg;
        let t0 = Instant::now();
        let ms = move |t: Instant| Some(t.duration_since(t0).as_secs_f64() * 1000.0);
        let join_deadline = tokio::time::Instant::from_std(t0 + cfg.join_timeout);
        let far = tokio::time::Instant::from_std(t0 + Duration::from_secs(86_400 * 365));
        let stop_deadline = stop_at.map_or(far, tokio::time::Instant::from_std);
        let timeout = |phase: &'static str| {
            AttemptEnd::Lost(PlayerError::JoinTimeout { secs: cfg.join_timeout.as_secs_f64(), phase })
        };
        self.live.set_phase(Phase::Joining);

        // 1. Connect.
        let mut sig = tokio::select! {
            _ = cancel.cancelled() => return AttemptEnd::Stop,
            _ = sleep_until(stop_deadline) => return AttemptEnd::Stop,
            _ = sleep_until(join_deadline) => return timeout("connect"),
            r = SignallingSession::connect(&cfg.url) => match r {
                Ok(s) => s,
                Err(e) if e.is_setup() || (attempt == 0 && !cfg.reconnect) => return AttemptEnd::Fatal(e),
                Err(e) => return AttemptEnd::Lost(e),
            },
        };
        times.ws_connect_ms = ms(Instant::now());
        let sender = sig.sender.clone();

        // 2. config, then choose a streamer.
        let mut options = Value::Object(Default::default());
        let mut streamer: Option<String> = None;
        // Like the browser frontend: `listStreamers` once `config` has arrived
        // (the re-list timer covers a server that never sends one).
        let attempt_started = Instant::now();
        let mut relist = tokio::time::interval_at(tokio::time::Instant::now() + cfg.list_interval, cfg.list_interval);
        while streamer.is_none() {
            let ev = tokio::select! {
                _ = cancel.cancelled() => return AttemptEnd::Stop,
                _ = sleep_until(stop_deadline) => return AttemptEnd::Stop,
                _ = sleep_until(join_deadline) => return timeout("waiting for the streamer"),
                _ = relist.tick() => { sender.send(&Message::ListStreamers); continue; }
                ev = sig.next() => ev,
            };
            match ev {
                Event::Closed(why) => return AttemptEnd::Lost(PlayerError::SocketClosed(why)),
                Event::Message(Message::Config { peer_connection_options, .. }) => {
                    options = peer_connection_options;
                    sender.send(&Message::ListStreamers);
                }
                Event::Message(Message::StreamerList { ids }) => {
                    let grace_over = attempt_started.elapsed() >= NOT_LISTED_GRACE;
                    match choose(cfg.streamer_id.as_deref(), &ids, attempt > 0 || !grace_over) {
                        Ok(Some(id)) => streamer = Some(id),
                        Ok(None) => {}
                        Err(e) => return AttemptEnd::Fatal(e),
                    }
                }
                Event::Message(m) => {
                    tracing::debug!(player = self.index, msg = %m.type_name(), "ignored before subscribe")
                }
            }
        }
        let mut streamer = streamer.unwrap_or_default();
        acc.stats.streamer_id = Some(streamer.clone());
        self.live.set_streamer(&streamer);
        sender.send(&Message::Subscribe { streamer_id: streamer.clone() });

        // 3. Offer / answer / ICE / media.
        let (peer_tx, mut peer_rx) = mpsc::unbounded_channel::<PeerEvent>();
        let session_cancel = cancel.child_token();
        let dc = DcSession::new(
            DcBehaviour { input_rate: cfg.input_rate, latency_test: cfg.latency_test },
            session_cancel.clone(),
        );
        let mut peer: Option<PeerSession> = None;
        let mut early_candidates = Vec::new();
        // Remote candidates wait until our own candidates are on their way:
        // otherwise our connectivity checks can reach the streamer before our
        // candidates do, it sees a peer-reflexive candidate and webrtc-rs
        // waits a second before nominating it.
        let mut gathered = false;
        let mut check = tokio::time::interval(Duration::from_millis(200));
        let mut phase: &'static str = "waiting for the offer";

        let end = loop {
            tokio::select! {
                _ = cancel.cancelled() => break AttemptEnd::Stop,
                _ = sleep_until(stop_deadline) => break AttemptEnd::Stop,
                _ = sleep_until(join_deadline), if !*joined => break timeout(phase),
                _ = check.tick(), if cfg.stop_at_expected_frames && cfg.duration.is_none() && cfg.expect_frames.is_some() => {
                    if let Some(want) = cfg.expect_frames {
                        if self.live.frames.load(std::sync::atomic::Ordering::Relaxed) >= want {
                            break AttemptEnd::Stop;
                        }
                    }
                }
                Some(ev) = peer_rx.recv() => match ev {
                    PeerEvent::LocalCandidate(c) => sender.send(&Message::IceCandidate { candidate: c, player_id: None }),
                    PeerEvent::GatheringDone => {
                        gathered = true;
                        if let Some(p) = peer.as_ref() {
                            for c in early_candidates.drain(..) {
                                if let Err(e) = p.add_candidate(c).await {
                                    tracing::warn!(player = self.index, error = %e, "remote candidate refused");
                                }
                            }
                        }
                    }
                    PeerEvent::IceConnected(t) => {
                        times.ice_connected_ms.get_or_insert(ms(t).unwrap_or_default());
                        phase = "DTLS";
                    }
                    PeerEvent::Connected(t) => {
                        times.dtls_connected_ms.get_or_insert(ms(t).unwrap_or_default());
                        phase = "waiting for RTP";
                    }
                    PeerEvent::FirstRtp(t) => {
                        times.first_rtp_ms = ms(t);
                        if !*joined {
                            *joined = true;
                            times.joined_ms = ms(t);
                            self.on_joined(join_permit);
                        }
                    }
                    PeerEvent::FirstKeyframe(t) => times.first_keyframe_ms = ms(t),
                    PeerEvent::SfuChannelsOpen => sender.send(&Message::PeerDataChannelsReady { player_id: None }),
                    PeerEvent::Failed(why) => break AttemptEnd::Lost(PlayerError::PeerFailed(why)),
                },
                ev = sig.next() => match ev {
                    Event::Closed(why) => break AttemptEnd::Lost(PlayerError::SocketClosed(why)),
                    Event::Message(m) => match m {
                        Message::Offer { sdp, player_id, sfu, .. } => {
                            acc.stats.offers += 1;
                            times.offer_ms.get_or_insert(ms(Instant::now()).unwrap_or_default());
                            if player_id.is_some() {
                                acc.stats.player_id = player_id;
                            }
                            let sfu = sfu.unwrap_or(false);
                            acc.stats.sfu = sfu;
                            phase = "ICE";
                            if cfg.signalling_only {
                                sender.send(&Message::Answer { sdp: canned::answer_sdp(&sdp), player_id: None, min_bitrate_bps: None, max_bitrate_bps: None });
                                for c in canned::candidates(&sdp) {
                                    sender.send(&Message::IceCandidate { candidate: c, player_id: None });
                                }
                                if !*joined {
                                    *joined = true;
                                    times.joined_ms = ms(Instant::now());
                                    self.on_joined(join_permit);
                                }
                                continue;
                            }
                            if peer.is_none() {
                                let Some(rtc) = self.rtc.clone() else {
                                    break AttemptEnd::Fatal(PlayerError::Rtc("no WebRTC context".into()));
                                };
                                match PeerSession::new(rtc, &options, peer_tx.clone(), self.live.clone(), dc.clone(), session_cancel.clone()).await {
                                    Ok(p) => peer = Some(p),
                                    Err(e) => break AttemptEnd::Fatal(e),
                                }
                            }
                            let Some(p) = peer.as_ref() else { continue };
                            match p.answer(&sdp).await {
                                Ok(answer) => sender.send(&Message::Answer { sdp: answer, player_id: None, min_bitrate_bps: None, max_bitrate_bps: None }),
                                Err(e) => break AttemptEnd::Lost(e),
                            }
                            if let Some((spatial_layer, temporal_layer)) = cfg.layer {
                                sender.send(&Message::LayerPreference { spatial_layer, temporal_layer, player_id: None });
                            }
                            if sfu {
                                sender.send(&Message::DataChannelRequest { player_id: None });
                            }
                        }
                        Message::IceCandidate { candidate, .. } => match peer.as_ref() {
                            Some(p) if gathered => if let Err(e) = p.add_candidate(candidate).await {
                                tracing::warn!(player = self.index, error = %e, "remote candidate refused");
                            },
                            _ => early_candidates.push(candidate),
                        },
                        Message::PeerDataChannels { send_stream_id, recv_stream_id, .. } => {
                            if let Some(p) = peer.as_ref() {
                                if let Err(e) = p.open_sfu_channels(send_stream_id, recv_stream_id, peer_tx.clone()).await {
                                    tracing::warn!(player = self.index, error = %e, "SFU data channels");
                                }
                            }
                        }
                        Message::StreamerIdChanged { new_id } => {
                            tracing::info!(player = self.index, from = %streamer, to = %new_id, "streamer id changed");
                            streamer = new_id;
                            acc.stats.streamer_id = Some(streamer.clone());
                            self.live.set_streamer(&streamer);
                        }
                        Message::SubscribeFailed { message } => break AttemptEnd::Fatal(PlayerError::SubscribeFailed(message)),
                        Message::StreamerDisconnected => break AttemptEnd::Lost(PlayerError::StreamerDisconnected),
                        Message::Config { peer_connection_options, .. } => options = peer_connection_options,
                        other => tracing::debug!(player = self.index, msg = %other.type_name(), "ignored"),
                    },
                },
            }
        };

        // 4. Collect and tear down.
        session_cancel.cancel();
        if let Some(p) = peer {
            acc.stats.tracks.extend(p.track_summaries());
            p.close().await;
        }
        merge_dc(&mut acc.stats.dc, dc.stats());
        sender.close();
        end
    }

    fn on_joined(&self, join_permit: &mut Option<OwnedSemaphorePermit>) {
        self.live.set_phase(Phase::Streaming);
        join_permit.take();
    }
}

/// Pick the streamer from a `streamerList`. `Ok(None)`: wait and re-list.
/// How long a wanted streamer that is not listed (while others are) is
/// waited for before subscribing anyway, so that the server's
/// `subscribeFailed` gives a bad id its clear error. An SFU, for one, is
/// listed only once media flows to it, a moment after it connects.
const NOT_LISTED_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// `keep_waiting`: rejoining after a restart, or still within
/// [`NOT_LISTED_GRACE`]: a wanted id that is not listed is waited for.
fn choose(wanted: Option<&str>, ids: &[String], keep_waiting: bool) -> Result<Option<String>, PlayerError> {
    match wanted {
        Some(w) if ids.iter().any(|i| i == w) => Ok(Some(w.to_string())),
        // Nobody there yet, or worth waiting for: wait.
        Some(_) if ids.is_empty() || keep_waiting => Ok(None),
        // Others are there but not this one: subscribe anyway and let the
        // server say `subscribeFailed` (the clear error).
        Some(w) => Ok(Some(w.to_string())),
        None => match ids {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            many => Err(PlayerError::NoStreamer(format!(
                "{} streamers listed ({}); choose one with --streamer",
                many.len(),
                many.join(", ")
            ))),
        },
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choosing() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(choose(None, &ids(&[]), false), Ok(None));
        assert_eq!(choose(None, &ids(&["A"]), false), Ok(Some("A".into())));
        assert!(choose(None, &ids(&["A", "B"]), false).is_err());
        assert_eq!(choose(Some("B"), &ids(&["A", "B"]), false), Ok(Some("B".into())));
        assert_eq!(choose(Some("X"), &ids(&["A"]), false), Ok(Some("X".into())));
        assert_eq!(choose(Some("X"), &ids(&["A"]), true), Ok(None));
        assert_eq!(choose(Some("X"), &ids(&[]), false), Ok(None));
    }
}
