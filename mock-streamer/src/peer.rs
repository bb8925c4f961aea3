//! One WebRTC peer connection per player (or per SFU): the offer with video
//! (every codec the streamer encodes, most preferred first) and the
//! `datachannel`, trickle ICE both ways, the answer (whose first video codec
//! is the one this player gets), keyframes on PLI/FIR, the fan-out
//! subscription of that codec once connected, and teardown.

use std::sync::Arc;

use bytes::Bytes;
use proto::capture_time::ABS_CAPTURE_TIME_URI;
use proto::client::SignallingSender;
use proto::rtc::keyframe_requests::keyframe_request_ssrcs;
use proto::rtc::media::{negotiated_extension_id, opus_codec};
use proto::rtc::{event_channel, set_local, to_rtc_candidate, PeerEvent, PeerSettings, RtcError};
use proto::rtp_payload::Codec;
use proto::{IceCandidate, Message};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use rtc::sdp::extmap::{SDES_MID_URI, SDES_RTP_STREAM_ID_URI};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use webrtc::data_channel::{DataChannel, RTCDataChannelInit};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};
use webrtc::rtp_transceiver::RtpSender;

use crate::datachannel::{attach, Departure, Protocol};
use crate::events::StreamerEvent;
use crate::fanout::{Fanout, PacketExtensions, Subscription, VideoSources, SIMULCAST_RIDS};
use crate::stats::StreamerStats;

/// The MediaStream id and track id in our offers (the browser needs a
/// MediaStream: msid must be present).
pub const STREAM_ID: &str = "pixelstreaming_av_stream_id";
pub const VIDEO_TRACK_ID: &str = "pixelstreaming_video_track_label";
pub const AUDIO_TRACK_ID: &str = "pixelstreaming_audio_track_label";

/// Errors setting up a peer connection.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    #[error(transparent)]
    Rtc(#[from] RtcError),
}

/// What the signalling session forwards to a peer task.
#[derive(Debug)]
pub enum PeerCommand {
    Answer(String),
    Candidate(IceCandidate),
    /// `streamerDataChannels` from this SFU: open pre-negotiated channels for
    /// `player_id` with these SCTP stream ids.
    SfuDataChannels {
        player_id: String,
        send_id: u16,
        recv_id: u16,
    },
}

/// What every peer of one streamer shares.
pub struct PeerShared {
    pub streamer: usize,
    /// How each peer connection is built (codecs, interceptors, ICE policy).
    pub settings: PeerSettings,
    pub video: Arc<VideoSources>,
    /// The Opus tone, with `--audio`.
    pub audio: Option<Arc<Fanout>>,
    pub stats: Arc<StreamerStats>,
    pub protocol: Arc<Protocol>,
    pub events: broadcast::Sender<StreamerEvent>,
}

/// Everything one peer task needs.
pub struct PeerParams {
    pub shared: Arc<PeerShared>,
    pub signal: SignallingSender,
    /// `peerConnectionOptions` from `config`.
    pub peer_options: Value,
    pub player_id: String,
    pub data_channel: bool,
    pub sfu: bool,
}

/// Run the peer connection of one player until `commands` closes, `cancel`
/// fires, or the connection fails.
pub async fn run_peer(params: PeerParams, commands: mpsc::UnboundedReceiver<PeerCommand>, cancel: CancellationToken) {
    let shared = params.shared.clone();
    let player_id = params.player_id.clone();
    let (handler, events) = event_channel();
    match proto::rtc::new_peer_connection_counted(
        &shared.settings,
        &params.peer_options,
        handler,
        shared.stats.repair.clone(),
    )
    .await
    {
        Ok(pc) => {
            match setup(&params, pc.as_ref()).await {
                Ok(senders) => drive(&params, pc.as_ref(), senders, events, commands, cancel).await,
                Err(e) => tracing::warn!(player = %player_id, error = %e, "cannot set up the peer connection"),
            }
            if let Err(e) = pc.close().await {
                tracing::debug!(player = %player_id, error = %e, "close");
            }
        }
        Err(e) => tracing::warn!(player = %player_id, error = %e, "cannot create the peer connection"),
    }
    shared.stats.remove_player(&player_id);
    proto::rtc::release_freed_memory();
    let _ = shared.events.send(StreamerEvent::PeerClosed { streamer: shared.streamer, player_id });
}

