//! One WebRTC peer connection per player (or per SFU): the offer with video
//! and the `datachannel`, trickle ICE both ways, the answer, keyframes on
//! PLI/FIR, the fan-out subscription once connected, and teardown.

use std::sync::Arc;

use proto::rtc::{
    on_local_candidates, rtc_configuration, set_local, state_changes, to_rtc_candidate, IcePolicy, LocalCandidate,
    H264_FMTP,
};
use proto::{IceCandidate, Message};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use webrtc::api::API;
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::data_channel::RTCDataChannel;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocal;

use crate::datachannel::{attach, Protocol};
use crate::events::StreamerEvent;
use crate::fanout::{Fanout, Subscription, VideoLayers, SIMULCAST_RIDS};
use crate::stats::StreamerStats;
use proto::client::SignallingSender;

/// The MediaStream id and track id in our offers (the browser needs a
/// MediaStream: msid must be present).
pub const STREAM_ID: &str = "pixelstreaming_av_stream_id";
pub const VIDEO_TRACK_ID: &str = "pixelstreaming_video_track_label";
pub const AUDIO_TRACK_ID: &str = "pixelstreaming_audio_track_label";

/// Errors setting up a peer connection.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::Error),
    #[error(transparent)]
    Rtc(#[from] proto::rtc::RtcError),
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
    pub api: Arc<API>,
    pub ice: IcePolicy,
    pub video: Arc<VideoLayers>,
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
    match setup(&params).await {
        Ok((pc, feeds, state_rx)) => {
            drive(&params, &pc, feeds, state_rx, commands, cancel).await;
            if let Err(e) = pc.close().await {
                tracing::debug!(player = %player_id, error = %e, "close");
            }
        }
        Err(e) => {
            tracing::warn!(player = %player_id, error = %e, "cannot set up the peer connection")
        }
    }
    shared.stats.remove_player(&player_id);
    let _ = shared.events.send(StreamerEvent::PeerClosed { streamer: shared.streamer, player_id });
}

/// A track and the video layer that feeds it.
type Feed = (Arc<TrackLocalStaticRTP>, Arc<Fanout>);

type Setup = (Arc<RTCPeerConnection>, Vec<Feed>, mpsc::UnboundedReceiver<RTCPeerConnectionState>);

async fn setup(p: &PeerParams) -> Result<Setup, PeerError> {
    let shared = &p.shared;
    let config = rtc_configuration(&p.peer_options, shared.ice)?;
    let pc = Arc::new(shared.api.new_peer_connection(config).await?);

    let codec = RTCRtpCodecCapability {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: vec![],
    };
    let mut feeds: Vec<Feed> = if p.sfu && shared.video.simulcast() {
        // Simulcast to an SFU: one encoding (rid) per layer on one sender.
        let mut feeds = Vec::new();
        for (rid, layer) in SIMULCAST_RIDS.iter().zip(&shared.video.layers) {
            let track = TrackLocalStaticRTP::new_with_rid(
                codec.clone(),
                VIDEO_TRACK_ID.to_owned(),
                (*rid).to_owned(),
                STREAM_ID.to_owned(),
            );
            feeds.push((Arc::new(track), layer.clone()));
        }
        let sender = pc.add_track(Arc::clone(&feeds[0].0) as Arc<dyn TrackLocal + Send + Sync>).await?;
        for (track, _) in &feeds[1..] {
            sender.add_encoding(Arc::clone(track) as Arc<dyn TrackLocal + Send + Sync>).await?;
        }
        tokio::spawn(read_rtcp(sender.clone(), shared.video.full().clone(), None));
        for (rid, layer) in SIMULCAST_RIDS.iter().zip(&shared.video.layers).skip(1) {
            tokio::spawn(read_rtcp(sender.clone(), layer.clone(), Some(rid)));
        }
        feeds
    } else {
        let track = Arc::new(TrackLocalStaticRTP::new(codec, VIDEO_TRACK_ID.to_owned(), STREAM_ID.to_owned()));
        let sender = pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>).await?;
        tokio::spawn(read_rtcp(sender, shared.video.full().clone(), None));
        vec![(track, shared.video.full().clone())]
    };
    if let Some(audio) = &shared.audio {
        let track = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            AUDIO_TRACK_ID.to_owned(),
            STREAM_ID.to_owned(),
        ));
        let sender = pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>).await?;
        // Drain its RTCP (runs the interceptors); audio needs no keyframes.
        tokio::spawn(async move { while sender.read_rtcp().await.is_ok() {} });
        feeds.push((track, audio.clone()));
    }

    if p.data_channel {
        let dc = pc
            .create_data_channel("datachannel", Some(RTCDataChannelInit { ordered: Some(true), ..Default::default() }))
            .await?;
        attach(shared.protocol.clone(), p.player_id.clone(), dc.clone(), dc);
    }

    {
        let signal = p.signal.clone();
        let player_id = p.player_id.clone();
        on_local_candidates(&pc, move |c| {
            if let LocalCandidate::Candidate(candidate) = c {
                let _ = signal.send(&Message::IceCandidate { candidate, player_id: Some(player_id.clone()) });
            }
        });
    }
    let state_rx = state_changes(&pc);
    let sdp = set_local(&pc, pc.create_offer(None).await?).await?;
    let _ = p.signal.send(&Message::Offer {
        sdp,
        player_id: Some(p.player_id.clone()),
        sfu: None,
        multiplex: None,
        scalability_mode: None,
    });
    Ok((pc, feeds, state_rx))
}

