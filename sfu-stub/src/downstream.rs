//! One peer connection per player: offer the forwarded tracks (`sfu: true`)
//! and the pre-negotiated data channels, apply the answer, trickle ICE,
//! subscribe to the forwarders once the player can receive, turn the
//! player's PLI/FIR into keyframe requests, and tear down.
//!
//! "Can receive" is not "connected" here: we are the DTLS server (the
//! player's answer is `a=setup:active`), so our side is connected as soon as
//! we have sent our last handshake flight, half a round trip before the
//! player has it, and a player may set up its RTP receivers only after that
//! (webrtc-rs does). Media sent in between is lost, and when it is the
//! keyframe a new player starts with (from the forwarder's cache, sent at
//! once), the player has nothing to decode until the next one. So media
//! starts when the player's data channels open (the SCTP association with it
//! is up, which needs its DTLS done; webrtc-rs starts SCTP after the
//! receivers), or [`READY_FALLBACK`] after "connected" for a player without
//! SCTP.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use proto::capture_time::ABS_CAPTURE_TIME_URI;
use proto::client::SignallingSender;
use proto::rtc::keyframe_requests::is_keyframe_request;
use proto::rtc::{event_channel, set_local, to_rtc_candidate, PeerEvent, PeerSettings};
use proto::{IceCandidate, Message};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};
use webrtc::rtp_transceiver::RtpSender;

use crate::config::SfuConfig;
use crate::datachannel_relay::DataChannelRelay;
use crate::error::SfuError;
use crate::events::{Internal, SfuEvent};
use crate::forwarder::{Forwarder, PlayerControl, PlayerStream, Subscription};
use crate::rtc::{candidate_allowed, filter_sdp};
use crate::stats::SfuStats;

/// Start media this long after "connected" if the player's data channels
/// have not opened by then (see the module docs).
pub const READY_FALLBACK: Duration = Duration::from_millis(250);

/// What the signalling session forwards to a player's task.
#[derive(Debug)]
pub enum DownstreamCommand {
    Answer(String),
    Candidate(IceCandidate),
}

/// Everything one player's task needs.
pub struct DownstreamParams {
    pub player_id: String,
    /// Tells this task's end apart from a later task for the same id.
    pub key: u64,
    pub settings: PeerSettings,
    pub config: Arc<SfuConfig>,
    pub signal: SignallingSender,
    pub peer_options: Value,
    pub media: Vec<Arc<Forwarder>>,
    pub scalability_mode: Option<String>,
    pub control: Arc<PlayerControl>,
    pub relay: Arc<DataChannelRelay>,
    pub stats: Arc<SfuStats>,
    pub internal: mpsc::UnboundedSender<Internal>,
    pub events: broadcast::Sender<SfuEvent>,
}

/// Run one player's peer connection until it fails, `commands` closes or
/// `cancel` fires.
pub async fn run_downstream(
    p: DownstreamParams,
    commands: mpsc::UnboundedReceiver<DownstreamCommand>,
    cancel: CancellationToken,
) {
    p.stats.players.fetch_add(1, Relaxed);
    p.stats.players_total.fetch_add(1, Relaxed);
    let (handler, events) = event_channel();
    // Offer the player only the video codec we forward (what the streamer
    // sends us): the player cannot pick another.
    let forwarded: Vec<_> = p.media.iter().map(|f| f.codec).filter(|c| c.needs_keyframe()).collect();
    let settings = PeerSettings { video_codecs: proto::rtc::VideoCodecs::new(&forwarded), ..p.settings };
    match proto::rtc::new_peer_connection_counted(&settings, &p.peer_options, handler, p.stats.repair.clone()).await {
        Ok(pc) => {
            match setup(&p, pc.as_ref()).await {
                Ok((tracks, opened)) => drive(&p, pc.as_ref(), tracks, events, opened, commands, &cancel).await,
                Err(e) => {
                    tracing::warn!(player = %p.player_id, error = %e, "cannot set up the player's peer connection")
                }
            }
            if let Err(e) = pc.close().await {
                tracing::debug!(player = %p.player_id, error = %e, "close");
            }
        }
        Err(e) => tracing::warn!(player = %p.player_id, error = %e, "cannot create the player's peer connection"),
    }
    p.stats.players.fetch_sub(1, Relaxed);
    proto::rtc::release_freed_memory();
    let _ = p.events.send(SfuEvent::PlayerClosed { player_id: p.player_id.clone() });
    let _ = p.internal.send(Internal::PlayerClosed { player_id: p.player_id.clone(), key: p.key });
}

