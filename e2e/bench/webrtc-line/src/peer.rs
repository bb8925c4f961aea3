//! One webrtc 0.21 peer connection to the streamer: answer the offer,
//! trickle ICE, count RTP per track, answer the data channel's `Protocol`
//! as the browser frontend does. Events go to the player's loop.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::BytesMut;
use proto::datachannel::{ToPlayer, ToStreamer};
use proto::rtp_payload::Codec;
use proto::IceCandidate;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken as Cancel;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelState};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit, RTCIceConnectionState,
    RTCIceGatheringState, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
};

use crate::rtp_count::{RtpCount, TrackTotals};
use crate::settings::{self, PlayerRtcOptions};

/// What the peer connection reports to the player's loop.
#[derive(Debug)]
pub enum PeerEvent {
    LocalCandidate(IceCandidate),
    GatheringDone,
    IceConnected(Instant),
    /// ICE and DTLS done.
    Connected(Instant),
    FirstRtp(Instant),
    FirstKeyframe(Instant),
    DataChannelOpen(Instant),
    Failed(String),
}

/// Errors of the peer connection.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    #[error("settings: {0}")]
    Settings(#[from] settings::SettingsError),
}

type Tracks = Arc<Mutex<Vec<Arc<Mutex<RtpCount>>>>>;

/// Forwards the connection's callbacks as [`PeerEvent`]s. Holds no reference
/// to the connection (no cycle: the connection owns the handler only).
struct Events {
    tx: mpsc::UnboundedSender<PeerEvent>,
    tracks: Tracks,
    cancel: Cancel,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) if !init.candidate.is_empty() => {
                let _ = self.tx.send(PeerEvent::LocalCandidate(from_init(init)));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "local candidate not serialisable"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.tx.send(PeerEvent::GatheringDone);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        match state {
            RTCIceConnectionState::Connected => drop(self.tx.send(PeerEvent::IceConnected(Instant::now()))),
            RTCIceConnectionState::Failed => drop(self.tx.send(PeerEvent::Failed("ICE failed".into()))),
            _ => {}
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        match state {
            RTCPeerConnectionState::Connected => drop(self.tx.send(PeerEvent::Connected(Instant::now()))),
            RTCPeerConnectionState::Failed => drop(self.tx.send(PeerEvent::Failed("peer connection failed".into()))),
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        tokio::spawn(read_track(track, self.tracks.clone(), self.tx.clone(), self.cancel.clone()));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        tokio::spawn(run_data_channel(channel, self.tx.clone(), self.cancel.clone()));
    }
}

/// One peer connection and its receive counters.
pub struct PeerSession {
    pc: Arc<dyn PeerConnection>,
    tracks: Tracks,
    cancel: Cancel,
}

impl PeerSession {
    pub async fn new(options: PlayerRtcOptions, events: mpsc::UnboundedSender<PeerEvent>) -> Result<Self, PeerError> {
        let crypto = settings::process_crypto()?;
        let tracks = Tracks::default();
        let cancel = Cancel::default();
        let handler = Events { tx: events, tracks: tracks.clone(), cancel: cancel.clone() };
        let pc = PeerConnectionBuilder::new()
            .with_configuration(settings::configuration(crypto))
            .with_media_engine(settings::media_engine()?)
            .with_setting_engine(settings::setting_engine(options, crypto))
            .with_interceptor_registry(settings::interceptors(options))
            .with_handler(Arc::new(handler))
            // Loopback-only ICE: one UDP socket on 127.0.0.1, its host candidate only.
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await?;
        Ok(PeerSession { pc: Arc::new(pc), tracks, cancel })
    }

    /// Apply the offer (its non-loopback candidates removed), return the answer SDP.
    pub async fn answer(&self, offer_sdp: &str) -> Result<String, PeerError> {
        let offer = RTCSessionDescription::offer(filter_sdp_candidates(offer_sdp))?;
        self.pc.set_remote_description(offer).await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer.clone()).await?;
        Ok(answer.sdp)
    }

    /// Add a remote candidate; non-loopback ones are dropped.
    pub async fn add_candidate(&self, c: IceCandidate) -> Result<(), PeerError> {
        if c.candidate.is_empty() || !candidate_is_loopback(&c.candidate) {
            return Ok(());
        }
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: c.username_fragment,
            ..Default::default()
        };
        self.pc.add_ice_candidate(init).await?;
        Ok(())
    }

    pub fn video_totals(&self) -> TrackTotals {
        let mut t = TrackTotals::default();
        if let Ok(tracks) = self.tracks.lock() {
            for c in tracks.iter() {
                if let Ok(c) = c.lock() {
                    let x = c.totals();
                    t.packets += x.packets;
                    t.bytes += x.bytes;
                    t.frames += x.frames;
                    t.keyframes += x.keyframes;
                    t.lost += x.lost;
                    t.jitter_ms = t.jitter_ms.max(x.jitter_ms);
                }
            }
        }
        t
    }

    pub async fn close(&self) {
        self.cancel.cancel();
        if let Err(e) = self.pc.close().await {
            tracing::debug!(error = %e, "closing the peer connection");
        }
    }
}

