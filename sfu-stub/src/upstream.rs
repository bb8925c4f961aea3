//! The one peer connection to the streamer: answer its offer, trickle ICE,
//! receive every track (each simulcast layer is its own remote track) into
//! a [`Forwarder`] per kind, watch that media flows, send PLIs for the
//! [`KeyframeRequester`], and open the streamer side of players' data channels.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::client::SignallingSender;
use proto::rtc::{on_local_candidates, rtc_configuration, set_local, state_changes, to_rtc_candidate, LocalCandidate};
use proto::{IceCandidate, Message};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::api::API;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_remote::TrackRemote;

use crate::config::SfuConfig;
use crate::datachannel_relay::{DataChannelRelay, FIRST_STREAMER_STREAM_ID};
use crate::error::SfuError;
use crate::events::Internal;
use crate::forwarder::{Forwarder, TrackInfo};
use crate::keyframe::{KeyframeRequester, SendRequest};
use crate::rtc::{candidate_allowed, filter_sdp, offered_media};
use crate::stats::SfuStats;

/// What the signalling session forwards to the upstream task.
#[derive(Debug)]
pub enum UpstreamCommand {
    Candidate(IceCandidate),
    /// `peerDataChannelsReady` from this player: open its channels on the
    /// streamer's connection and send `streamerDataChannels`.
    OpenChannels {
        player_id: String,
    },
    /// The player left: close its streamer-side channels.
    PlayerGone {
        player_id: String,
    },
}

/// Everything the upstream task needs.
pub struct UpstreamParams {
    pub generation: u64,
    pub api: Arc<API>,
    pub config: Arc<SfuConfig>,
    pub signal: SignallingSender,
    pub peer_options: Value,
    pub offer_sdp: String,
    pub scalability_mode: Option<String>,
    pub stats: Arc<SfuStats>,
    pub relay: Arc<DataChannelRelay>,
    pub events: mpsc::UnboundedSender<Internal>,
}

/// The tracks received so far.
#[derive(Default)]
struct Media {
    forwarders: HashMap<u8, Arc<Forwarder>>,
    /// Video layer → the SSRC to send PLIs for.
    video_ssrcs: HashMap<usize, u32>,
    /// Kinds that delivered RTP at least once.
    flowing: HashSet<u8>,
    /// When RTP last arrived: [`now_ms`] + 1 (0: never).
    last_rtp: Arc<AtomicU64>,
}

type Shared = Arc<Mutex<Media>>;

