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

use proto::client::SignallingSender;
use proto::rtc::{on_local_candidates, rtc_configuration, set_local, state_changes, to_rtc_candidate, LocalCandidate};
use proto::{IceCandidate, Message};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use webrtc::api::API;
use webrtc::data_channel::RTCDataChannel;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocal;

use crate::config::SfuConfig;
use crate::datachannel_relay::DataChannelRelay;
use crate::error::SfuError;
use crate::events::{Internal, SfuEvent};
use crate::forwarder::{Forwarder, PlayerControl, Subscription};
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
    pub api: Arc<API>,
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
    match setup(&p).await {
        Ok((pc, tracks, channels, watch)) => {
            drive(&p, &pc, tracks, watch, commands, &cancel).await;
            drop(channels);
            if let Err(e) = pc.close().await {
                tracing::debug!(player = %p.player_id, error = %e, "close");
            }
        }
        Err(e) => tracing::warn!(player = %p.player_id, error = %e, "cannot set up the player's peer connection"),
    }
    p.stats.players.fetch_sub(1, Relaxed);
    let _ = p.events.send(SfuEvent::PlayerClosed { player_id: p.player_id.clone() });
    let _ = p.internal.send(Internal::PlayerClosed { player_id: p.player_id.clone(), key: p.key });
}

type Tracks = Vec<(Arc<Forwarder>, Arc<TrackLocalStaticRTP>)>;
type Setup = (Arc<RTCPeerConnection>, Tracks, Vec<Arc<RTCDataChannel>>, Watch);

/// What a player's task waits on besides its commands.
struct Watch {
    state: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    /// Our ICE candidates are all gathered.
    gathered: tokio::sync::watch::Receiver<bool>,
    /// The player's data channels opened.
    opened: tokio::sync::oneshot::Receiver<()>,
}

async fn setup(p: &DownstreamParams) -> Result<Setup, SfuError> {
    let config = rtc_configuration(&p.peer_options, p.config.ice)?;
    let pc = Arc::new(p.api.new_peer_connection(config).await?);
    let mut tracks = Vec::new();
    for forwarder in &p.media {
        let info = &forwarder.info;
        let track =
            Arc::new(TrackLocalStaticRTP::new(info.capability.clone(), info.track_id.clone(), info.stream_id.clone()));
        let sender = pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>).await?;
        tokio::spawn(read_rtcp(sender, forwarder.clone(), p.control.clone(), p.stats.clone()));
        tracks.push((forwarder.clone(), track));
    }
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
    let channels = p.relay.open_player_side(&pc, &p.player_id, opened_tx).await?;
    let (gathered_tx, gathered_rx) = tokio::sync::watch::channel(false);
    {
        let signal = p.signal.clone();
        let player_id = p.player_id.clone();
        on_local_candidates(&pc, move |c| match c {
            LocalCandidate::Done => {
                let _ = gathered_tx.send(true);
            }
            LocalCandidate::Candidate(candidate) => {
                let _ = signal.send(&Message::IceCandidate { candidate, player_id: Some(player_id.clone()) });
            }
        });
    }
    let state_rx = state_changes(&pc);
    let sdp = set_local(&pc, pc.create_offer(None).await?).await?;
    let _ = p.signal.send(&Message::Offer {
        sdp,
        player_id: Some(p.player_id.clone()),
        sfu: Some(true),
        multiplex: None,
        scalability_mode: p.scalability_mode.clone(),
    });
    Ok((pc, tracks, channels, Watch { state: state_rx, gathered: gathered_rx, opened: opened_rx }))
}

async fn drive(
    p: &DownstreamParams,
    pc: &Arc<RTCPeerConnection>,
    tracks: Tracks,
    watch: Watch,
    mut commands: mpsc::UnboundedReceiver<DownstreamCommand>,
    cancel: &CancellationToken,
) {
    let player_id = &p.player_id;
    let Watch { state: mut state_rx, gathered: mut gathered_rx, opened: mut opened_rx } = watch;
    // The player can receive (module docs): its channels opened, or
    // READY_FALLBACK after "connected".
    let mut opened = false;
    let mut connected_at: Option<tokio::time::Instant> = None;
    let mut have_answer = false;
    // Remote candidates are added once the answer is applied and our own
    // candidates are gathered (see the upstream: avoids a peer-reflexive
    // candidate and webrtc-rs's one-second nomination delay).
    let mut gathered = *gathered_rx.borrow();
    let mut early: Vec<IceCandidate> = Vec::new();
    let mut subscriptions: Vec<Subscription> = Vec::new();
    let subscribe = |subscriptions: &mut Vec<Subscription>| {
        if subscriptions.is_empty() {
            tracing::debug!(player = %player_id, "starting media");
            for (forwarder, track) in &tracks {
                subscriptions.push(forwarder.subscribe(track.clone(), p.control.clone()));
            }
        }
    };
    loop {
        let fallback = connected_at.map(|t| t + READY_FALLBACK);
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = &mut opened_rx, if !opened => {
                opened = true;
                if r.is_ok() {
                    subscribe(&mut subscriptions);
                }
            }
            _ = tokio::time::sleep_until(fallback.unwrap_or_else(tokio::time::Instant::now)),
                if fallback.is_some() && subscriptions.is_empty() => {
                subscribe(&mut subscriptions);
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
            changed = gathered_rx.changed(), if !gathered => {
                gathered = changed.is_err() || *gathered_rx.borrow();
                if gathered && have_answer {
                    for c in early.drain(..) {
                        add_candidate(p, pc, &c).await;
                    }
                }
            }
            state = state_rx.recv() => match state {
                Some(RTCPeerConnectionState::Connected) => {
                    tracing::info!(player = %player_id, "player connected");
                    if connected_at.is_none() {
                        connected_at = Some(tokio::time::Instant::now());
                        for (forwarder, _) in &tracks {
                            forwarder.prepare(&p.control, READY_FALLBACK);
                        }
                    }
                    let _ = p.events.send(SfuEvent::PlayerConnected { player_id: player_id.clone() });
                }
                Some(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) | None => {
                    tracing::info!(player = %player_id, "player's peer connection failed or closed");
                    break;
                }
                Some(other) => tracing::debug!(player = %player_id, state = %other, "player peer state"),
            },
        }
    }
}

async fn add_candidate(p: &DownstreamParams, pc: &RTCPeerConnection, c: &IceCandidate) {
    if c.candidate.is_empty() || !candidate_allowed(p.config.ice, &c.candidate) {
        return;
    }
    if let Err(e) = pc.add_ice_candidate(to_rtc_candidate(c)).await {
        tracing::warn!(player = %p.player_id, error = %e, "player candidate refused");
    }
}

/// Read RTCP from one sender (this also drives its interceptors) and turn
/// PLI/FIR into a keyframe request for the player's layer.
async fn read_rtcp(
    sender: Arc<RTCRtpSender>,
    forwarder: Arc<Forwarder>,
    control: Arc<PlayerControl>,
    stats: Arc<SfuStats>,
) {
    while let Ok((packets, _)) = sender.read_rtcp().await {
        for packet in packets {
            let any = packet.as_any();
            if any.downcast_ref::<PictureLossIndication>().is_some() || any.downcast_ref::<FullIntraRequest>().is_some()
            {
                stats.player_plis.fetch_add(1, Relaxed);
                let layer = control.target.load(Relaxed).min(forwarder.layer_count().saturating_sub(1));
                forwarder.request_keyframe(layer);
            }
        }
    }
}
