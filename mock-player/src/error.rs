//! Why a player failed.

/// A player's failure. [`PlayerError::kind`] groups failures in reports.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlayerError {
    #[error("bad URL {0:?}: {1}")]
    BadUrl(String, String),
    #[error("WebSocket connect failed: {0}")]
    Connect(String),
    #[error("signalling socket closed: {0}")]
    SocketClosed(String),
    #[error("subscribe failed: {0}")]
    SubscribeFailed(String),
    #[error("streamer disconnected")]
    StreamerDisconnected,
    #[error("no streamer chosen: {0}")]
    NoStreamer(String),
    #[error("join timed out after {secs:.1} s in phase {phase}")]
    JoinTimeout { secs: f64, phase: &'static str },
    #[error("WebRTC: {0}")]
    Rtc(String),
    #[error("ICE/peer connection failed ({0})")]
    PeerFailed(String),
    /// "TURN allocation refused: 401 Unauthorized", or no relay candidate at all.
    #[error("{0}")]
    TurnRefused(String),
    #[error("only {got} video frames, expected at least {want}")]
    TooFewFrames { got: u64, want: u64 },
    #[error("video frame rate {got:.2} fps below minimum {want:.2}")]
    LowFps { got: f64, want: f64 },
    #[error("nothing was received")]
    NothingReceived,
    #[error("{0}")]
    Usage(String),
}

impl PlayerError {
    /// A short stable label to group failures by.
    pub fn kind(&self) -> &'static str {
        match self {
            PlayerError::BadUrl(..) => "bad_url",
            PlayerError::Connect(_) => "connect",
            PlayerError::SocketClosed(_) => "socket_closed",
            PlayerError::SubscribeFailed(_) => "subscribe_failed",
            PlayerError::StreamerDisconnected => "streamer_disconnected",
            PlayerError::NoStreamer(_) => "no_streamer",
            PlayerError::JoinTimeout { .. } => "join_timeout",
            PlayerError::Rtc(_) => "webrtc",
            PlayerError::PeerFailed(_) => "peer_failed",
            PlayerError::TurnRefused(_) => "turn_refused",
            PlayerError::TooFewFrames { .. } => "too_few_frames",
            PlayerError::LowFps { .. } => "low_fps",
            PlayerError::NothingReceived => "nothing_received",
            PlayerError::Usage(_) => "usage",
        }
    }

    /// Setup or usage problems (exit code 2) as opposed to test failures.
    pub fn is_setup(&self) -> bool {
        matches!(self, PlayerError::BadUrl(..) | PlayerError::Usage(_))
    }
}

impl From<webrtc::error::Error> for PlayerError {
    fn from(e: webrtc::error::Error) -> Self {
        PlayerError::Rtc(e.to_string())
    }
}
