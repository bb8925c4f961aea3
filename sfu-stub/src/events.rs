//! Events: what a running SFU reports to tests and harnesses ([`SfuEvent`]),
//! and what its peer tasks report to the signalling session ([`Internal`]).

use std::sync::Arc;

use crate::forwarder::Forwarder;

/// Something that happened in the SFU, for tests to wait on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEvent {
    /// `endpointIdConfirm` received.
    Registered { id: String },
    /// `subscribe` sent.
    Subscribed { streamer_id: String },
    /// Media flows from the streamer; `startStreaming` sent.
    Streaming,
    /// `stopStreaming` sent (streamer gone or media stalled).
    StreamingStopped,
    /// A player's peer connection is connected and being fed.
    PlayerConnected { player_id: String },
    /// A player's peer connection was torn down.
    PlayerClosed { player_id: String },
    /// The signalling connection dropped (a reconnect follows unless stopping).
    SignallingLost,
}

/// Peer task → signalling session. `generation` names the upstream
/// connection the event is about (stale ones are ignored).
pub enum Internal {
    /// Every track the streamer offered has RTP flowing (again).
    MediaReady { generation: u64, media: Vec<Arc<Forwarder>>, scalability_mode: Option<String> },
    /// No RTP for the stall timeout.
    MediaStalled { generation: u64 },
    /// The upstream peer connection failed or closed.
    UpstreamClosed { generation: u64 },
    /// A player's peer task ended.
    PlayerClosed { player_id: String, key: u64 },
}
