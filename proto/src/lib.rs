//! Pixel Streaming protocol types, with no I/O.
//!
//! - [`message`]: the JSON signalling messages ([`Message`]) and
//!   [`incoming`]: parsing a frame into a typed view plus its original object.
//! - [`datachannel`]: the binary data-channel messages, both directions.
//! - [`close`]: WebSocket close codes, and why the server closes ([`close::Close`]).
//! - [`rtp_payload`]: keyframe detection and picture size (H.264 SPS, VP8 key frame), from RTP payloads.
//! - [`ice_servers`]: the STUN/TURN servers of `config`'s `peerConnectionOptions`.
//! - [`capture_time`]: the `abs-capture-time` RTP header extension (per-frame latency).
//! - [`impairment`]: a bad network on purpose (`--impair`), as a sans-I/O link model.
//!
//! Behind features, code that every WebRTC peer of the toolkit shares:
//! `client` (an async signalling client), `rtc` (WebRTC settings) and `log`
//! (every binary's log setup, one precedence rule).

pub mod capture_time;
pub mod close;
pub mod datachannel;
pub mod ice_servers;
pub mod impairment;
pub mod incoming;
pub mod message;
pub mod rtp_payload;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "log")]
pub mod logging;
#[cfg(feature = "rtc")]
pub mod rtc;

pub use incoming::{Incoming, ParseError};
pub use message::{IceCandidate, Message, PROTOCOL_VERSION};
