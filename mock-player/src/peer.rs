//! One WebRTC peer connection to the streamer (or SFU): answer the offer,
//! trickle ICE, read RTP into [`RtpStats`], wire the data channel.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use proto::rtc::repair_traffic::{RepairCounters, RepairTraffic};
use proto::IceCandidate;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::data_channel::{DataChannel, RTCDataChannelInit};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceConnectionState, RTCIceGatheringState, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};

use crate::datachannel::{DcChannel, DcSession};
use crate::error::PlayerError;
use crate::keyframe_requests::KeyframeRequests;
use crate::live::Live;
use crate::rtc::{filter_sdp_candidates, RtcContext};
use crate::rtc::{from_rtc_candidate, to_rtc_candidate};
use crate::rtp_stats::{Arrival, Codec, RtpStats, TrackSummary};
use crate::turn_allocations::TurnAllocations;

/// The negotiated `abs-capture-time` id (0: none), set by the answer and read
/// by the track readers.
type CaptureTimeId = Arc<AtomicU16>;

/// What the peer connection reports to the player's loop.
#[derive(Debug)]
pub enum PeerEvent {
    LocalCandidate(IceCandidate),
    /// Local gathering finished (every local candidate was reported before).
    GatheringDone,
    IceConnected(Instant),
    /// The peer connection is connected: ICE and the DTLS handshake are done.
    Connected(Instant),
    FirstRtp(Instant),
    FirstKeyframe(Instant),
    /// Through an SFU: the pre-negotiated receive channel opened.
    SfuChannelsOpen,
    Failed(String),
}

/// The receive statistics of a peer connection's tracks, in arrival order.
type Tracks = Arc<Mutex<Vec<Arc<Mutex<RtpStats>>>>>;

/// The connection's event handler: forwards its events to the player's loop
/// and starts a reader per remote track and data channel. The connection
/// owns it, so it holds nothing that owns the connection (no peer
/// connection, no channel, no track): no reference cycle keeps a finished
/// connection alive.
struct PeerEvents {
    events: mpsc::UnboundedSender<PeerEvent>,
    tracks: Tracks,
    capture_time_id: CaptureTimeId,
    live: Arc<Live>,
    dc: DcSession,
    cancel: CancellationToken,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PeerEvents {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) if !init.candidate.is_empty() => {
                let _ = self.events.send(PeerEvent::LocalCandidate(from_rtc_candidate(init)));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "local ICE candidate not serialisable"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.events.send(PeerEvent::GatheringDone);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let event = match state {
            RTCIceConnectionState::Connected => PeerEvent::IceConnected(Instant::now()),
            RTCIceConnectionState::Failed => PeerEvent::Failed("ICE failed".into()),
            _ => return,
        };
        let _ = self.events.send(event);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let event = match state {
            RTCPeerConnectionState::Connected => PeerEvent::Connected(Instant::now()),
            RTCPeerConnectionState::Failed => PeerEvent::Failed("peer connection failed".into()),
            _ => return,
        };
        let _ = self.events.send(event);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // Read on a task of its own: handlers run on the connection's driver.
        tokio::spawn(read_track(
            track,
            self.tracks.clone(),
            self.capture_time_id.clone(),
            self.events.clone(),
            self.live.clone(),
            self.cancel.clone(),
        ));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        tracing::debug!("data channel from streamer");
        let channel = DcChannel::in_band(channel);
        self.dc.attach(channel.clone(), channel, None);
    }
}

/// One peer connection and its receive statistics.
pub struct PeerSession {
    pc: Arc<dyn PeerConnection>,
    ctx: Arc<RtcContext>,
    tracks: Tracks,
    capture_time_id: CaptureTimeId,
    repair: Arc<RepairCounters>,
    turn: Arc<Mutex<TurnAllocations>>,
    pub dc: DcSession,
    cancel: CancellationToken,
}

impl PeerSession {
    pub async fn new(
        ctx: Arc<RtcContext>,
        peer_connection_options: &Value,
        events: mpsc::UnboundedSender<PeerEvent>,
        live: Arc<Live>,
        dc: DcSession,
        cancel: CancellationToken,
    ) -> Result<PeerSession, PlayerError> {
        let tracks = Tracks::default();
        let capture_time_id = CaptureTimeId::default();
        let handler = PeerEvents {
            events,
            tracks: tracks.clone(),
            capture_time_id: capture_time_id.clone(),
            live,
            dc: dc.clone(),
            cancel: cancel.clone(),
        };
        let repair = Arc::new(RepairCounters::default());
        let turn = Arc::new(Mutex::new(TurnAllocations::default()));
        let pc =
            ctx.new_peer_connection(peer_connection_options, Arc::new(handler), repair.clone(), turn.clone()).await?;
        Ok(PeerSession { pc, ctx, tracks, capture_time_id, repair, turn, dc, cancel })
    }

