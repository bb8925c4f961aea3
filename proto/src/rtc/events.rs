//! A peer connection's events as a channel: [`EventSender`] is the
//! connection's event handler and forwards every callback, in order, as a
//! [`PeerEvent`] to the task that drives the connection.
//!
//! The handler holds only the channel's sender: the connection owns its
//! handler, so a handler holding the connection, one of its data channels or
//! tracks would be a reference cycle that keeps every closed connection in
//! memory (0.17's leak, webrtc-rs/webrtc#772).

use std::sync::Arc;

use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceConnectionState, RTCIceGatheringState, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState,
};

use super::candidate::from_rtc_candidate;
use crate::message::IceCandidate;

/// What a peer connection reports.
pub enum PeerEvent {
    /// A local candidate, ready for an `iceCandidate` message.
    LocalCandidate(IceCandidate),
    /// Local gathering finished (every local candidate was reported before).
    GatheringDone,
    IceState(RTCIceConnectionState),
    State(RTCPeerConnectionState),
    /// A remote track (on its first RTP packet); read it with `poll`.
    Track(Arc<dyn TrackRemote>),
    /// A data channel the remote end opened; read it with `poll`.
    DataChannel(Arc<dyn DataChannel>),
}

impl std::fmt::Debug for PeerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerEvent::LocalCandidate(c) => f.debug_tuple("LocalCandidate").field(c).finish(),
            PeerEvent::GatheringDone => f.write_str("GatheringDone"),
            PeerEvent::IceState(s) => f.debug_tuple("IceState").field(s).finish(),
            PeerEvent::State(s) => f.debug_tuple("State").field(s).finish(),
            PeerEvent::Track(_) => f.write_str("Track"),
            PeerEvent::DataChannel(c) => f.debug_tuple("DataChannel").field(&c.id()).finish(),
        }
    }
}

/// The event handler of one peer connection: forwards to a channel.
pub struct EventSender {
    tx: mpsc::UnboundedSender<PeerEvent>,
}

/// A handler for a new peer connection and the receiver of its events.
pub fn event_channel() -> (Arc<EventSender>, mpsc::UnboundedReceiver<PeerEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(EventSender { tx }), rx)
}

impl EventSender {
    fn send(&self, event: PeerEvent) {
        // The receiver is gone when its task ended: nothing left to tell.
        let _ = self.tx.send(event);
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for EventSender {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) if !init.candidate.is_empty() => self.send(PeerEvent::LocalCandidate(from_rtc_candidate(init))),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "local ICE candidate not serialisable"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.send(PeerEvent::GatheringDone);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        self.send(PeerEvent::IceState(state));
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.send(PeerEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.send(PeerEvent::Track(track));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        self.send(PeerEvent::DataChannel(channel));
    }
}
