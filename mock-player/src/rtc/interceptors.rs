//! The RTP/RTCP interceptors of a player's peer connections.

use webrtc::peer_connection::{configure_rtcp_reports, Registry};

/// RTCP sender and receiver reports only. A receive-only player needs no
/// NACK responder (its history buffer was most of a peer's memory on 0.17)
/// and no TWCC; receiver reports let the sender see loss and jitter.
pub fn interceptors() -> Registry {
    configure_rtcp_reports(Registry::new())
}