    /// Apply the remote offer and return our answer's SDP. Candidates are
    /// trickled (`iceCandidate`), as a browser does: the answer goes out at
    /// once. (Checks that overtake our candidates make peer-reflexive pairs;
    /// [`crate::rtc::settings`] lets the player use those at once.)
    pub async fn answer(&self, offer_sdp: &str) -> Result<String, PlayerError> {
        let sdp = if self.ctx.loopback_only { filter_sdp_candidates(offer_sdp) } else { offer_sdp.to_string() };
        self.pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
        // The answer's video codecs in our order, not the offer's: a browser
        // running Epic's frontend calls `setCodecPreferences` likewise. The
        // audio transceiver refuses video codecs: that error is expected.
        let order = crate::rtc::in_offer_terms(&self.ctx.codec_order, offer_sdp);
        for transceiver in self.pc.get_transceivers().await {
            if order.is_empty() {
                break;
            }
            if let Err(e) = transceiver.set_codec_preferences(order.clone()).await {
                tracing::trace!(error = %e, "codec order not applied (not a video transceiver)");
            }
        }
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer.clone()).await?;
        // The answer takes the offer's ids; both must have the extension.
        let id = proto::capture_time::sdp_extension_id(offer_sdp)
            .filter(|_| proto::capture_time::sdp_extension_id(&answer.sdp).is_some());
        self.capture_time_id.store(id.map_or(0, u16::from), Ordering::Relaxed);
        Ok(answer.sdp)
    }

    /// Add a remote candidate (dropped if the ICE policy forbids its address).
    pub async fn add_candidate(&self, c: IceCandidate) -> Result<(), PlayerError> {
        if c.candidate.is_empty() {
            return Ok(()); // end-of-candidates
        }
        if !self.ctx.accept_remote_candidate(&c.candidate) {
            tracing::debug!(candidate = %c.candidate, "dropping non-loopback remote candidate");
            return Ok(());
        }
        self.pc.add_ice_candidate(to_rtc_candidate(&c)).await?;
        Ok(())
    }

    /// Through an SFU: open the pre-negotiated channels. `PeerEvent::SfuChannelsOpen`
    /// follows when the receive channel is open (the browser frontend sends
    /// `peerDataChannelsReady` then).
    pub async fn open_sfu_channels(
        &self,
        send_id: u16,
        recv_id: u16,
        events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<(), PlayerError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if rx.await.is_ok() {
                let _ = events.send(PeerEvent::SfuChannelsOpen);
            }
        });
        let init = |id| RTCDataChannelInit { ordered: true, negotiated: Some(id), ..Default::default() };
        if send_id == recv_id {
            let ch = self.pc.create_data_channel("datachannel", Some(init(send_id))).await?;
            let ch = DcChannel::negotiated(ch, send_id);
            self.dc.attach(ch.clone(), ch, Some(tx));
        } else {
            let send = self.pc.create_data_channel("send-datachannel", Some(init(send_id))).await?;
            let recv = self.pc.create_data_channel("recv-datachannel", Some(init(recv_id))).await?;
            self.dc.attach(DcChannel::negotiated(recv, recv_id), DcChannel::negotiated(send, send_id), Some(tx));
        }
        Ok(())
    }

    /// The NACKs, PLIs and FIRs this connection sent (and what it received).
    pub fn repair_traffic(&self) -> RepairTraffic {
        self.repair.snapshot()
    }

    /// Why a TURN server refused this connection's allocation, if one did.
    pub fn turn_refusal(&self) -> Option<String> {
        self.turn.lock().ok().and_then(|t| t.refusal().map(String::from))
    }

    pub fn track_summaries(&self) -> Vec<TrackSummary> {
        self.tracks
            .lock()
            .map(|t| t.iter().filter_map(|s| s.lock().ok().map(|s| s.summary())).collect())
            .unwrap_or_default()
    }

    pub async fn close(&self) {
        self.cancel.cancel();
        if let Err(e) = self.pc.close().await {
            tracing::debug!(error = %e, "closing peer connection");
        }
        // A player process may join again and again for days (`--reconnect`, agents).
        proto::rtc::release_freed_memory();
    }
}