/// The fan-outs that feed one track: one, or one per simulcast encoding
/// with its rid.
type Layers = Vec<(Arc<Fanout>, Option<&'static str>)>;

/// One sender (track) and the fan-outs that feed it.
struct Sender {
    /// The track bound to the sender: what packets are written to (after a
    /// `replace_track` too: it holds the binding to the connection).
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    layers: Layers,
    /// Player stats count video; audio is counted per streamer.
    video: bool,
}

/// The encoding of `fanout` in a track: its SSRC, and its rid with simulcast.
fn encoding(codec: &RTCRtpCodec, fanout: &Fanout, rid: Option<&str>) -> RTCRtpEncodingParameters {
    RTCRtpEncodingParameters {
        rtp_coding_parameters: RTCRtpCodingParameters {
            rid: rid.unwrap_or_default().to_owned(),
            ssrc: Some(fanout.ssrc()),
            ..Default::default()
        },
        active: true,
        codec: codec.clone(),
        ..Default::default()
    }
}

async fn add_sender(
    pc: &dyn PeerConnection,
    track_id: &str,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    layers: Layers,
) -> Result<Sender, PeerError> {
    let codings = layers.iter().map(|(fanout, rid)| encoding(&codec, fanout, *rid)).collect();
    let track_id = track_id.to_owned();
    let track = MediaStreamTrack::new(STREAM_ID.to_owned(), track_id.clone(), track_id, kind, codings);
    let track = Arc::new(TrackLocalStaticRTP::new(track));
    let sender = pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await?;
    Ok(Sender { track, sender, layers, video: kind == RtpCodecKind::Video })
}

async fn setup(p: &PeerParams, pc: &dyn PeerConnection) -> Result<Vec<Sender>, PeerError> {
    let shared = &p.shared;
    // Declared in the most preferred codec; the answer may pick another
    // (same SSRCs: see `VideoSources`).
    let first = shared.video.first();
    let video_layers = video_layers(p, first);
    let codec = proto::rtc::codec_parameters(first.codec).map(|c| c.rtp_codec).unwrap_or_default();
    let video = add_sender(pc, VIDEO_TRACK_ID, RtpCodecKind::Video, codec, video_layers).await?;
    offer_every_codec(pc, video.sender.as_ref(), &shared.video).await?;
    let mut senders = vec![video];
    if let Some(audio) = &shared.audio {
        let layers = vec![(audio.clone(), None)];
        senders.push(add_sender(pc, AUDIO_TRACK_ID, RtpCodecKind::Audio, opus_codec(), layers).await?);
    }
    if p.data_channel {
        let dc = pc.create_data_channel("datachannel", Some(RTCDataChannelInit::default())).await?;
        attach(shared.protocol.clone(), p.player_id.clone(), dc.clone(), dc, Departure::WithConnection);
    }
    let sdp = set_local(pc, pc.create_offer(None).await?).await?;
    let _ = p.signal.send(&Message::Offer {
        sdp,
        player_id: Some(p.player_id.clone()),
        sfu: None,
        multiplex: None,
        scalability_mode: None,
    });
    Ok(senders)
}

/// Offer every codec the streamer encodes, most preferred first: webrtc 0.21
/// offers only the codec of a track's encodings unless the transceiver is
/// given its codecs.
async fn offer_every_codec(
    pc: &dyn PeerConnection,
    sender: &dyn RtpSender,
    video: &VideoSources,
) -> Result<(), PeerError> {
    let codecs: Vec<_> = video.by_codec.iter().filter_map(|l| proto::rtc::codec_parameters(l.codec)).collect();
    for transceiver in pc.get_transceivers().await {
        if let Ok(Some(s)) = transceiver.sender().await {
            if s.id() == sender.id() {
                transceiver.set_codec_preferences(codecs).await?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The layers of one codec this peer gets: with simulcast to an SFU one
/// encoding (rid) per layer on one sender, else the full layer.
fn video_layers(p: &PeerParams, layers: &crate::fanout::VideoLayers) -> Layers {
    if p.sfu && layers.simulcast() {
        layers.layers.iter().cloned().zip(SIMULCAST_RIDS.map(Some)).collect()
    } else {
        vec![(layers.full().clone(), None)]
    }
}

/// Switch the video sender to the codec the answer put first, before the
/// answer is applied (the connection binds the sender's interceptors to the
/// codec of its track's encodings then). `None` keeps the offer's first
/// codec (an answer without video, or with a codec we do not encode, which
/// a conforming answer cannot have).
async fn use_answer_codec(p: &PeerParams, senders: &mut [Sender], answer_sdp: &str) -> Codec {
    let shared = &p.shared;
    let first = shared.video.first().codec;
    let Some(layers) = proto::rtc::first_video_codec(answer_sdp).and_then(|c| shared.video.get(c)) else {
        return first;
    };
    let Some(sender) = senders.iter_mut().find(|s| s.video) else { return first };
    if layers.codec != first {
        let codec = proto::rtc::codec_parameters(layers.codec).map(|c| c.rtp_codec).unwrap_or_default();
        let video_layers = video_layers(p, layers);
        let codings = video_layers.iter().map(|(fanout, rid)| encoding(&codec, fanout, *rid)).collect();
        let id = VIDEO_TRACK_ID.to_owned();
        let track = MediaStreamTrack::new(STREAM_ID.to_owned(), id.clone(), id, RtpCodecKind::Video, codings);
        let replacement = Arc::new(TrackLocalStaticRTP::new(track));
        if let Err(e) = sender.sender.replace_track(replacement).await {
            tracing::warn!(player = %p.player_id, codec = layers.codec.name(), error = %e, "cannot switch the track's codec");
            return first;
        }
        sender.layers = video_layers;
    }
    layers.codec
}

async fn drive(
    p: &PeerParams,
    pc: &dyn PeerConnection,
    mut senders: Vec<Sender>,
    mut events: mpsc::UnboundedReceiver<PeerEvent>,
    mut commands: mpsc::UnboundedReceiver<PeerCommand>,
    cancel: CancellationToken,
) {
    let shared = &p.shared;
    let player_id = &p.player_id;
    let mut have_answer = false;
    let mut early_candidates: Vec<IceCandidate> = Vec::new();
    let mut subscriptions: Vec<Subscription> = Vec::new();
    // Ends the keyframe-request readers with this connection.
    let readers = cancel.child_token();
    let _stop_readers = readers.clone().drop_guard();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            command = commands.recv() => match command {
                None => break,
                Some(PeerCommand::Answer(sdp)) => {
                    let codec = use_answer_codec(p, &mut senders, &sdp).await;
                    shared.stats.player(player_id).set_codec(codec);
                    tracing::debug!(player = %player_id, codec = codec.name(), "answer");
                    let applied = match RTCSessionDescription::answer(sdp) {
                        Ok(d) => pc.set_remote_description(d).await,
                        Err(e) => Err(e),
                    };
                    match applied {
                        Ok(()) => {
                            have_answer = true;
                            for c in early_candidates.drain(..) {
                                add_candidate(pc, &c, player_id).await;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(player = %player_id, error = %e, "bad answer");
                            break;
                        }
                    }
                }
                Some(PeerCommand::Candidate(c)) => {
                    if have_answer {
                        add_candidate(pc, &c, player_id).await;
                    } else {
                        early_candidates.push(c);
                    }
                }
                Some(PeerCommand::SfuDataChannels { player_id: sfu_player, send_id, recv_id }) => {
                    match open_sfu_channels(pc, send_id, recv_id).await {
                        Ok((send_dc, recv_dc)) => {
                            attach(shared.protocol.clone(), sfu_player, send_dc, recv_dc, Departure::WithChannels)
                        }
                        Err(e) => tracing::warn!(sfu = %player_id, error = %e, "cannot open SFU data channels"),
                    }
                }
            },
            event = events.recv() => match event {
                Some(PeerEvent::LocalCandidate(candidate)) => {
                    let _ = p.signal.send(&Message::IceCandidate { candidate, player_id: Some(player_id.clone()) });
                }
                Some(PeerEvent::State(RTCPeerConnectionState::Connected)) => {
                    tracing::info!(player = %player_id, "peer connected");
                    if subscriptions.is_empty() {
                        for sender in &senders {
                            subscriptions.extend(subscribe(p, pc, sender).await);
                            tokio::spawn(read_keyframe_requests(sender.track.clone(), sender.layers.clone(), readers.clone()));
                        }
                    }
                    let _ = shared.events.send(StreamerEvent::PeerConnected {
                        streamer: shared.streamer,
                        player_id: player_id.clone(),
                    });
                }
                Some(PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) | None => {
                    tracing::info!(player = %player_id, "peer connection failed or closed");
                    break;
                }
                Some(PeerEvent::State(other)) => tracing::debug!(player = %player_id, state = %other, "peer state"),
                // Players send nothing we use: their tracks and channels are dropped.
                Some(_) => {}
            },
        }
    }
    drop(subscriptions);
}

/// Subscribe `sender`'s track to its fan-outs. A simulcast encoding's packets
/// carry the mid and rid header extensions the SFU tells the encodings apart
/// by (their ids as negotiated).
async fn subscribe(p: &PeerParams, pc: &dyn PeerConnection, sender: &Sender) -> Vec<Subscription> {
    let simulcast = sender.layers.iter().any(|(_, rid)| rid.is_some());
    let mid_and_rid_ids = if simulcast { extension_ids(pc, sender.sender.as_ref()).await } else { None };
    if simulcast && mid_and_rid_ids.is_none() {
        tracing::warn!(player = %p.player_id, "simulcast without negotiated mid/rid header extensions");
    }
    let capture_time = match sender.video {
        true => negotiated_extension_id(sender.sender.as_ref(), ABS_CAPTURE_TIME_URI).await,
        false => None,
    };
    let mut subscriptions = Vec::with_capacity(sender.layers.len());
    for (fanout, rid) in &sender.layers {
        let stats = match sender.video {
            true => p.shared.stats.player(&p.player_id),
            false => Arc::default(),
        };
        let mut extensions = PacketExtensions { capture_time, ..Default::default() };
        if let (Some((mid_id, mid, rid_id)), Some(rid)) = (&mid_and_rid_ids, rid) {
            extensions.fixed.push((*mid_id, Bytes::from(mid.clone().into_bytes())));
            extensions.fixed.push((*rid_id, Bytes::from_static(rid.as_bytes())));
        }
        subscriptions.push(fanout.subscribe(sender.track.clone(), extensions, stats));
    }
    subscriptions
}

/// The negotiated id of the mid extension, the sender's mid, and the id of
/// the rid extension.
async fn extension_ids(pc: &dyn PeerConnection, sender: &dyn RtpSender) -> Option<(u8, String, u8)> {
    let mid_id = negotiated_extension_id(sender, SDES_MID_URI).await?;
    let rid_id = negotiated_extension_id(sender, SDES_RTP_STREAM_ID_URI).await?;
    for transceiver in pc.get_transceivers().await {
        if let Ok(Some(s)) = transceiver.sender().await {
            if s.id() == sender.id() {
                let mid = transceiver.mid().await.ok().flatten()?;
                return Some((mid_id, mid, rid_id));
            }
        }
    }
    None
}

/// Read the keyframe requests (PLI/FIR) the player sends about `track` and
/// ask the fan-out of the requested SSRC for a keyframe (all of the track's
/// fan-outs when the SSRC is not one of them).
async fn read_keyframe_requests(track: Arc<TrackLocalStaticRTP>, layers: Layers, cancel: CancellationToken) {
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = track.poll() => e,
        };
        let Some(TrackLocalEvent::OnRtcpPacket(packets)) = event else { return };
        for ssrc in packets.iter().flat_map(|p| keyframe_request_ssrcs(p.as_ref())) {
            match layers.iter().find(|(f, _)| f.ssrc() == ssrc) {
                Some((fanout, _)) => fanout.request_keyframe(),
                None => layers.iter().for_each(|(f, _)| f.request_keyframe()),
            }
        }
    }
}

async fn add_candidate(pc: &dyn PeerConnection, c: &IceCandidate, player_id: &str) {
    if c.candidate.is_empty() {
        return; // end-of-candidates
    }
    if let Err(e) = pc.add_ice_candidate(to_rtc_candidate(c)).await {
        tracing::warn!(player = %player_id, error = %e, "remote candidate refused");
    }
}

async fn open_sfu_channels(
    pc: &dyn PeerConnection,
    send_id: u16,
    recv_id: u16,
) -> Result<(Arc<dyn DataChannel>, Arc<dyn DataChannel>), webrtc::error::Error> {
    let init = |id: u16| Some(RTCDataChannelInit { negotiated: Some(id), ..Default::default() });
    if send_id == recv_id {
        let dc = pc.create_data_channel("datachannel", init(send_id)).await?;
        Ok((dc.clone(), dc))
    } else {
        let send = pc.create_data_channel("send-datachannel", init(send_id)).await?;
        let recv = pc.create_data_channel("recv-datachannel", init(recv_id)).await?;
        Ok((send, recv))
    }
}
