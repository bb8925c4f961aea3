//! The one peer connection to the streamer: answer its offer, trickle ICE,
//! receive every track (each simulcast layer is its own remote track) into
//! a [`Forwarder`] per kind, watch that media flows, send PLIs for the
//! [`KeyframeRequester`], and open the streamer side of players' data channels.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::client::SignallingSender;
use proto::rtc::{event_channel, set_local, to_rtc_candidate, PeerEvent, PeerSettings};
use proto::{IceCandidate, Message};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

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
    pub settings: PeerSettings,
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
    forwarders: HashMap<RtpCodecKind, Arc<Forwarder>>,
    /// The streamer's video track (all its simulcast layers): PLIs are sent on it.
    video_track: Option<Arc<dyn TrackRemote>>,
    /// Video layer → the SSRC to send PLIs for.
    video_ssrcs: HashMap<usize, u32>,
    /// Kinds that delivered RTP at least once.
    flowing: HashSet<RtpCodecKind>,
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
    let (handler, peer_events) = event_channel();
    match proto::rtc::new_peer_connection_counted(&p.settings, &p.peer_options, handler, p.stats.repair.clone()).await {
        Ok(pc) => {
            match answer(&p, pc.as_ref()).await {
                Ok(()) => {
                    let media = Shared::default();
                    let keyframes = Arc::new(KeyframeRequester::spawn(
                        p.config.keyframe_interval,
                        pli_sender(&media),
                        p.stats.clone(),
                        task_cancel.clone(),
                    ));
                    let upstream = Upstream { p: &p, pc: pc.as_ref(), media, keyframes, cancel: task_cancel.clone() };
                    upstream.drive(peer_events, commands, &cancel).await;
                }
                Err(e) => tracing::warn!(error = %e, "cannot answer the streamer"),
            }
            if let Err(e) = pc.close().await {
                tracing::debug!(error = %e, "closing the upstream connection");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot create the upstream connection"),
    }
    task_cancel.cancel();
    p.relay.clear();
    let _ = events.send(Internal::UpstreamClosed { generation });
}

/// Apply the streamer's offer and send our answer.
async fn answer(p: &UpstreamParams, pc: &dyn PeerConnection) -> Result<(), SfuError> {
    if offered_media(&p.offer_sdp).is_empty() {
        return Err(SfuError::NoMedia);
    }
    pc.set_remote_description(RTCSessionDescription::offer(filter_sdp(p.config.ice, &p.offer_sdp))?).await?;
    let sdp = set_local(pc, pc.create_answer(None).await?).await?;
    let _ = p.signal.send(&Message::Answer { sdp, player_id: None, min_bitrate_bps: None, max_bitrate_bps: None });
    Ok(())
}

/// PLIs go on the video track, to the SSRC of the layer asked for.
fn pli_sender(media: &Shared) -> SendRequest {
    let media = Arc::downgrade(media);
    Arc::new(move |layer| {
        let target = media.upgrade().and_then(|m| {
            let m = lock(&m);
            m.video_track.clone().zip(m.video_ssrcs.get(&layer).copied())
        });
        Box::pin(async move {
            let Some((track, media_ssrc)) = target else { return false };
            let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc };
            match track.write_rtcp(vec![Box::new(pli)]).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "PLI not sent");
                    false
                }
            }
        })
    })
}

/// Milliseconds since the process's first call: cheap "last RTP" stamps.
fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// The upstream connection while it runs.
struct Upstream<'a> {
    p: &'a UpstreamParams,
    pc: &'a dyn PeerConnection,
    media: Shared,
    keyframes: Arc<KeyframeRequester>,
    /// Ends the track readers with the connection.
    cancel: CancellationToken,
}