async fn drive(
    p: &PeerParams,
    pc: &Arc<RTCPeerConnection>,
    feeds: Vec<Feed>,
    mut state_rx: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    mut commands: mpsc::UnboundedReceiver<PeerCommand>,
    cancel: CancellationToken,
) {
    let shared = &p.shared;
    let player_id = &p.player_id;
    let mut have_answer = false;
    let mut early_candidates: Vec<IceCandidate> = Vec::new();
    let mut subscriptions: Vec<Subscription> = Vec::new();
    // Keep SFU channels alive with the connection.
    let mut sfu_channels: Vec<Arc<RTCDataChannel>> = Vec::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            command = commands.recv() => match command {
                None => break,
                Some(PeerCommand::Answer(sdp)) => {
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
                            attach(shared.protocol.clone(), sfu_player, send_dc.clone(), recv_dc.clone());
                            sfu_channels.push(send_dc);
                            sfu_channels.push(recv_dc);
                        }
                        Err(e) => tracing::warn!(sfu = %player_id, error = %e, "cannot open SFU data channels"),
                    }
                }
            },
            state = state_rx.recv() => match state {
                Some(RTCPeerConnectionState::Connected) => {
                    tracing::info!(player = %player_id, "peer connected");
                    if subscriptions.is_empty() {
                        for (track, layer) in &feeds {
                            // Player stats count video; audio is counted per streamer.
                            let stats = match &shared.audio {
                                Some(audio) if Arc::ptr_eq(audio, layer) => Arc::default(),
                                _ => shared.stats.player(player_id),
                            };
                            subscriptions.push(layer.subscribe(track.clone(), stats));
                        }
                    }
                    let _ = shared.events.send(StreamerEvent::PeerConnected {
                        streamer: shared.streamer,
                        player_id: player_id.clone(),
                    });
                }
                Some(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) | None => {
                    tracing::info!(player = %player_id, "peer connection failed or closed");
                    break;
                }
                Some(other) => tracing::debug!(player = %player_id, state = %other, "peer state"),
            },
        }
    }
    drop(subscriptions);
}

async fn add_candidate(pc: &RTCPeerConnection, c: &IceCandidate, player_id: &str) {
    if c.candidate.is_empty() {
        return; // end-of-candidates
    }
    if let Err(e) = pc.add_ice_candidate(to_rtc_candidate(c)).await {
        tracing::warn!(player = %player_id, error = %e, "remote candidate refused");
    }
}

async fn open_sfu_channels(
    pc: &RTCPeerConnection,
    send_id: u16,
    recv_id: u16,
) -> Result<(Arc<RTCDataChannel>, Arc<RTCDataChannel>), webrtc::Error> {
    let init = |id: u16| Some(RTCDataChannelInit { ordered: Some(true), negotiated: Some(id), ..Default::default() });
    if send_id == recv_id {
        let dc = pc.create_data_channel("datachannel", init(send_id)).await?;
        Ok((dc.clone(), dc))
    } else {
        let send = pc.create_data_channel("send-datachannel", init(send_id)).await?;
        let recv = pc.create_data_channel("recv-datachannel", init(recv_id)).await?;
        Ok((send, recv))
    }
}

/// Read RTCP from the video sender (which also drives the interceptors) and
/// ask the layer for a keyframe on PLI or FIR. `rid`: a simulcast encoding
/// other than the first.
async fn read_rtcp(sender: Arc<RTCRtpSender>, fanout: Arc<Fanout>, rid: Option<&'static str>) {
    loop {
        let read = match rid {
            None => sender.read_rtcp().await,
            Some(rid) => sender.read_rtcp_simulcast(rid).await,
        };
        let Ok((packets, _)) = read else { break };
        for packet in packets {
            let any = packet.as_any();
            if any.downcast_ref::<PictureLossIndication>().is_some() || any.downcast_ref::<FullIntraRequest>().is_some()
            {
                fanout.request_keyframe();
            }
        }
    }
}
