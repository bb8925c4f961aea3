//! What nodes say to each other over the bus: one JSON object per message,
//! `{"v":1,"from":"<node>","type":…,…}`. Sans-I/O: encode and decode only.
//!
//! A player on node B subscribed to a streamer on node A is, on A, a remote
//! connection: B sends A the player's `subscribe` and the frames it sends its
//! streamer, A sends B what its router sends that player, and the order of
//! each direction is the order of one Redis connection's publishes.

use proto::close::Close;
use serde::{Deserialize, Serialize};

/// Message format version; a node drops messages of another version.
pub const VERSION: u32 = 1;

/// A node's name in the cluster (`--node_id`).
pub type NodeId = String;

/// One message between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeMessage {
    // ----- the player's node → the streamer's node ---------------------------
    /// A player (or an SFU, as a player) of the sender subscribes to a streamer
    /// of the receiver. The receiver's router decides (`--max_players` is
    /// counted where the streamer is) and answers through [`NodeMessage::ToPlayer`].
    Subscribe { player_id: String, sfu: bool, remote_address: String, streamer_id: String },
    /// A frame that player sent its streamer, as it arrived.
    FromPlayer { player_id: String, frame: String },
    /// That player unsubscribed or left.
    Leave { player_id: String },
    // ----- the streamer's node → the player's node ---------------------------
    /// A frame for that player (forwarded from the streamer, or the router's own).
    ToPlayer { player_id: String, frame: String },
    /// Close that player for this cause (its session on the streamer's node is over).
    ClosePlayer { player_id: String, close: Close },
    // ----- broadcast --------------------------------------------------------
    /// The sender's streamers changed (one joined, left, renamed or started
    /// streaming): read the directory again now rather than at the next tick.
    DirectoryChanged,
}

impl NodeMessage {
    /// The player the message is about, if any.
    pub fn player_id(&self) -> Option<&str> {
        match self {
            NodeMessage::Subscribe { player_id, .. }
            | NodeMessage::FromPlayer { player_id, .. }
            | NodeMessage::Leave { player_id }
            | NodeMessage::ToPlayer { player_id, .. }
            | NodeMessage::ClosePlayer { player_id, .. } => Some(player_id),
            NodeMessage::DirectoryChanged => None,
        }
    }
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    v: u32,
    from: &'a str,
    #[serde(flatten)]
    message: &'a NodeMessage,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    v: u32,
    from: NodeId,
    #[serde(flatten)]
    message: NodeMessage,
}

/// Why a bus message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a node message: {0}")]
    Junk(String),
    #[error("message of version {0:?}, this node speaks {VERSION}")]
    Version(Option<u64>),
}

impl WireError {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            WireError::Junk(_) => "junk",
            WireError::Version(_) => "version",
        }
    }
}

/// `message` from node `from`, as published.
pub fn encode(from: &str, message: &NodeMessage) -> String {
    // Serialising plain strings, bools and a close cause cannot fail.
    serde_json::to_string(&EnvelopeOut { v: VERSION, from, message }).unwrap_or_default()
}

/// The sender and the message, or why it is dropped.
pub fn decode(text: &[u8]) -> Result<(NodeId, NodeMessage), WireError> {
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| WireError::Junk(format!("not JSON ({e})")))?;
    match value.get("v").map(|v| v.as_u64()) {
        Some(Some(v)) if v == u64::from(VERSION) => {}
        Some(v) => return Err(WireError::Version(v)),
        None => return Err(WireError::Junk("no version".into())),
    }
    let envelope: EnvelopeIn = serde_json::from_value(value).map_err(|e| WireError::Junk(e.to_string()))?;
    if envelope.v != VERSION {
        return Err(WireError::Version(Some(u64::from(envelope.v))));
    }
    Ok((envelope.from, envelope.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let messages = [
            NodeMessage::Subscribe {
                player_id: "Player7".into(),
                sfu: false,
                remote_address: "127.0.0.1:5000".into(),
                streamer_id: "A".into(),
            },
            NodeMessage::FromPlayer { player_id: "Player7".into(), frame: r#"{"type":"answer","sdp":"x"}"#.into() },
            NodeMessage::Leave { player_id: "Player7".into() },
            NodeMessage::ToPlayer { player_id: "Player7".into(), frame: r#"{"type":"offer"}"#.into() },
            NodeMessage::ClosePlayer {
                player_id: "Player7".into(),
                close: Close::DisconnectedByStreamer(Some("bye".into())),
            },
            NodeMessage::DirectoryChanged,
        ];
        for m in messages {
            let text = encode("a", &m);
            assert_eq!(decode(text.as_bytes()), Ok(("a".to_string(), m)));
        }
    }

    #[test]
    fn junk_and_other_versions_are_refused_not_panicked_on() {
        for junk in
            [&b""[..], b"\xff\xfe", b"[]", b"{}", b"null", br#"{"v":1}"#, br#"{"v":1,"from":"a","type":"nope"}"#]
        {
            assert_eq!(decode(junk).map_err(|e| e.label()), Err("junk"), "{junk:?}");
        }
        assert_eq!(decode(br#"{"v":2,"from":"a","type":"directory_changed"}"#), Err(WireError::Version(Some(2))));
        assert_eq!(decode(br#"{"v":"1","from":"a"}"#), Err(WireError::Version(None)));
    }
}
