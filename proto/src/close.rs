//! WebSocket close codes (RFC 6455 §7.4.1) as the toolkit uses them.

/// Normal closure: the server closes a player whose streamer went away.
pub const NORMAL: u16 = 1000;
/// Going away: server shutdown.
pub const GOING_AWAY: u16 = 1001;
/// Invalid frame payload data: a text frame that is not UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// Policy violation: rate limit exceeded, or the peer's send queue overflowed
/// because it does not read its socket.
pub const POLICY: u16 = 1008;
/// Message too big: a frame over the configured maximum.
pub const TOO_BIG: u16 = 1009;
/// Internal error; Wilbur (and so we) use it for `disconnectPlayer`.
pub const SERVER_ERROR: u16 = 1011;
