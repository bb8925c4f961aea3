//! Why the server closes a WebSocket: each cause's close code (RFC 6455
//! §7.4.1), reason text and metric label, defined once in [`Close`] so that
//! the three cannot drift apart.

/// Normal closure: the server closes a player whose streamer went away.
pub const NORMAL: u16 = 1000;
/// Going away: server shutdown, or a keepalive ping left unanswered.
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
/// Try again later: a legacy (UE 4.27) offer found no streamer with room.
pub const TRY_AGAIN_LATER: u16 = 1013;

/// Every reason the server closes a connection. Serialisable: a cluster node
/// tells another node why to close one of its players.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Close {
    // ----- the router -----
    /// The player's streamer went away.
    StreamerDisconnected,
    /// The player's SFU sent `stopStreaming`.
    SfuStopped,
    /// A legacy offer with no streamer to send it to.
    NoStreamer,
    /// A legacy offer to a streamer at `--max_players`.
    StreamerFull,
    /// `disconnectPlayer`, with the streamer's own reason when it gave one.
    DisconnectedByStreamer(Option<String>),
    /// `--streamer_ids`: an id not on the list.
    StreamerIdNotAllowed,
    /// `--streamer_ids`: a listed id another streamer holds.
    StreamerIdInUse,
    // ----- the transport -----
    /// The peer's send queue overflowed: it does not read its socket.
    QueueFull,
    RateLimit,
    TooBig,
    InvalidUtf8,
    PingTimeout,
    Shutdown,
    // ----- the operator (admin API) -----
    Kicked,
    DisconnectedByOperator,
}

impl Close {
    /// The close code on the wire.
    pub fn code(&self) -> u16 {
        match self {
            Close::StreamerDisconnected | Close::SfuStopped | Close::DisconnectedByOperator => NORMAL,
            Close::PingTimeout | Close::Shutdown => GOING_AWAY,
            Close::InvalidUtf8 => INVALID_PAYLOAD,
            Close::StreamerIdNotAllowed
            | Close::StreamerIdInUse
            | Close::QueueFull
            | Close::RateLimit
            | Close::Kicked => POLICY,
            Close::TooBig => TOO_BIG,
            Close::DisconnectedByStreamer(_) => SERVER_ERROR,
            Close::NoStreamer | Close::StreamerFull => TRY_AGAIN_LATER,
        }
    }

    /// The close reason on the wire (cut to 123 bytes when sent).
    pub fn reason(&self) -> &str {
        match self {
            Close::StreamerDisconnected => "streamer disconnected",
            Close::SfuStopped => "SFU stopped streaming",
            Close::NoStreamer => "no streamer is available",
            Close::StreamerFull => "streamer is full",
            Close::DisconnectedByStreamer(Some(reason)) => reason,
            Close::DisconnectedByStreamer(None) => "disconnected by streamer",
            Close::StreamerIdNotAllowed => "streamer id not allowed",
            Close::StreamerIdInUse => "streamer id already in use",
            Close::QueueFull => "send queue full: the peer is not reading",
            Close::RateLimit => "message rate limit exceeded",
            Close::TooBig => "message too big",
            Close::InvalidUtf8 => "invalid UTF-8 in a text frame",
            Close::PingTimeout => "keepalive ping not answered",
            Close::Shutdown => "server shutting down",
            Close::Kicked => "kicked by the operator",
            Close::DisconnectedByOperator => "disconnected by the operator",
        }
    }

    /// The `reason` label of the drops metric this close counts under (the
    /// causes the server does not count there still have one, for logs).
    pub fn label(&self) -> &'static str {
        match self {
            Close::StreamerDisconnected => "streamer_disconnected",
            Close::SfuStopped => "sfu_stopped",
            Close::NoStreamer => "no_streamer",
            Close::StreamerFull => "streamer_full",
            Close::DisconnectedByStreamer(_) => "disconnected_by_streamer",
            // Both refusals of `--streamer_ids` count as one.
            Close::StreamerIdNotAllowed | Close::StreamerIdInUse => "streamer_id_not_allowed",
            Close::QueueFull => "queue_full",
            Close::RateLimit => "rate_limit",
            Close::TooBig => "too_big",
            Close::InvalidUtf8 => "invalid_utf8",
            Close::PingTimeout => "ping_timeout",
            Close::Shutdown => "shutdown",
            Close::Kicked => "kicked",
            Close::DisconnectedByOperator => "disconnected_by_operator",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Peers and tests match on these: they must not change.
    #[test]
    fn wire_codes_and_reasons_are_stable() {
        let cases = [
            (Close::StreamerDisconnected, 1000, "streamer disconnected"),
            (Close::SfuStopped, 1000, "SFU stopped streaming"),
            (Close::NoStreamer, 1013, "no streamer is available"),
            (Close::StreamerFull, 1013, "streamer is full"),
            (Close::DisconnectedByStreamer(None), 1011, "disconnected by streamer"),
            (Close::DisconnectedByStreamer(Some("kicked".into())), 1011, "kicked"),
            (Close::StreamerIdNotAllowed, 1008, "streamer id not allowed"),
            (Close::StreamerIdInUse, 1008, "streamer id already in use"),
            (Close::QueueFull, 1008, "send queue full: the peer is not reading"),
            (Close::RateLimit, 1008, "message rate limit exceeded"),
            (Close::TooBig, 1009, "message too big"),
            (Close::InvalidUtf8, 1007, "invalid UTF-8 in a text frame"),
            (Close::PingTimeout, 1001, "keepalive ping not answered"),
            (Close::Shutdown, 1001, "server shutting down"),
            (Close::Kicked, 1008, "kicked by the operator"),
            (Close::DisconnectedByOperator, 1000, "disconnected by the operator"),
        ];
        for (close, code, reason) in cases {
            assert_eq!((close.code(), close.reason()), (code, reason), "{close:?}");
        }
    }
}
