//! One join attempt of a [`Player`](crate::Player): connect, `config`,
//! `listStreamers` until the streamer is there, `subscribe`, answer the
//! `offer`, trickle ICE, receive.
//!
//! [`Attempt`] is the attempt's state; its `on_*` methods handle one
//! signalling message, peer event or timer tick each, and the loop in
//! [`Attempt::run`] only selects and dispatches. What the attempt measured
//! comes back as an [`AttemptReport`] however it ends.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::client::{Buffers, ClientError, ClientOptions, SignallingReceiver, SignallingSender};
use proto::rtc::repair_traffic::RepairTraffic;
use proto::{IceCandidate, Message};
use serde_json::Value;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use crate::canned;
use crate::config::PlayerConfig;
use crate::datachannel::{DcBehaviour, DcSession, DcStats};
use crate::error::PlayerError;
use crate::live::{Live, Phase};
use crate::peer::{PeerEvent, PeerSession};
use crate::player::JoinTimes;
use crate::rtc::RtcContext;
use crate::rtp_stats::TrackSummary;

/// How long a wanted streamer that is not listed (while others are) is
/// waited for before subscribing anyway, so that the server's
/// `subscribeFailed` gives a bad id its clear error. An SFU, for one, is
/// listed only once media flows to it, a moment after it connects.
const NOT_LISTED_GRACE: Duration = Duration::from_secs(3);

/// How one attempt ended.
pub enum AttemptEnd {
    /// Duration, expected frames or cancellation: the run is over.
    Stop,
    /// Streamer or socket lost: reconnectable.
    Lost(PlayerError),
    /// Not worth retrying.
    Fatal(PlayerError),
}

/// How an attempt ended and what it measured.
pub struct AttemptReport {
    pub end: AttemptEnd,
    /// The join permit, unless it was released on joining.
    pub join_permit: Option<OwnedSemaphorePermit>,
    pub stats: AttemptStats,
}

/// What one attempt measured and learnt, for the player's statistics.
#[derive(Default)]
pub struct AttemptStats {
    pub times: JoinTimes,
    /// Streaming was reached (first RTP, or the answer sent with `signalling_only`).
    pub joined: bool,
    /// The streamer subscribed to (last id, after `streamerIdChanged`).
    pub streamer_id: Option<String>,
    /// From the last offer that had one.
    pub player_id: Option<String>,
    /// Whether the last offer came from an SFU.
    pub sfu: Option<bool>,
    pub offers: u32,
    pub tracks: Vec<TrackSummary>,
    /// The peer connection's NACKs, PLIs and FIRs.
    pub repair: RepairTraffic,
    /// The data channel's, once subscribed.
    pub dc: Option<DcStats>,
}

/// What the attempt shares with its player.
pub struct AttemptContext<'p> {
    pub index: usize,
    pub number: u32,
    pub cfg: &'p PlayerConfig,
    pub rtc: Option<Arc<RtcContext>>,
    pub live: &'p Arc<Live>,
}

/// When an attempt gives up or the run ends.
struct Deadlines {
    join: tokio::time::Instant,
    stop: tokio::time::Instant,
}

/// After `subscribe`: the peer connection and its data channel.
struct Subscribed {
    streamer: String,
    dc: DcSession,
    cancel: CancellationToken,
    peer: Option<PeerSession>,
    /// Remote candidates wait until our own candidates are on their way:
    /// otherwise our connectivity checks can reach the streamer before our
    /// candidates do, it sees a peer-reflexive candidate and webrtc-rs
    /// waits a second before nominating it.
    early_candidates: Vec<IceCandidate>,
    gathered: bool,
    /// Our candidates sent so far (relay-only: none means TURN failed).
    local_candidates: usize,
}

/// One join attempt in progress.
pub struct Attempt<'p> {
    ctx: AttemptContext<'p>,
    /// The run's cancellation; the peer's is a child of it.
    cancel: CancellationToken,
    /// The attempt's start: every phase time is measured from here.
    t0: Instant,
    /// Connected: the not-listed grace runs from here.
    connected_at: Instant,
    sender: SignallingSender,
    peer_tx: mpsc::UnboundedSender<PeerEvent>,
    report: AttemptReport,
    options: Value,
    /// The phase a join timeout reports.
    phase: &'static str,
    subscribed: Option<Subscribed>,
}