/// Count one remote track's RTP into a new [`RtpStats`] (added to `tracks`)
/// until the track ends or the session is cancelled.
async fn read_track(
    track: Arc<dyn TrackRemote>,
    tracks: Tracks,
    capture_time_id: CaptureTimeId,
    events: mpsc::UnboundedSender<PeerEvent>,
    live: Arc<Live>,
    cancel: CancellationToken,
) {
    let kind = track.kind().await.to_string();
    let is_video = kind == "video";
    // The track opens on its first RTP packet, whose SSRC and codec 0.21
    // records before announcing the track.
    let mut codec_known = false;
    let stats = Arc::new(Mutex::new(RtpStats::new(Codec::Other, &kind, 90_000)));
    if let Some(&ssrc) = track.ssrcs().await.first() {
        codec_known = set_codec(&*track, ssrc, &stats).await;
    }
    if let Ok(mut t) = tracks.lock() {
        t.push(stats.clone());
    }
    let mut first = true;
    let mut first_key = true;
    let mut keyframes = KeyframeRequests::default();
    // The wall clock read once: each packet's arrival on it is this plus the
    // monotonic time since (one clock read per packet, not two).
    let (wall_base, wall_base_ms) = (Instant::now(), proto::capture_time::unix_ms_now());
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = track.poll() => e,
        };
        let pkt = match event {
            Some(TrackRemoteEvent::OnRtpPacket(pkt)) => pkt,
            Some(TrackRemoteEvent::OnEnded) | None => {
                if !cancel.is_cancelled() {
                    tracing::warn!(kind = %kind, "track ended while the session was live");
                }
                return;
            }
            Some(_) => continue,
        };
        if !codec_known {
            codec_known = set_codec(&*track, pkt.header.ssrc, &stats).await;
        }
        let now = Instant::now();
        let capture_ms = match capture_time_id.load(Ordering::Relaxed) {
            0 => None,
            id => pkt.header.get_extension(id as u8).and_then(|v| proto::capture_time::decode_unix_ms(&v)),
        };
        let arrival = Arrival {
            now,
            now_unix_ms: wall_base_ms + now.duration_since(wall_base).as_secs_f64() * 1000.0,
            seq: pkt.header.sequence_number,
            timestamp: pkt.header.timestamp,
            marker: pkt.header.marker,
            payload: &pkt.payload,
            capture_ms,
            clock_offset_ms: live.clock_offset.get(),
        };
        let (new_frame, new_key, request_keyframe) = match stats.lock() {
            Ok(mut s) => {
                let freezes = |s: &RtpStats| s.delivery.as_ref().map_or(0, |d| d.freezes);
                let before = freezes(&s);
                let (new_frame, new_key) = s.on_arrival(&arrival);
                let new_freezes = freezes(&s) - before;
                if new_freezes > 0 {
                    live.freezes.fetch_add(new_freezes, Ordering::Relaxed);
                }
                let request = is_video && s.codec.needs_keyframe() && keyframes.on_packet(now, new_key, s.lost());
                s.plis_sent = keyframes.sent;
                (new_frame, new_key, request)
            }
            Err(_) => return,
        };
        if request_keyframe {
            let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: pkt.header.ssrc };
            if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
                tracing::debug!(error = %e, "cannot send a PLI");
            }
        }
        live.add_media(u64::from(is_video && new_frame), pkt.payload.len() as u64);
        if first {
            first = false;
            let _ = events.send(PeerEvent::FirstRtp(now));
        }
        if new_key && first_key && is_video {
            first_key = false;
            let _ = events.send(PeerEvent::FirstKeyframe(now));
        }
    }
}

/// Give `stats` the codec and clock rate negotiated for `ssrc`; false if
/// the track does not know it (yet).
async fn set_codec(track: &dyn TrackRemote, ssrc: u32, stats: &Mutex<RtpStats>) -> bool {
    let Some(codec) = track.codec(ssrc).await else { return false };
    if let Ok(mut s) = stats.lock() {
        s.codec = Codec::from_mime(&codec.mime_type);
        // "video/VP8" → "VP8", "audio/opus" → "opus": the name a browser's
        // stats give (`RTCCodecStats.mimeType`'s subtype).
        s.codec_name = codec.mime_type.split_once('/').map_or(codec.mime_type.as_str(), |(_, sub)| sub).to_string();
        s.clock_rate = codec.clock_rate.max(1);
    }
    true
}