fn lock(m: &Mutex<Media>) -> std::sync::MutexGuard<'_, Media> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run until the connection fails, `commands` closes or `cancel` fires;
/// then report [`Internal::UpstreamClosed`].
pub async fn run_upstream(
    p: UpstreamParams,
    commands: mpsc::UnboundedReceiver<UpstreamCommand>,
    cancel: CancellationToken,
) {
    let generation = p.generation;
    let events = p.events.clone();
    let task_cancel = cancel.child_token();
    match setup(&p, task_cancel.clone()).await {
        Ok((pc, media, keyframes, state_rx, gathered_rx)) => {
            drive(&p, &pc, media, state_rx, gathered_rx, commands, &cancel).await;
            drop(keyframes);
            if let Err(e) = pc.close().await {
                tracing::debug!(error = %e, "closing the upstream connection");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot answer the streamer"),
    }
    task_cancel.cancel();
    p.relay.clear();
    let _ = events.send(Internal::UpstreamClosed { generation });
}

type Setup = (
    Arc<RTCPeerConnection>,
    Shared,
    Arc<KeyframeRequester>,
    mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    tokio::sync::watch::Receiver<bool>,
);

async fn setup(p: &UpstreamParams, cancel: CancellationToken) -> Result<Setup, SfuError> {
    let offered = offered_media(&p.offer_sdp);
    if offered.is_empty() {
        return Err(SfuError::NoMedia);
    }
    let config = rtc_configuration(&p.peer_options, p.config.ice)?;
    let pc = Arc::new(p.api.new_peer_connection(config).await?);
    let media: Shared = Arc::default();
    let (gathered_tx, gathered_rx) = tokio::sync::watch::channel(false);

    // PLIs go to the SSRC of the layer asked for.
    let send: SendRequest = {
        let pc = Arc::downgrade(&pc);
        let media = media.clone();
        Arc::new(move |layer| {
            let pc = pc.clone();
            let ssrc = lock(&media).video_ssrcs.get(&layer).copied();
            Box::pin(async move {
                let (Some(pc), Some(media_ssrc)) = (pc.upgrade(), ssrc) else { return false };
                let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc };
                match pc.write_rtcp(&[Box::new(pli)]).await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::debug!(error = %e, "PLI not sent");
                        false
                    }
                }
            })
        })
    };
    let keyframes =
        Arc::new(KeyframeRequester::spawn(p.config.keyframe_interval, send, p.stats.clone(), cancel.clone()));

    {
        let media = media.clone();
        let keyframes = keyframes.clone();
        let stats = p.stats.clone();
        let queue = p.config.player_queue;
        let cache = p.config.keyframe_cache;
        let rids: HashMap<u8, Vec<String>> = offered.iter().map(|(k, r)| (key(*k), r.clone())).collect();
        let cancel = cancel.clone();
        pc.on_track(Box::new(move |track, _receiver, _transceiver| {
            let kind = track.kind();
            let rid = track.rid().to_string();
            let layer = rids.get(&key(kind)).and_then(|r| r.iter().position(|x| *x == rid)).unwrap_or(0);
            tracing::info!(%kind, rid = %rid, layer, ssrc = track.ssrc(), codec = %track.codec().capability.mime_type, "upstream track");
            let forwarder = {
                let mut m = lock(&media);
                if kind == RTPCodecType::Video {
                    m.video_ssrcs.insert(layer, track.ssrc());
                }
                m.forwarders
                    .entry(key(kind))
                    .or_insert_with(|| {
                        let info = TrackInfo {
                            kind,
                            capability: track.codec().capability,
                            track_id: non_empty(track.id(), &format!("sfu-{kind}")),
                            stream_id: non_empty(track.stream_id(), "pixelstreaming_av_stream_id"),
                        };
                        Arc::new(Forwarder::new(info, keyframes.clone(), stats.clone(), queue, cache))
                    })
                    .clone()
            };
            forwarder.add_layer(layer);
            tokio::spawn(read_track(track, layer, forwarder, media.clone(), stats.clone(), cancel.clone()));
            Box::pin(async {})
        }));
    }
    {
        let signal = p.signal.clone();
        let gathered = gathered_tx;
        on_local_candidates(&pc, move |c| match c {
            LocalCandidate::Done => {
                let _ = gathered.send(true);
            }
            // No playerId: the server sends it to our streamer with ours.
            LocalCandidate::Candidate(candidate) => {
                let _ = signal.send(&Message::IceCandidate { candidate, player_id: None });
            }
        });
    }
    let state_rx = state_changes(&pc);

    pc.set_remote_description(RTCSessionDescription::offer(filter_sdp(p.config.ice, &p.offer_sdp))?).await?;
    let sdp = set_local(&pc, pc.create_answer(None).await?).await?;
    let _ = p.signal.send(&Message::Answer { sdp, player_id: None, min_bitrate_bps: None, max_bitrate_bps: None });
    Ok((pc, media, keyframes, state_rx, gathered_rx))
}

/// `RTPCodecType` is not `Hash`: key maps by its discriminant.
fn key(kind: RTPCodecType) -> u8 {
    kind as u8
}

fn non_empty(s: String, default: &str) -> String {
    if s.is_empty() {
        default.to_string()
    } else {
        s
    }
}

/// Milliseconds since the process's first call: cheap "last RTP" stamps.
fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

async fn read_track(
    track: Arc<TrackRemote>,
    layer: usize,
    forwarder: Arc<Forwarder>,
    media: Shared,
    stats: Arc<SfuStats>,
    cancel: CancellationToken,
) {
    let kind = track.kind();
    let last_rtp = lock(&media).last_rtp.clone();
    let mut first = true;
    loop {
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            r = track.read_rtp() => r,
        };
        let packet = match read {
            Ok((packet, _)) => packet,
            Err(e) => {
                tracing::debug!(%kind, layer, error = %e, "upstream track ended");
                return;
            }
        };
        stats.packets_received.fetch_add(1, Relaxed);
        stats.bytes_received.fetch_add(packet.payload.len() as u64, Relaxed);
        last_rtp.store(now_ms() + 1, Relaxed);
        if first {
            first = false;
            lock(&media).flowing.insert(key(kind));
        }
        forwarder.publish(layer, packet);
    }
}

