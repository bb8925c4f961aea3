//! The binary Pixel Streaming data-channel messages (`datachannel.md`), both
//! directions.
//!
//! Every message is one binary frame: byte 0 is the message id, then the
//! payload, numbers little-endian.
//!
//! # Strings: the two directions differ
//!
//! Checked against Epic's browser frontend (`EpicGamesExt/PixelStreamingInfrastructure`,
//! `Frontend/library`):
//!
//! - **Player → streamer** strings carry a `u16` count of UTF-16 code units,
//!   then the UTF-16LE units. `SendMessageController.sendMessageToStreamer`
//!   writes `setUint16(len)` then one `setUint16(charCodeAt(i))` per unit for
//!   every field whose type in the Protocol table is `"string"`
//!   (UIInteraction, Command, LatencyTest, …).
//! - **Streamer → player** strings are **raw UTF-16LE to the end of the
//!   message, with no length prefix**: the frontend decodes Response, Command,
//!   InitialSettings, LatencyTest, VideoEncoderAvgQP, GamepadResponse,
//!   DataChannelLatencyTest and Protocol with
//!   `new TextDecoder('utf-16').decode(message.slice(1))`, and Epic's own
//!   JS streamer (`Extras/JSStreamer`) encodes them as `only_string`. A length
//!   prefix would show up as two garbage characters and break `JSON.parse`.
//!
//! The frontend encodes player → streamer messages from the `Protocol` table
//! the streamer sends ([`to_streamer_protocol_json`]), so that table and
//! [`ToStreamer::decode`] must agree: both are generated from the one
//! player → streamer table, which [`TO_STREAMER_PROTOCOL`] lists.
//! Its default table has `TestEcho` and `DataChannelLatencyTest` with no
//! fields; ours declares one `"string"` (what the frontend sends for them) and
//! the decoder also accepts an empty payload for those two.
//!
//! Decoding never panics: truncated payloads, trailing bytes, odd UTF-16
//! lengths, unpaired surrogates and unknown ids are all [`DataChannelError`]s.
//!
//! Layout: `wire` holds the byte-level readers and writers, `table` the
//! macro that turns one table per direction into the enum and its codec, and
//! `to_streamer` / `to_player` the two tables.

mod table;
mod to_player;
mod to_streamer;
mod wire;

pub use to_player::{to_player_name, ToPlayer, TO_PLAYER_IDS};
pub use to_streamer::{to_streamer_name, to_streamer_protocol_json, ToStreamer, Touch, TO_STREAMER_PROTOCOL};

/// Why a data-channel message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataChannelError {
    #[error("empty message (no id byte)")]
    Empty,
    #[error("unknown message id {0}")]
    UnknownId(u8),
    #[error("{name}: payload truncated (needed {needed} more bytes, {had} left)")]
    Truncated { name: &'static str, needed: usize, had: usize },
    #[error("{name}: {extra} unexpected trailing bytes")]
    TrailingBytes { name: &'static str, extra: usize },
    #[error("{name}: odd UTF-16 byte length {len}")]
    OddUtf16Length { name: &'static str, len: usize },
    #[error("{name}: invalid UTF-16 (unpaired surrogate)")]
    InvalidUtf16 { name: &'static str },
}

#[cfg(test)]
mod tests;
