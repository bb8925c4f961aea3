//! The signalling messages of the Pixel Streaming protocol (`messages.md`).
//!
//! [`Message`] is the typed view: one variant per `type`, exact wire field
//! names, optional fields left out when absent (never `null`). Receivers use it
//! to decide what to do; forwarders keep the original JSON object instead (see
//! [`crate::Incoming`]) so that fields this version does not know survive.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Protocol version advertised in `config`.
pub const PROTOCOL_VERSION: &str = "1.3.0";

/// An ICE candidate as the browser's `RTCIceCandidate.toJSON()` gives it.
///
/// `sdpMid` and `sdpMLineIndex` may be `null` in what browsers send; they are
/// accepted as absent rather than refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
    #[serde(rename = "usernameFragment", default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Every signalling message, tagged by its `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Message {
    /// server → every peer, first.
    #[serde(rename = "config")]
    Config {
        #[serde(rename = "peerConnectionOptions", default = "empty_object")]
        peer_connection_options: Value,
        #[serde(rename = "protocolVersion", default, skip_serializing_if = "Option::is_none")]
        protocol_version: Option<String>,
    },
    /// server → streamer, SFU: "tell me who you are".
    #[serde(rename = "identify")]
    Identify,
    /// streamer, SFU → server. An absent or empty id gets a generated one.
    #[serde(rename = "endpointId")]
    EndpointId {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(rename = "protocolVersion", default, skip_serializing_if = "Option::is_none")]
        protocol_version: Option<String>,
    },
    #[serde(rename = "endpointIdConfirm")]
    EndpointIdConfirm {
        #[serde(rename = "committedId")]
        committed_id: String,
    },
    #[serde(rename = "streamerIdChanged")]
    StreamerIdChanged {
        #[serde(rename = "newID")]
        new_id: String,
    },
    #[serde(rename = "listStreamers")]
    ListStreamers,
    #[serde(rename = "streamerList")]
    StreamerList { ids: Vec<String> },
    #[serde(rename = "subscribe")]
    Subscribe {
        #[serde(rename = "streamerId")]
        streamer_id: String,
    },
    #[serde(rename = "unsubscribe")]
    Unsubscribe,
    #[serde(rename = "subscribeFailed")]
    SubscribeFailed { message: String },
    #[serde(rename = "playerConnected")]
    PlayerConnected {
        #[serde(rename = "playerId")]
        player_id: String,
        #[serde(rename = "dataChannel", default)]
        data_channel: bool,
        #[serde(default)]
        sfu: bool,
    },
    #[serde(rename = "playerDisconnected")]
    PlayerDisconnected {
        #[serde(rename = "playerId")]
        player_id: String,
    },
    #[serde(rename = "offer")]
    Offer {
        sdp: String,
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sfu: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        multiplex: Option<bool>,
        #[serde(rename = "scalabilityMode", default, skip_serializing_if = "Option::is_none")]
        scalability_mode: Option<String>,
    },
    #[serde(rename = "answer")]
    Answer {
        sdp: String,
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
        #[serde(rename = "minBitrateBps", default, skip_serializing_if = "Option::is_none")]
        min_bitrate_bps: Option<i64>,
        #[serde(rename = "maxBitrateBps", default, skip_serializing_if = "Option::is_none")]
        max_bitrate_bps: Option<i64>,
    },
    #[serde(rename = "iceCandidate")]
    IceCandidate {
        candidate: IceCandidate,
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
    },
    #[serde(rename = "disconnectPlayer")]
    DisconnectPlayer {
        #[serde(rename = "playerId")]
        player_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// `time` is milliseconds since 1970 from browsers: 64-bit. Absent means 0.
    #[serde(rename = "ping")]
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<i64>,
    },
    #[serde(rename = "pong")]
    Pong {
        #[serde(default)]
        time: i64,
    },
    #[serde(rename = "streamerDisconnected")]
    StreamerDisconnected,
    #[serde(rename = "layerPreference")]
    LayerPreference {
        #[serde(rename = "spatialLayer")]
        spatial_layer: i64,
        #[serde(rename = "temporalLayer")]
        temporal_layer: i64,
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
    },
    #[serde(rename = "dataChannelRequest")]
    DataChannelRequest {
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
    },
    #[serde(rename = "peerDataChannels")]
    PeerDataChannels {
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
        #[serde(rename = "sendStreamId")]
        send_stream_id: u16,
        #[serde(rename = "recvStreamId")]
        recv_stream_id: u16,
    },
    #[serde(rename = "peerDataChannelsReady")]
    PeerDataChannelsReady {
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
    },
    #[serde(rename = "streamerDataChannels")]
    StreamerDataChannels {
        #[serde(rename = "sfuId", default, skip_serializing_if = "Option::is_none")]
        sfu_id: Option<String>,
        #[serde(rename = "playerId")]
        player_id: String,
        #[serde(rename = "sendStreamId")]
        send_stream_id: u16,
        #[serde(rename = "recvStreamId")]
        recv_stream_id: u16,
    },
    #[serde(rename = "startStreaming")]
    StartStreaming,
    #[serde(rename = "stopStreaming")]
    StopStreaming,
    /// Deprecated upstream; sent per the seed (can be switched off).
    #[serde(rename = "playerCount")]
    PlayerCount { count: u64 },
    /// Deprecated; the server only logs it.
    #[serde(rename = "stats")]
    Stats {
        #[serde(default)]
        data: Value,
    },
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Every `type` this crate knows, in `messages.md` order.
pub const KNOWN_TYPES: &[&str] = &[
    "config",
    "identify",
    "endpointId",
    "endpointIdConfirm",
    "streamerIdChanged",
    "listStreamers",
    "streamerList",
    "subscribe",
    "unsubscribe",
    "subscribeFailed",
    "playerConnected",
    "playerDisconnected",
    "offer",
    "answer",
    "iceCandidate",
    "disconnectPlayer",
    "ping",
    "pong",
    "streamerDisconnected",
    "layerPreference",
    "dataChannelRequest",
    "peerDataChannels",
    "peerDataChannelsReady",
    "streamerDataChannels",
    "startStreaming",
    "stopStreaming",
    "playerCount",
    "stats",
];