async fn drive(
    p: &UpstreamParams,
    pc: &Arc<RTCPeerConnection>,
    media: Shared,
    mut state_rx: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    mut gathered_rx: tokio::sync::watch::Receiver<bool>,
    mut commands: mpsc::UnboundedReceiver<UpstreamCommand>,
    cancel: &CancellationToken,
) {
    // Remote candidates wait until our own are gathered (and so on their
    // way): connectivity checks that reach the streamer before our
    // candidates do make it see a peer-reflexive candidate, and webrtc-rs
    // then waits a second before nominating.
    let mut early: Vec<IceCandidate> = Vec::new();
    let mut gathered = *gathered_rx.borrow();
    let expected: HashSet<u8> = offered_media(&p.offer_sdp).into_iter().map(|(k, _)| key(k)).collect();
    let mut streaming = false;
    let mut next_stream_id = FIRST_STREAMER_STREAM_ID;
    let mut check = tokio::time::interval(Duration::from_millis(50));
    let last_rtp = lock(&media).last_rtp.clone();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            command = commands.recv() => match command {
                None => break,
                Some(UpstreamCommand::Candidate(c)) => {
                    if gathered {
                        add_candidate(p, pc, &c).await;
                    } else {
                        early.push(c);
                    }
                }
                Some(UpstreamCommand::OpenChannels { player_id }) => {
                    let (send_id, recv_id) = (next_stream_id, next_stream_id.wrapping_add(1));
                    next_stream_id = match next_stream_id.checked_add(2) {
                        Some(n) if n < u16::MAX - 1 => n,
                        _ => FIRST_STREAMER_STREAM_ID,
                    };
                    match p.relay.open_streamer_side(pc, &player_id, send_id, recv_id).await {
                        Ok(()) => {
                            let _ = p.signal.send(&Message::StreamerDataChannels {
                                sfu_id: None,
                                player_id,
                                send_stream_id: send_id,
                                recv_stream_id: recv_id,
                            });
                        }
                        Err(e) => tracing::warn!(player = %player_id, error = %e, "cannot open the streamer's channels"),
                    }
                }
                Some(UpstreamCommand::PlayerGone { player_id }) => p.relay.remove(&player_id).await,
            },
            changed = gathered_rx.changed(), if !gathered => {
                gathered = changed.is_err() || *gathered_rx.borrow();
                if gathered {
                    for c in early.drain(..) {
                        add_candidate(p, pc, &c).await;
                    }
                }
            }
            state = state_rx.recv() => match state {
                Some(RTCPeerConnectionState::Connected) => {
                    tracing::info!("connected to the streamer");
                    p.stats.upstream_connects.fetch_add(1, Relaxed);
                }
                Some(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) | None => {
                    tracing::warn!("the streamer's peer connection failed or closed");
                    break;
                }
                Some(other) => tracing::debug!(state = %other, "upstream state"),
            },
            _ = check.tick() => {
                let last = last_rtp.load(Relaxed);
                let recent = last != 0 && (now_ms() + 1).saturating_sub(last) < p.config.stall_timeout.as_millis() as u64;
                let (all_flowing, forwarders) = {
                    let m = lock(&media);
                    (expected.iter().all(|k| m.flowing.contains(k)), m.forwarders.values().cloned().collect::<Vec<_>>())
                };
                if !streaming && all_flowing && recent {
                    streaming = true;
                    let _ = p.events.send(Internal::MediaReady {
                        generation: p.generation,
                        media: forwarders,
                        scalability_mode: p.scalability_mode.clone(),
                    });
                } else if streaming && !recent {
                    streaming = false;
                    tracing::warn!("no media from the streamer for {:?}", p.config.stall_timeout);
                    let _ = p.events.send(Internal::MediaStalled { generation: p.generation });
                }
            }
        }
    }
}

async fn add_candidate(p: &UpstreamParams, pc: &RTCPeerConnection, c: &IceCandidate) {
    if c.candidate.is_empty() || !candidate_allowed(p.config.ice, &c.candidate) {
        return;
    }
    if let Err(e) = pc.add_ice_candidate(to_rtc_candidate(c)).await {
        tracing::warn!(error = %e, "streamer candidate refused");
    }
}
