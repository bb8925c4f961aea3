//! Errors of the SFU library.

/// Errors starting the SFU or setting up one of its peer connections.
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    #[error(transparent)]
    Rtc(#[from] proto::rtc::RtcError),
    #[error("the streamer's offer has no audio or video to forward")]
    NoMedia,
}