impl Message {
    /// The wire `type` of this message.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Config { .. } => "config",
            Message::Identify => "identify",
            Message::EndpointId { .. } => "endpointId",
            Message::EndpointIdConfirm { .. } => "endpointIdConfirm",
            Message::StreamerIdChanged { .. } => "streamerIdChanged",
            Message::ListStreamers => "listStreamers",
            Message::StreamerList { .. } => "streamerList",
            Message::Subscribe { .. } => "subscribe",
            Message::Unsubscribe => "unsubscribe",
            Message::SubscribeFailed { .. } => "subscribeFailed",
            Message::PlayerConnected { .. } => "playerConnected",
            Message::PlayerDisconnected { .. } => "playerDisconnected",
            Message::Offer { .. } => "offer",
            Message::Answer { .. } => "answer",
            Message::IceCandidate { .. } => "iceCandidate",
            Message::DisconnectPlayer { .. } => "disconnectPlayer",
            Message::Ping { .. } => "ping",
            Message::Pong { .. } => "pong",
            Message::StreamerDisconnected => "streamerDisconnected",
            Message::LayerPreference { .. } => "layerPreference",
            Message::DataChannelRequest { .. } => "dataChannelRequest",
            Message::PeerDataChannels { .. } => "peerDataChannels",
            Message::PeerDataChannelsReady { .. } => "peerDataChannelsReady",
            Message::StreamerDataChannels { .. } => "streamerDataChannels",
            Message::StartStreaming => "startStreaming",
            Message::StopStreaming => "stopStreaming",
            Message::PlayerCount { .. } => "playerCount",
            Message::Stats { .. } => "stats",
        }
    }

    /// The JSON text of this message, as sent in a WebSocket text frame.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every key is a string and
        // every value is plain data.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// A `config` with the given peer-connection options and our protocol version.
    pub fn config(peer_connection_options: Value) -> Self {
        Message::Config { peer_connection_options, protocol_version: Some(PROTOCOL_VERSION.to_string()) }
    }

    /// The `playerId` this message carries, if its type has one and it is set.
    pub fn player_id(&self) -> Option<&str> {
        match self {
            Message::PlayerConnected { player_id, .. }
            | Message::PlayerDisconnected { player_id }
            | Message::DisconnectPlayer { player_id, .. }
            | Message::StreamerDataChannels { player_id, .. } => Some(player_id),
            Message::Offer { player_id, .. }
            | Message::Answer { player_id, .. }
            | Message::IceCandidate { player_id, .. }
            | Message::LayerPreference { player_id, .. }
            | Message::DataChannelRequest { player_id }
            | Message::PeerDataChannels { player_id, .. }
            | Message::PeerDataChannelsReady { player_id } => player_id.as_deref(),
            _ => None,
        }
    }
}