/// Connect, then run the attempt to its end.
pub async fn run_attempt(
    ctx: AttemptContext<'_>,
    cancel: &CancellationToken,
    stop_at: Option<Instant>,
    join_permit: Option<OwnedSemaphorePermit>,
) -> AttemptReport {
    let t0 = Instant::now();
    let far = tokio::time::Instant::from_std(t0 + Duration::from_secs(86_400 * 365));
    let deadlines = Deadlines {
        join: tokio::time::Instant::from_std(t0 + ctx.cfg.join_timeout),
        stop: stop_at.map_or(far, tokio::time::Instant::from_std),
    };
    let mut report = AttemptReport { end: AttemptEnd::Stop, join_permit, stats: AttemptStats::default() };
    ctx.live.set_phase(Phase::Joining);
    let connected = tokio::select! {
        _ = cancel.cancelled() => Err(AttemptEnd::Stop),
        _ = sleep_until(deadlines.stop) => Err(AttemptEnd::Stop),
        _ = sleep_until(deadlines.join) => Err(join_timeout(ctx.cfg, "connect")),
        r = connect(ctx.cfg) => r.map_err(|e| match e {
            e if e.is_setup() || (ctx.number == 0 && !ctx.cfg.reconnect) => AttemptEnd::Fatal(e),
            e => AttemptEnd::Lost(e),
        }),
    };
    let (sender, mut receiver) = match connected {
        Ok(c) => c,
        Err(end) => {
            report.end = end;
            return report;
        }
    };
    report.stats.times.ws_connect_ms = ms_since(t0, Instant::now());
    let (peer_tx, mut peer_rx) = mpsc::unbounded_channel();
    let mut attempt = Attempt {
        ctx,
        cancel: cancel.clone(),
        t0,
        connected_at: Instant::now(),
        sender,
        peer_tx,
        report,
        options: Value::Object(Default::default()),
        phase: "waiting for the streamer",
        subscribed: None,
    };
    let end = attempt.run(&mut receiver, &mut peer_rx, &deadlines).await;
    attempt.finish(end).await
}

/// The player's signalling socket: small buffers so that tens of thousands
/// of players fit in one process.
async fn connect(cfg: &PlayerConfig) -> Result<(SignallingSender, SignallingReceiver), PlayerError> {
    let parsed = url::Url::parse(&cfg.url).map_err(|e| PlayerError::BadUrl(cfg.url.clone(), e.to_string()))?;
    if !matches!(parsed.scheme(), "ws" | "wss") {
        return Err(PlayerError::BadUrl(cfg.url.clone(), "scheme must be ws or wss".into()));
    }
    let options = ClientOptions { ping_interval: None, buffers: Buffers::Small, no_delay: true };
    proto::client::connect_with(&cfg.url, options).await.map_err(|e| match e {
        ClientError::Connect { source, .. } => PlayerError::Connect(source.to_string()),
        other => PlayerError::Connect(other.to_string()),
    })
}

fn join_timeout(cfg: &PlayerConfig, phase: &'static str) -> AttemptEnd {
    AttemptEnd::Lost(PlayerError::JoinTimeout { secs: cfg.join_timeout.as_secs_f64(), phase })
}

fn ms_since(t0: Instant, t: Instant) -> Option<f64> {
    Some(t.duration_since(t0).as_secs_f64() * 1000.0)
}