impl Upstream<'_> {
    async fn drive(
        &self,
        mut peer_events: mpsc::UnboundedReceiver<PeerEvent>,
        mut commands: mpsc::UnboundedReceiver<UpstreamCommand>,
        cancel: &CancellationToken,
    ) {
        let p = self.p;
        // Remote candidates wait until our own are gathered (and so on their
        // way): connectivity checks that reach the streamer before our
        // candidates do make it see a peer-reflexive candidate.
        let mut early: Vec<IceCandidate> = Vec::new();
        let mut gathered = false;
        let expected: HashSet<RtpCodecKind> = offered_media(&p.offer_sdp).into_iter().map(|(k, _)| k).collect();
        let mut streaming = false;
        let mut next_stream_id = FIRST_STREAMER_STREAM_ID;
        let mut check = tokio::time::interval(Duration::from_millis(50));
        let last_rtp = lock(&self.media).last_rtp.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                command = commands.recv() => match command {
                    None => break,
                    Some(UpstreamCommand::Candidate(c)) => {
                        if gathered {
                            self.add_candidate(&c).await;
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
                        match p.relay.open_streamer_side(self.pc, &player_id, send_id, recv_id).await {
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
                event = peer_events.recv() => match event {
                    // No playerId: the server sends it to our streamer with ours.
                    Some(PeerEvent::LocalCandidate(candidate)) => {
                        let _ = p.signal.send(&Message::IceCandidate { candidate, player_id: None });
                    }
                    Some(PeerEvent::GatheringDone) => {
                        gathered = true;
                        for c in early.drain(..) {
                            self.add_candidate(&c).await;
                        }
                    }
                    Some(PeerEvent::Track(track)) => self.on_track(track).await,
                    Some(PeerEvent::State(RTCPeerConnectionState::Connected)) => {
                        tracing::info!("connected to the streamer");
                        p.stats.upstream_connects.fetch_add(1, Relaxed);
                    }
                    Some(PeerEvent::State(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) | None => {
                        tracing::warn!("the streamer's peer connection failed or closed");
                        break;
                    }
                    Some(PeerEvent::State(other)) => tracing::debug!(state = %other, "upstream state"),
                    // The streamer's own `datachannel` is not relayed (players get theirs).
                    Some(PeerEvent::DataChannel(_) | PeerEvent::IceState(_)) => {}
                },
                _ = check.tick() => {
                    let last = last_rtp.load(Relaxed);
                    let recent = last != 0 && (now_ms() + 1).saturating_sub(last) < p.config.stall_timeout.as_millis() as u64;
                    let (all_flowing, forwarders) = {
                        let m = lock(&self.media);
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

    /// A track of the streamer (on its first RTP packet): its forwarder, and
    /// a reader for it. Simulcast layers arrive on one track, told apart by
    /// SSRC (announced with their rid).
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let ssrc = track.ssrcs().await.first().copied().unwrap_or_default();
        let Some(codec) = track.codec(ssrc).await else {
            tracing::warn!(%kind, ssrc, "upstream track without a codec: not forwarded");
            return;
        };
        tracing::info!(%kind, ssrc, codec = %codec.mime_type, "upstream track");
        let info = TrackInfo {
            kind,
            codec,
            track_id: non_empty(track.track_id().await, &format!("sfu-{kind}")),
            stream_id: non_empty(track.stream_id().await, "pixelstreaming_av_stream_id"),
            capture_time_id: proto::capture_time::sdp_extension_id(&self.p.offer_sdp),
        };
        let (queue, cache) = (self.p.config.player_queue, self.p.config.keyframe_cache);
        let forwarder = {
            let mut m = lock(&self.media);
            if kind == RtpCodecKind::Video {
                m.video_track = Some(track.clone());
            }
            m.forwarders
                .entry(kind)
                .or_insert_with(|| {
                    Arc::new(Forwarder::new(info, self.keyframes.clone(), self.p.stats.clone(), queue, cache))
                })
                .clone()
        };
        let rids = offered_media(&self.p.offer_sdp).into_iter().find(|(k, _)| *k == kind).map(|(_, r)| r);
        let reader = TrackReader {
            forwarder,
            rids: rids.unwrap_or_default(),
            media: self.media.clone(),
            stats: self.p.stats.clone(),
            cancel: self.cancel.clone(),
        };
        tokio::spawn(reader.run(track));
    }

    async fn add_candidate(&self, c: &IceCandidate) {
        if c.candidate.is_empty() || !candidate_allowed(self.p.config.ice, &c.candidate) {
            return;
        }
        if let Err(e) = self.pc.add_ice_candidate(to_rtc_candidate(c)).await {
            tracing::warn!(error = %e, "streamer candidate refused");
        }
    }
}

fn non_empty(s: String, default: &str) -> String {
    if s.is_empty() {
        default.to_string()
    } else {
        s
    }
}

/// Reads one upstream track into its forwarder, each packet tagged with its
/// simulcast layer.
struct TrackReader {
    forwarder: Arc<Forwarder>,
    /// The offered rids of this kind, lowest layer first (empty without simulcast).
    rids: Vec<String>,
    media: Shared,
    stats: Arc<SfuStats>,
    cancel: CancellationToken,
}

impl TrackReader {
    async fn run(self, track: Arc<dyn TrackRemote>) {
        let kind = self.forwarder.info.kind;
        let last_rtp = lock(&self.media).last_rtp.clone();
        // SSRC → layer, as each encoding opens.
        let mut layers: HashMap<u32, usize> = HashMap::new();
        let mut first = true;
        loop {
            let event = tokio::select! {
                _ = self.cancel.cancelled() => return,
                e = track.poll() => e,
            };
            let packet = match event {
                Some(TrackRemoteEvent::OnOpen(init)) => {
                    let rid = init.rid.unwrap_or_default();
                    let layer = self.rids.iter().position(|r| *r == rid).unwrap_or(0);
                    tracing::info!(%kind, rid = %rid, layer, ssrc = init.ssrc, "upstream encoding");
                    layers.insert(init.ssrc, layer);
                    if kind == RtpCodecKind::Video {
                        lock(&self.media).video_ssrcs.insert(layer, init.ssrc);
                    }
                    self.forwarder.add_layer(layer);
                    continue;
                }
                Some(TrackRemoteEvent::OnRtpPacket(packet)) => packet,
                Some(TrackRemoteEvent::OnEnded) | None => {
                    tracing::debug!(%kind, "upstream track ended");
                    return;
                }
                Some(_) => continue,
            };
            self.stats.packets_received.fetch_add(1, Relaxed);
            self.stats.bytes_received.fetch_add(packet.payload.len() as u64, Relaxed);
            last_rtp.store(now_ms() + 1, Relaxed);
            if first {
                first = false;
                lock(&self.media).flowing.insert(kind);
            }
            let layer = layers.get(&packet.header.ssrc).copied().unwrap_or(0);
            self.forwarder.publish(layer, packet);
        }
    }
}