fn from_init(c: RTCIceCandidateInit) -> IceCandidate {
    IceCandidate {
        candidate: c.candidate,
        sdp_mid: Some(c.sdp_mid.unwrap_or_else(|| "0".into())),
        sdp_mline_index: Some(c.sdp_mline_index.unwrap_or(0)),
        username_fragment: c.username_fragment,
    }
}

async fn read_track(track: Arc<dyn TrackRemote>, tracks: Tracks, tx: mpsc::UnboundedSender<PeerEvent>, cancel: Cancel) {
    let mut count: Option<Arc<Mutex<RtpCount>>> = None;
    let mut first_key = true;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = track.poll() => e,
        };
        let pkt = match event {
            None | Some(TrackRemoteEvent::OnEnded) => return,
            Some(TrackRemoteEvent::OnRtpPacket(p)) => p,
            Some(_) => continue,
        };
        let now = Instant::now();
        let c = match &count {
            Some(c) => c.clone(),
            None => {
                let codec = track.codec(pkt.header.ssrc).await;
                let mime = codec.as_ref().map(|c| c.mime_type.as_str()).unwrap_or("");
                let c =
                    Arc::new(Mutex::new(RtpCount::new(Codec::from_mime(mime), codec.map_or(90_000, |c| c.clock_rate))));
                if let Ok(mut t) = tracks.lock() {
                    t.push(c.clone());
                }
                let _ = tx.send(PeerEvent::FirstRtp(now));
                count = Some(c.clone());
                c
            }
        };
        let new_key = match c.lock() {
            Ok(mut c) => c.on_packet(now, pkt.header.sequence_number, pkt.header.timestamp, &pkt.payload).1,
            Err(_) => return,
        };
        if new_key && first_key {
            first_key = false;
            let _ = tx.send(PeerEvent::FirstKeyframe(now));
        }
    }
}

/// The player side of the data-channel protocol as far as joining needs:
/// on the streamer's `Protocol`, ask for initial settings and quality control.
async fn run_data_channel(channel: Arc<dyn DataChannel>, tx: mpsc::UnboundedSender<PeerEvent>, cancel: Cancel) {
    let mut protocol_seen = false;
    // A channel the streamer opened may be open already when it is announced.
    if matches!(channel.ready_state().await, Ok(RTCDataChannelState::Open)) {
        let _ = tx.send(PeerEvent::DataChannelOpen(Instant::now()));
    }
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = channel.poll() => e,
        };
        match event {
            None | Some(DataChannelEvent::OnClose) => return,
            Some(DataChannelEvent::OnOpen) => {
                let _ = tx.send(PeerEvent::DataChannelOpen(Instant::now()));
            }
            Some(DataChannelEvent::OnMessage(m)) => {
                if let Ok(ToPlayer::Protocol(_)) = ToPlayer::decode(&m.data) {
                    if !protocol_seen {
                        protocol_seen = true;
                        for msg in [ToStreamer::RequestInitialSettings, ToStreamer::RequestQualityControl] {
                            if let Err(e) = channel.send(BytesMut::from(&msg.encode()[..])).await {
                                tracing::debug!(error = %e, "data channel send");
                            }
                        }
                    }
                }
            }
            Some(_) => {}
        }
    }
}

/// Is a candidate line (`candidate:… <ip> <port> typ …`) on 127.0.0.0/8?
pub fn candidate_is_loopback(candidate: &str) -> bool {
    let line = candidate.trim_start_matches("a=");
    line.split_whitespace()
        .nth(4)
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| matches!(ip, std::net::IpAddr::V4(v4) if v4.is_loopback()))
}

/// Remove `a=candidate` lines that are not loopback from an SDP.
pub fn filter_sdp_candidates(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|line| {
            let t = line.trim_end();
            !t.starts_with("a=candidate:") || candidate_is_loopback(t)
        })
        .collect()
}