impl Attempt<'_> {
    async fn run(
        &mut self,
        signalling: &mut SignallingReceiver,
        peer_rx: &mut mpsc::UnboundedReceiver<PeerEvent>,
        deadlines: &Deadlines,
    ) -> AttemptEnd {
        let cfg = self.ctx.cfg;
        let cancel = self.cancel.clone();
        // Like the browser frontend: `listStreamers` once `config` has arrived
        // (the re-list timer covers a server that never sends one).
        let mut relist = tokio::time::interval_at(tokio::time::Instant::now() + cfg.list_interval, cfg.list_interval);
        let mut check = tokio::time::interval(Duration::from_millis(200));
        let stop_at_frames = cfg.stop_at_expected_frames && cfg.duration.is_none() && cfg.expect_frames.is_some();
        loop {
            let flow = tokio::select! {
                _ = cancel.cancelled() => ControlFlow::Break(AttemptEnd::Stop),
                _ = sleep_until(deadlines.stop) => ControlFlow::Break(AttemptEnd::Stop),
                _ = sleep_until(deadlines.join), if !self.report.stats.joined => {
                    match self.turn_refusal() {
                        Some(refusal) => ControlFlow::Break(AttemptEnd::Lost(PlayerError::TurnRefused(refusal))),
                        None => ControlFlow::Break(join_timeout(cfg, self.phase)),
                    }
                }
                _ = relist.tick(), if self.subscribed.is_none() => self.on_relist_tick(),
                _ = check.tick(), if stop_at_frames && self.subscribed.is_some() => self.on_frame_check(),
                Some(event) = peer_rx.recv() => self.on_peer(event).await,
                m = signalling.recv() => match m {
                    Some(incoming) => self.on_signal(incoming.message).await,
                    None => {
                        let why = signalling.ended().map_or_else(|| "connection ended".to_string(), |e| e.to_string());
                        ControlFlow::Break(AttemptEnd::Lost(PlayerError::SocketClosed(why)))
                    }
                },
            };
            if let ControlFlow::Break(end) = flow {
                return end;
            }
        }
    }

    /// Collect what the peer measured and tear down.
    async fn finish(mut self, end: AttemptEnd) -> AttemptReport {
        if let Some(sub) = self.subscribed.take() {
            sub.cancel.cancel();
            if let Some(p) = sub.peer {
                self.report.stats.tracks.extend(p.track_summaries());
                self.report.stats.repair = self.report.stats.repair + p.repair_traffic();
                p.close().await;
            }
            self.report.stats.dc = Some(sub.dc.stats());
        }
        self.sender.close();
        self.report.end = end;
        self.report
    }

    fn ms(&self, t: Instant) -> Option<f64> {
        ms_since(self.t0, t)
    }

    /// Why the TURN server refused the subscribed peer connection's allocation, if it did:
    /// the real reason behind a join that timed out or a connection that failed.
    fn turn_refusal(&self) -> Option<String> {
        self.subscribed.as_ref().and_then(|s| s.peer.as_ref()).and_then(PeerSession::turn_refusal)
    }

    /// A send fails only once the socket closed, which the receive side reports.
    fn send(&self, m: &Message) {
        let _ = self.sender.send(m);
    }

    fn on_joined(&mut self, at: Instant) {
        if !self.report.stats.joined {
            self.report.stats.joined = true;
            self.report.stats.times.joined_ms = self.ms(at);
            self.ctx.live.set_phase(Phase::Streaming);
            self.report.join_permit.take();
        }
    }

    fn on_relist_tick(&mut self) -> ControlFlow<AttemptEnd> {
        self.send(&Message::ListStreamers);
        ControlFlow::Continue(())
    }

    /// With `stop_at_expected_frames`: stop once the frames arrived.
    fn on_frame_check(&mut self) -> ControlFlow<AttemptEnd> {
        if let Some(want) = self.ctx.cfg.expect_frames {
            if self.ctx.live.frames.load(std::sync::atomic::Ordering::Relaxed) >= want {
                return ControlFlow::Break(AttemptEnd::Stop);
            }
        }
        ControlFlow::Continue(())
    }

    async fn on_signal(&mut self, m: Message) -> ControlFlow<AttemptEnd> {
        if self.subscribed.is_none() {
            return self.on_signal_before_subscribe(m);
        }
        match m {
            Message::Offer { sdp, player_id, sfu, .. } => return self.on_offer(&sdp, player_id, sfu).await,
            Message::IceCandidate { candidate, .. } => self.on_remote_candidate(candidate).await,
            Message::PeerDataChannels { send_stream_id, recv_stream_id, .. } => {
                if let Some(p) = self.subscribed.as_ref().and_then(|s| s.peer.as_ref()) {
                    if let Err(e) = p.open_sfu_channels(send_stream_id, recv_stream_id, self.peer_tx.clone()).await {
                        tracing::warn!(player = self.ctx.index, error = %e, "SFU data channels");
                    }
                }
            }
            Message::StreamerIdChanged { new_id } => {
                if let Some(sub) = self.subscribed.as_mut() {
                    tracing::info!(player = self.ctx.index, from = %sub.streamer, to = %new_id, "streamer id changed");
                    sub.streamer = new_id.clone();
                }
                self.ctx.live.set_streamer(&new_id);
                self.report.stats.streamer_id = Some(new_id);
            }
            Message::SubscribeFailed { message } => {
                return ControlFlow::Break(AttemptEnd::Fatal(PlayerError::SubscribeFailed(message)))
            }
            Message::StreamerDisconnected => {
                return ControlFlow::Break(AttemptEnd::Lost(PlayerError::StreamerDisconnected))
            }
            Message::Config { peer_connection_options, .. } => self.options = peer_connection_options,
            other => tracing::debug!(player = self.ctx.index, msg = %other.type_name(), "ignored"),
        }
        ControlFlow::Continue(())
    }

    /// `config`, then `streamerList` until the streamer is chosen; then `subscribe`.
    fn on_signal_before_subscribe(&mut self, m: Message) -> ControlFlow<AttemptEnd> {
        match m {
            Message::Config { peer_connection_options, .. } => {
                self.options = peer_connection_options;
                self.send(&Message::ListStreamers);
            }
            Message::StreamerList { ids } => {
                let grace_over = self.connected_at.elapsed() >= NOT_LISTED_GRACE;
                match choose(self.ctx.cfg.streamer_id.as_deref(), &ids, self.ctx.number > 0 || !grace_over) {
                    Ok(Some(id)) => self.subscribe(id),
                    Ok(None) => {}
                    Err(e) => return ControlFlow::Break(AttemptEnd::Fatal(e)),
                }
            }
            m => tracing::debug!(player = self.ctx.index, msg = %m.type_name(), "ignored before subscribe"),
        }
        ControlFlow::Continue(())
    }

    fn subscribe(&mut self, streamer: String) {
        let cfg = self.ctx.cfg;
        self.report.stats.streamer_id = Some(streamer.clone());
        self.ctx.live.set_streamer(&streamer);
        self.send(&Message::Subscribe { streamer_id: streamer.clone() });
        let cancel = self.cancel.child_token();
        let dc =
            DcSession::new(DcBehaviour { input_rate: cfg.input_rate, latency_test: cfg.latency_test }, cancel.clone())
                .with_live(self.ctx.live.clone());
        if cfg.latency_test {
            // Frame latencies wait for the first clock-offset estimate.
            self.ctx.live.clock_offset.await_estimate();
        }
        self.subscribed = Some(Subscribed {
            streamer,
            dc,
            cancel,
            peer: None,
            early_candidates: Vec::new(),
            gathered: false,
            local_candidates: 0,
        });
        self.phase = "waiting for the offer";
    }

    async fn on_offer(&mut self, sdp: &str, player_id: Option<String>, sfu: Option<bool>) -> ControlFlow<AttemptEnd> {
        let cfg = self.ctx.cfg;
        self.report.stats.offers += 1;
        let now = self.ms(Instant::now());
        self.report.stats.times.offer_ms.get_or_insert(now.unwrap_or_default());
        if player_id.is_some() {
            self.report.stats.player_id = player_id;
        }
        let sfu = sfu.unwrap_or(false);
        self.report.stats.sfu = Some(sfu);
        self.phase = "ICE";
        if cfg.signalling_only {
            self.send(&Message::Answer {
                sdp: canned::answer_sdp(sdp),
                player_id: None,
                min_bitrate_bps: None,
                max_bitrate_bps: None,
            });
            for c in canned::candidates(sdp) {
                self.send(&Message::IceCandidate { candidate: c, player_id: None });
            }
            self.on_joined(Instant::now());
            return ControlFlow::Continue(());
        }
        let Some(sub) = self.subscribed.as_mut() else { return ControlFlow::Continue(()) };
        if sub.peer.is_none() {
            let Some(rtc) = self.ctx.rtc.clone() else {
                return ControlFlow::Break(AttemptEnd::Fatal(PlayerError::Rtc("no WebRTC context".into())));
            };
            let created = PeerSession::new(
                rtc,
                &self.options,
                self.peer_tx.clone(),
                self.ctx.live.clone(),
                sub.dc.clone(),
                sub.cancel.clone(),
            )
            .await;
            match created {
                Ok(p) => sub.peer = Some(p),
                Err(e) => return ControlFlow::Break(AttemptEnd::Fatal(e)),
            }
        }
        let Some(p) = sub.peer.as_ref() else { return ControlFlow::Continue(()) };
        let answer = match p.answer(sdp).await {
            Ok(answer) => answer,
            Err(e) => return ControlFlow::Break(AttemptEnd::Lost(e)),
        };
        self.send(&Message::Answer { sdp: answer, player_id: None, min_bitrate_bps: None, max_bitrate_bps: None });
        if let Some((spatial_layer, temporal_layer)) = cfg.layer {
            self.send(&Message::LayerPreference { spatial_layer, temporal_layer, player_id: None });
        }
        if sfu {
            self.send(&Message::DataChannelRequest { player_id: None });
        }
        ControlFlow::Continue(())
    }

    async fn on_remote_candidate(&mut self, candidate: IceCandidate) {
        let Some(sub) = self.subscribed.as_mut() else { return };
        match sub.peer.as_ref() {
            Some(p) if sub.gathered => {
                if let Err(e) = p.add_candidate(candidate).await {
                    tracing::warn!(player = self.ctx.index, error = %e, "remote candidate refused");
                }
            }
            _ => sub.early_candidates.push(candidate),
        }
    }

    async fn on_peer(&mut self, event: PeerEvent) -> ControlFlow<AttemptEnd> {
        match event {
            PeerEvent::LocalCandidate(c) => {
                if let Some(sub) = self.subscribed.as_mut() {
                    sub.local_candidates += 1;
                }
                self.send(&Message::IceCandidate { candidate: c, player_id: None })
            }
            PeerEvent::GatheringDone => {
                if let Some(sub) = self.subscribed.as_mut() {
                    sub.gathered = true;
                    let relay_only = self.ctx.rtc.as_ref().is_some_and(|r| r.path.relay_only);
                    if relay_only && sub.local_candidates == 0 {
                        let why = sub.peer.as_ref().and_then(PeerSession::turn_refusal).unwrap_or_else(|| {
                            "no relay candidate: no TURN server answered (iceServers of the server's config, \
                             on 127.0.0.1 with --ice-loopback-only)"
                                .to_string()
                        });
                        return ControlFlow::Break(AttemptEnd::Fatal(PlayerError::TurnRefused(why)));
                    }
                    if let Some(p) = sub.peer.as_ref() {
                        for c in sub.early_candidates.drain(..) {
                            if let Err(e) = p.add_candidate(c).await {
                                tracing::warn!(player = self.ctx.index, error = %e, "remote candidate refused");
                            }
                        }
                    }
                }
            }
            PeerEvent::IceConnected(t) => {
                let at = self.ms(t).unwrap_or_default();
                self.report.stats.times.ice_connected_ms.get_or_insert(at);
                self.phase = "DTLS";
            }
            PeerEvent::Connected(t) => {
                let at = self.ms(t).unwrap_or_default();
                self.report.stats.times.dtls_connected_ms.get_or_insert(at);
                self.phase = "waiting for RTP";
            }
            PeerEvent::FirstRtp(t) => {
                self.report.stats.times.first_rtp_ms = self.ms(t);
                self.on_joined(t);
            }
            PeerEvent::FirstKeyframe(t) => self.report.stats.times.first_keyframe_ms = self.ms(t),
            PeerEvent::SfuChannelsOpen => self.send(&Message::PeerDataChannelsReady { player_id: None }),
            PeerEvent::Failed(why) => {
                let e = match self.turn_refusal() {
                    Some(refusal) => PlayerError::TurnRefused(refusal),
                    None => PlayerError::PeerFailed(why),
                };
                return ControlFlow::Break(AttemptEnd::Lost(e));
            }
        }
        ControlFlow::Continue(())
    }
}

/// Pick the streamer from a `streamerList`. `Ok(None)`: wait and re-list.
///
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
