//! One WebRTC peer connection to the streamer (or SFU): answer the offer,
//! trickle ICE, read RTP into [`RtpStats`], wire the data channel.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use proto::IceCandidate;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::ice_transport::ice_connection_state::RTCIceConnectionState;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::track::track_remote::TrackRemote;

use crate::datachannel::DcSession;
use crate::error::PlayerError;
use crate::live::Live;
use crate::rtc::{filter_sdp_candidates, RtcContext};
use crate::rtp_stats::{Codec, RtpStats, TrackSummary};

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

/// One peer connection and its receive statistics.
pub struct PeerSession {
    pc: Arc<RTCPeerConnection>,
    ctx: Arc<RtcContext>,
    tracks: Arc<Mutex<Vec<Arc<Mutex<RtpStats>>>>>,
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
        let pc = Arc::new(ctx.api.new_peer_connection(ctx.configuration(peer_connection_options)).await?);
        let tracks: Arc<Mutex<Vec<Arc<Mutex<RtpStats>>>>> = Arc::default();

        let ev = events.clone();
        proto::rtc::on_local_candidates(&pc, move |c| {
            let _ = ev.send(match c {
                proto::rtc::LocalCandidate::Done => PeerEvent::GatheringDone,
                proto::rtc::LocalCandidate::Candidate(c) => PeerEvent::LocalCandidate(c),
            });
        });

        let ev = events.clone();
        pc.on_ice_connection_state_change(Box::new(move |s| {
            let ev = ev.clone();
            Box::pin(async move {
                match s {
                    RTCIceConnectionState::Connected => {
                        let _ = ev.send(PeerEvent::IceConnected(Instant::now()));
                    }
                    RTCIceConnectionState::Failed => {
                        let _ = ev.send(PeerEvent::Failed("ICE failed".into()));
                    }
                    _ => {}
                }
            })
        }));

        let ev = events.clone();
        pc.on_peer_connection_state_change(Box::new(move |s| {
            let ev = ev.clone();
            Box::pin(async move {
                match s {
                    RTCPeerConnectionState::Connected => {
                        let _ = ev.send(PeerEvent::Connected(Instant::now()));
                    }
                    RTCPeerConnectionState::Failed => {
                        let _ = ev.send(PeerEvent::Failed("peer connection failed".into()));
                    }
                    _ => {}
                }
            })
        }));

        let ev = events.clone();
        let tr = tracks.clone();
        let track_cancel = cancel.clone();
        pc.on_track(Box::new(move |track, _receiver, _transceiver| {
            let stats = {
                let codec = track.codec();
                Arc::new(Mutex::new(RtpStats::new(
                    Codec::from_mime(&codec.capability.mime_type),
                    &track.kind().to_string(),
                    codec.capability.clock_rate,
                )))
            };
            if let Ok(mut t) = tr.lock() {
                t.push(stats.clone());
            }
            tokio::spawn(read_track(track, stats, ev.clone(), live.clone(), track_cancel.clone()));
            Box::pin(async {})
        }));

        let dc_for_cb = dc.clone();
        pc.on_data_channel(Box::new(move |ch| {
            tracing::debug!(label = %ch.label(), "data channel from streamer");
            dc_for_cb.attach(&ch, ch.clone());
            Box::pin(async {})
        }));

        Ok(PeerSession { pc, ctx, tracks, dc, cancel })
    }

    /// Apply the remote offer and return our answer's SDP. Candidates are
    /// trickled (`iceCandidate`), as a browser does: the answer goes out at
    /// once. (Checks that overtake our candidates make peer-reflexive pairs;
    /// `proto::rtc` lets peers use those without webrtc-rs's default 1 s wait.)
    pub async fn answer(&self, offer_sdp: &str) -> Result<String, PlayerError> {
        let sdp = if self.ctx.loopback_only { filter_sdp_candidates(offer_sdp) } else { offer_sdp.to_string() };
        self.pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer.clone()).await?;
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
        self.pc.add_ice_candidate(proto::rtc::to_rtc_candidate(&c)).await?;
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
        let init = |id| RTCDataChannelInit { ordered: Some(true), negotiated: Some(id), ..Default::default() };
        if send_id == recv_id {
            let ch = self.pc.create_data_channel("datachannel", Some(init(send_id))).await?;
            self.dc.attach_notify(&ch, ch.clone(), Some(tx));
        } else {
            let send = self.pc.create_data_channel("send-datachannel", Some(init(send_id))).await?;
            let recv = self.pc.create_data_channel("recv-datachannel", Some(init(recv_id))).await?;
            self.dc.attach_notify(&recv, send, Some(tx));
        }
        Ok(())
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
    }
}

async fn read_track(
    track: Arc<TrackRemote>,
    stats: Arc<Mutex<RtpStats>>,
    events: mpsc::UnboundedSender<PeerEvent>,
    live: Arc<Live>,
    cancel: CancellationToken,
) {
    let is_video = track.kind().to_string() == "video";
    let mut first = true;
    let mut first_key = true;
    loop {
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            r = track.read_rtp() => r,
        };
        let (pkt, _) = match read {
            Ok(p) => p,
            Err(e) => {
                if !cancel.is_cancelled() {
                    tracing::warn!(error = %e, track = %track.id(), "track ended while the session was live");
                }
                return;
            }
        };
        let now = Instant::now();
        let (new_frame, new_key) = match stats.lock() {
            Ok(mut s) => s.on_packet(now, pkt.header.sequence_number, pkt.header.timestamp, &pkt.payload),
            Err(_) => return,
        };
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
