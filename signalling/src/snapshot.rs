//! A read-only picture of the registry, taken under the router lock, for the
//! REST API and for tests.

use serde::Serialize;

/// What kind of endpoint a streamer-side entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum EndpointKind {
    Streamer,
    #[serde(rename = "SFU")]
    Sfu,
}

/// What kind of connection a player-side entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum SubscriberKind {
    Player,
    #[serde(rename = "SFU")]
    Sfu,
}

/// One player (or SFU acting as a player), in Wilbur's REST shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PlayerInfo {
    #[serde(rename = "playerId")]
    pub player_id: String,
    #[serde(rename = "type")]
    pub kind: SubscriberKind,
    #[serde(rename = "subscribedTo", skip_serializing_if = "Option::is_none")]
    pub subscribed_to: Option<String>,
    #[serde(rename = "remoteAddress")]
    pub remote_address: String,
    /// In a cluster: the node the player is connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// One identified streamer (or SFU acting as a streamer), in Wilbur's REST shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StreamerInfo {
    #[serde(rename = "streamerId")]
    pub streamer_id: String,
    #[serde(rename = "type")]
    pub kind: EndpointKind,
    pub streaming: bool,
    #[serde(rename = "remoteAddress")]
    pub remote_address: String,
    pub subscribers: Vec<PlayerInfo>,
    /// In a cluster: the node the streamer is connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The registry at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Identified streamers and SFUs, in the order they connected.
    pub streamers: Vec<StreamerInfo>,
    /// Players and SFUs (as subscribers), in the order they connected.
    pub players: Vec<PlayerInfo>,
}