/// One forwarded track towards the player.
struct PlayerTrack {
    forwarder: Arc<Forwarder>,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
}

/// The player's tracks, and a receiver that fires when its data channels open.
type Setup = (Vec<PlayerTrack>, tokio::sync::oneshot::Receiver<()>);

async fn setup(p: &DownstreamParams, pc: &dyn PeerConnection) -> Result<Setup, SfuError> {
    let mut tracks = Vec::new();
    for forwarder in &p.media {
        let info = &forwarder.info;
        let ssrc = rand::random::<u32>();
        let coding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            active: true,
            codec: info.codec.clone(),
            ..Default::default()
        };
        let track = MediaStreamTrack::new(
            info.stream_id.clone(),
            info.track_id.clone(),
            info.track_id.clone(),
            info.kind,
            vec![coding],
        );
        let track = Arc::new(TrackLocalStaticRTP::new(track));
        let sender = pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await?;
        tracks.push(PlayerTrack { forwarder: forwarder.clone(), track, sender, ssrc });
    }
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
    p.relay.open_player_side(pc, &p.player_id, opened_tx).await?;
    let sdp = set_local(pc, pc.create_offer(None).await?).await?;
    let _ = p.signal.send(&Message::Offer {
        sdp,
        player_id: Some(p.player_id.clone()),
        sfu: Some(true),
        multiplex: None,
        scalability_mode: p.scalability_mode.clone(),
    });
    Ok((tracks, opened_rx))
}

async fn drive(
    p: &DownstreamParams,
    pc: &dyn PeerConnection,
    tracks: Vec<PlayerTrack>,
    mut events: mpsc::UnboundedReceiver<PeerEvent>,
    mut opened_rx: tokio::sync::oneshot::Receiver<()>,
    mut commands: mpsc::UnboundedReceiver<DownstreamCommand>,
    cancel: &CancellationToken,
) {
    let player_id = &p.player_id;
    // The player can receive (module docs): its channels opened, or
    // READY_FALLBACK after "connected".
    let mut opened = false;
    let mut connected_at: Option<tokio::time::Instant> = None;
    let mut have_answer = false;
    // Remote candidates are added once the answer is applied and our own
    // candidates are gathered (see the upstream: avoids a peer-reflexive
    // candidate).
    let mut gathered = false;
    let mut early: Vec<IceCandidate> = Vec::new();
    let mut subscriptions: Vec<Subscription> = Vec::new();
    // Ends the keyframe-request readers with this connection.
    let readers = cancel.child_token();
    let _stop_readers = readers.clone().drop_guard();
    for t in &tracks {
        let reader = KeyframeRequestReader {
            forwarder: t.forwarder.clone(),
            control: p.control.clone(),
            stats: p.stats.clone(),
            cancel: readers.clone(),
        };
        tokio::spawn(reader.run(t.track.clone()));
    }
    loop {
        let fallback = connected_at.map(|t| t + READY_FALLBACK);
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = &mut opened_rx, if !opened => {
                opened = true;
                if r.is_ok() {
                    subscribe(p, &tracks, &mut subscriptions).await;
                }
            }
            _ = tokio::time::sleep_until(fallback.unwrap_or_else(tokio::time::Instant::now)),
                if fallback.is_some() && subscriptions.is_empty() => {
                subscribe(p, &tracks, &mut subscriptions).await;
            }
            command = commands.recv() => match command {
                None => break,
                Some(DownstreamCommand::Answer(sdp)) => {
                    let applied = match RTCSessionDescription::answer(filter_sdp(p.config.ice, &sdp)) {
                        Ok(d) => pc.set_remote_description(d).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = applied {
                        tracing::warn!(player = %player_id, error = %e, "bad answer");
                        break;
                    }
                    have_answer = true;
                    if gathered {
                        for c in early.drain(..) {
                            add_candidate(p, pc, &c).await;
                        }
                    }
                }
                Some(DownstreamCommand::Candidate(c)) => {
                    if have_answer && gathered {
                        add_candidate(p, pc, &c).await;
                    } else {
                        early.push(c);
                    }
                }
            },
            event = events.recv() => match event {
                Some(PeerEvent::LocalCandidate(candidate)) => {
                    let _ = p.signal.send(&Message::IceCandidate { candidate, player_id: Some(player_id.clone()) });
                }
                Some(PeerEvent::GatheringDone) => {
                    gathered = true;
                    if have_answer {
                        for c in early.drain(..) {
                            add_candidate(p, pc, &c).await;
                        }
                    }
                }
                Some(PeerEvent::State(RTCPeerConnectionState::Connected)) => {
                    tracing::info!(player = %player_id, "player connected");
                    if connected_at.is_none() {
                        connected_at = Some(tokio::time::Instant::now());
                        for t in &tracks {
                            t.forwarder.prepare(&p.control, READY_FALLBACK);
                        }
                    }
                    let _ = p.events.send(SfuEvent::PlayerConnected { player_id: player_id.clone() });
                }
                Some(PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) | None => {
                    tracing::info!(player = %player_id, "player's peer connection failed or closed");
                    break;
                }
                Some(PeerEvent::State(other)) => tracing::debug!(player = %player_id, state = %other, "player peer state"),
                // A player sends nothing the SFU uses (its channels are the negotiated ones).
                Some(_) => {}
            },
        }
    }
}

