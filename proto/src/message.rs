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

/// The signalling messages, one row each: `Variant => "type"`, then its
/// fields with their wire names. Generates [`Message`] (tagged by its `type`
/// field), [`Message::type_name`] and [`KNOWN_TYPES`] from that one list.
macro_rules! signalling_messages {
    (
        $(
            $(#[$meta:meta])*
            $name:ident => $type_name:literal
                $( { $( $(#[$field_meta:meta])* $field:ident : $field_ty:ty ),* $(,)? } )?
        ),* $(,)?
    ) => {
        /// Every signalling message, tagged by its `type` field.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum Message {
            $(
                $(#[$meta])*
                #[serde(rename = $type_name)]
                $name $( { $( $(#[$field_meta])* $field: $field_ty ),* } )?,
            )*
        }

        /// Every `type` this crate knows, in `messages.md` order.
        pub const KNOWN_TYPES: &[&str] = &[$( $type_name ),*];

        impl Message {
            /// The wire `type` of this message.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( Message::$name { .. } => $type_name, )*
                }
            }
        }
    };
}

signalling_messages! {
    /// server → every peer, first.
    Config => "config" {
        #[serde(rename = "peerConnectionOptions", default = "empty_object")]
        peer_connection_options: Value,
        #[serde(rename = "protocolVersion", default, skip_serializing_if = "Option::is_none")]
        protocol_version: Option<String>,
    },
    /// server → streamer, SFU: "tell me who you are".
    Identify => "identify",
    /// streamer, SFU → server. An absent or empty id gets a generated one.
    EndpointId => "endpointId" {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(rename = "protocolVersion", default, skip_serializing_if = "Option::is_none")]
        protocol_version: Option<String>,
    },
    EndpointIdConfirm => "endpointIdConfirm" {
        #[serde(rename = "committedId")]
        committed_id: String,
    },
    StreamerIdChanged => "streamerIdChanged" {
        #[serde(rename = "newID")]
        new_id: String,
    },
    ListStreamers => "listStreamers",
    StreamerList => "streamerList" { ids: Vec<String> },
    Subscribe => "subscribe" {
        #[serde(rename = "streamerId")]
        streamer_id: String,
    },
    Unsubscribe => "unsubscribe",
    SubscribeFailed => "subscribeFailed" { message: String },
    PlayerConnected => "playerConnected" {
        #[serde(rename = "playerId")]
        player_id: String,
        #[serde(rename = "dataChannel", default)]
        data_channel: bool,
        #[serde(default)]
        sfu: bool,
    },
    PlayerDisconnected => "playerDisconnected" {
        #[serde(rename = "playerId")]
        player_id: String,
    },
    Offer => "offer" {
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
    Answer => "answer" {
        sdp: String,
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
        #[serde(rename = "minBitrateBps", default, skip_serializing_if = "Option::is_none")]
        min_bitrate_bps: Option<i64>,
        #[serde(rename = "maxBitrateBps", default, skip_serializing_if = "Option::is_none")]
        max_bitrate_bps: Option<i64>,
    },
    IceCandidate => "iceCandidate" {
        candidate: IceCandidate,
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
    },
    DisconnectPlayer => "disconnectPlayer" {
        #[serde(rename = "playerId")]
        player_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// `time` is milliseconds since 1970 from browsers: 64-bit. Absent means 0.
    Ping => "ping" {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<i64>,
    },
    Pong => "pong" {
        #[serde(default)]
        time: i64,
    },
    StreamerDisconnected => "streamerDisconnected",
    LayerPreference => "layerPreference" {
        #[serde(rename = "spatialLayer")]
        spatial_layer: i64,
        #[serde(rename = "temporalLayer")]
        temporal_layer: i64,
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
    },
    DataChannelRequest => "dataChannelRequest" {
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
    },
    PeerDataChannels => "peerDataChannels" {
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
        #[serde(rename = "sendStreamId")]
        send_stream_id: u16,
        #[serde(rename = "recvStreamId")]
        recv_stream_id: u16,
    },
    PeerDataChannelsReady => "peerDataChannelsReady" {
        #[serde(rename = "playerId", default, skip_serializing_if = "Option::is_none")]
        player_id: Option<String>,
    },
    StreamerDataChannels => "streamerDataChannels" {
        #[serde(rename = "sfuId", default, skip_serializing_if = "Option::is_none")]
        sfu_id: Option<String>,
        #[serde(rename = "playerId")]
        player_id: String,
        #[serde(rename = "sendStreamId")]
        send_stream_id: u16,
        #[serde(rename = "recvStreamId")]
        recv_stream_id: u16,
    },
    StartStreaming => "startStreaming",
    StopStreaming => "stopStreaming",
    /// Deprecated upstream; sent per the seed (can be switched off).
    PlayerCount => "playerCount" { count: u64 },
    /// Deprecated; the server only logs it.
    Stats => "stats" {
        #[serde(default)]
        data: Value,
    },
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl Message {
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
