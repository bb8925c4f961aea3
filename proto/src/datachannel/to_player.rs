//! Streamer → player messages ([`ToPlayer`]): the table (ids as in
//! `datachannel.md`) and the readable log form. Strings are raw UTF-16LE to
//! the end of the message, with no count (see the module docs of
//! [`crate::datachannel`]).

use std::fmt;

use super::table::message_table;
use super::to_streamer::to_streamer_protocol_json;
use super::wire::{put_raw_string, Reader, StreamerToPlayer, WireField};
use super::DataChannelError;

/// Raw UTF-16LE to the end of the message.
impl WireField<StreamerToPlayer> for String {
    const STRUCTURE: &'static [&'static str] = &["string"];
    fn put(&self, out: &mut Vec<u8>) {
        put_raw_string(out, self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DataChannelError> {
        r.raw_string()
    }
}

/// The bytes to the end of the message.
impl WireField<StreamerToPlayer> for Vec<u8> {
    const STRUCTURE: &'static [&'static str] = &["bytes"];
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DataChannelError> {
        Ok(r.rest())
    }
}

message_table! {
    /// Streamer → player messages. Strings are raw UTF-16LE to the end (see
    /// the module docs).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum ToPlayer;
    direction: StreamerToPlayer;
    /// The streamer → player table: name, id, field types, in id order.
    const TO_PLAYER_TABLE;
    {
        0 => QualityControlOwnership(has_it: bool),
        1 => Response(text: String),
        2 => Command(json: String),
        /// `total_size` is the size of the whole JPEG; `jpeg` is this message's
        /// part of it (all of it when it fits one message).
        3 => FreezeFrame { total_size: u32, jpeg: Vec<u8> },
        4 => UnfreezeFrame,
        5 => VideoEncoderAvgQP(qp: String),
        6 => LatencyTest(json: String),
        7 => InitialSettings(json: String),
        8 => FileExtension(text: String),
        9 => FileMimeType(text: String),
        /// Same framing as `FreezeFrame`: u32 total size, then bytes.
        10 => FileContents { total_size: u32, data: Vec<u8> },
        11 => TestEcho(text: String),
        12 => InputControlOwnership(has_it: bool),
        13 => GamepadResponse(json: String),
        14 => DataChannelLatencyTest(json: String),
        255 => Protocol(json: String),
    }
}

/// The streamer → player ids, by name (for a Direction 1 table and for logs).
pub const TO_PLAYER_IDS: &[(&str, u8)] = &names_and_ids::<{ TO_PLAYER_TABLE.len() }>(TO_PLAYER_TABLE);

/// `(name, id)` of every row of a table.
const fn names_and_ids<const N: usize>(table: &[(&'static str, u8, &[&str])]) -> [(&'static str, u8); N] {
    let mut out = [("", 0); N];
    let mut i = 0;
    while i < N {
        out[i] = (table[i].0, table[i].1);
        i += 1;
    }
    out
}

/// The streamer → player name of an id, if known.
pub fn to_player_name(id: u8) -> Option<&'static str> {
    TO_PLAYER_IDS.iter().find(|(_, i)| *i == id).map(|(n, _)| *n)
}

impl ToPlayer {
    /// A whole JPEG in one `FreezeFrame` message.
    pub fn freeze_frame(jpeg: Vec<u8>) -> Self {
        let total_size = u32::try_from(jpeg.len()).unwrap_or(u32::MAX);
        ToPlayer::FreezeFrame { total_size, jpeg }
    }

    /// The `Protocol` message announcing [`to_streamer_protocol_json`].
    pub fn protocol() -> Self {
        ToPlayer::Protocol(to_streamer_protocol_json())
    }
}

impl fmt::Display for ToPlayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ToPlayer::*;
        let name = self.name();
        match self {
            QualityControlOwnership(b) | InputControlOwnership(b) => write!(f, "{name} {b}"),
            Response(s)
            | Command(s)
            | VideoEncoderAvgQP(s)
            | LatencyTest(s)
            | InitialSettings(s)
            | FileExtension(s)
            | FileMimeType(s)
            | TestEcho(s)
            | GamepadResponse(s)
            | DataChannelLatencyTest(s)
            | Protocol(s) => {
                write!(f, "{name} {s:?}")
            }
            FreezeFrame { total_size, jpeg: data } | FileContents { total_size, data } => {
                write!(f, "{name} total_size={total_size} bytes={}", data.len())
            }
            UnfreezeFrame => f.write_str(name),
        }
    }
}