/// Start forwarding to the player (once).
async fn subscribe(p: &DownstreamParams, tracks: &[PlayerTrack], subscriptions: &mut Vec<Subscription>) {
    if !subscriptions.is_empty() {
        return;
    }
    tracing::debug!(player = %p.player_id, "starting media");
    for t in tracks {
        let stream = PlayerStream {
            ssrc: t.ssrc,
            payload_type: payload_type(t).await,
            capture_time_id: capture_time_id(t).await,
        };
        subscriptions.push(t.forwarder.subscribe(t.track.clone(), stream, p.control.clone()));
    }
}

/// The player's `abs-capture-time` extension id (video only: the streamer stamps video).
async fn capture_time_id(t: &PlayerTrack) -> Option<u8> {
    if t.forwarder.info.kind != RtpCodecKind::Video {
        return None;
    }
    proto::rtc::media::negotiated_extension_id(t.sender.as_ref(), ABS_CAPTURE_TIME_URI).await
}

/// The payload type negotiated for the forwarded codec (ours: we offered).
async fn payload_type(t: &PlayerTrack) -> u8 {
    let mime = &t.forwarder.info.codec.mime_type;
    let negotiated = t.sender.get_parameters().await.ok().and_then(|params| {
        params
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
            .map(|c| c.payload_type)
    });
    negotiated.unwrap_or_else(|| match t.forwarder.codec {
        crate::codec::Codec::Other => proto::rtc::OPUS_PAYLOAD_TYPE,
        video => proto::rtc::codec_parameters(video).map_or(proto::rtc::H264_PAYLOAD_TYPE, |c| c.payload_type),
    })
}

async fn add_candidate(p: &DownstreamParams, pc: &dyn PeerConnection, c: &IceCandidate) {
    if c.candidate.is_empty() || !candidate_allowed(p.config.ice, &c.candidate) {
        return;
    }
    if let Err(e) = pc.add_ice_candidate(to_rtc_candidate(c)).await {
        tracing::warn!(player = %p.player_id, error = %e, "player candidate refused");
    }
}

/// Reads the player's keyframe requests (PLI/FIR) about one track and turns
/// them into a keyframe request for the player's layer.
struct KeyframeRequestReader {
    forwarder: Arc<Forwarder>,
    control: Arc<PlayerControl>,
    stats: Arc<SfuStats>,
    cancel: CancellationToken,
}

impl KeyframeRequestReader {
    async fn run(self, track: Arc<TrackLocalStaticRTP>) {
        loop {
            let event = tokio::select! {
                _ = self.cancel.cancelled() => return,
                e = track.poll() => e,
            };
            let Some(TrackLocalEvent::OnRtcpPacket(packets)) = event else { return };
            let requests = packets.iter().filter(|p| is_keyframe_request(p.as_ref())).count();
            if requests > 0 {
                self.stats.player_plis.fetch_add(requests as u64, Relaxed);
                let layer = self.control.target.load(Relaxed).min(self.forwarder.layer_count().saturating_sub(1));
                self.forwarder.request_keyframe(layer);
            }
        }
    }
}
