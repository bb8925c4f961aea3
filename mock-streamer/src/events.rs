//! Events a running streamer reports, for tests and harnesses to wait on
//! (instead of sleeping and hoping).

/// Something that happened in one streamer. `streamer` is its index in
/// [`crate::StreamerConfig::streamer_ids`].
#[derive(Debug, Clone, PartialEq)]
pub enum StreamerEvent {
    /// `endpointIdConfirm` received.
    Registered { streamer: usize, id: String },
    /// The signalling connection dropped (a reconnect follows unless stopping).
    SignallingLost { streamer: usize },
    /// `playerConnected` received.
    PlayerConnected { streamer: usize, player_id: String },
    /// The player's peer connection reached "connected"; video flows.
    PeerConnected { streamer: usize, player_id: String },
    /// The player's peer connection failed or closed.
    PeerClosed { streamer: usize, player_id: String },
    /// A data channel for this player opened (Protocol was sent).
    DataChannelOpen { streamer: usize, player_id: String },
    /// A player → streamer data-channel message was decoded.
    /// `message` is the decoded message (coordinates, strings, …).
    Input { streamer: usize, player_id: String, name: &'static str, message: proto::datachannel::ToStreamer },
    /// `playerDisconnected` received.
    PlayerDisconnected { streamer: usize, player_id: String },
}
