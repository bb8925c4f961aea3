//! WebRTC for the players, on webrtc-rs 0.21 (the sans-I/O line).
//!
//! 0.21 has no shared `API` object: every peer connection is built from its
//! own media engine, setting engine and interceptor registry. What the
//! players of a process share is [`RtcContext`]: the ICE policy, the media
//! and setting engines to clone per connection, and one crypto provider and
//! DTLS certificate ([`crypto`]). The choices are those mock-player made on
//! 0.17 through `proto::rtc`, one concern per module:
//! - [`media`]: H.264/VP8/Opus with the toolkit's payload types;
//! - [`settings`]: loopback-only ICE (one UDP socket on 127.0.0.1, UDP4,
//!   mDNS off), peer-reflexive pairs used at once, the answer as DTLS server;
//! - [`interceptors`]: RTCP reports only;
//! - [`configuration`]: the server's ICE servers unless loopback-only, the
//!   process certificate;
//! - [`candidates`]: candidate conversion and the loopback filter on remote
//!   candidates (non-127.0.0.1 candidates are dropped when loopback-only).

pub mod candidates;
pub mod configuration;
pub mod crypto;
pub mod interceptors;
pub mod media;
pub mod settings;

use std::sync::Arc;

use serde_json::Value;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, SettingEngine,
};

pub use candidates::{candidate_is_loopback, filter_sdp_candidates};

use crate::error::PlayerError;

/// What every player of a process shares to build its peer connections.
pub struct RtcContext {
    pub loopback_only: bool,
    crypto: &'static crypto::ProcessCrypto,
    media: MediaEngine,
    settings: SettingEngine,
}

impl std::fmt::Debug for RtcContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtcContext").field("loopback_only", &self.loopback_only).finish()
    }
}

impl RtcContext {
    pub fn new(loopback_only: bool) -> Result<Arc<RtcContext>, PlayerError> {
        let crypto = crypto::process_crypto().map_err(|e| PlayerError::Rtc(e.to_string()))?;
        let media = media::media_engine()?;
        let settings = settings::setting_engine(loopback_only, crypto.provider.clone());
        Ok(Arc::new(RtcContext { loopback_only, crypto, media, settings }))
    }

    /// A new peer connection whose events go to `handler`. The handler must
    /// not own the connection (or its channels): the connection owns it.
    pub async fn new_peer_connection(
        &self,
        peer_connection_options: &Value,
        handler: Arc<dyn PeerConnectionEventHandler>,
    ) -> Result<Arc<dyn PeerConnection>, PlayerError> {
        let configuration =
            configuration::configuration(peer_connection_options, self.loopback_only, &self.crypto.certificate);
        let pc = PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(self.media.clone())
            .with_setting_engine(self.settings.clone())
            .with_interceptor_registry(interceptors::interceptors())
            .with_handler(handler)
            .with_udp_addrs(settings::udp_bind_addrs(self.loopback_only))
            .build()
            .await?;
        Ok(Arc::new(pc))
    }

    /// Whether a remote candidate may be used under the ICE policy.
    pub fn accept_remote_candidate(&self, candidate: &str) -> bool {
        !self.loopback_only || candidate_is_loopback(candidate)
    }
}
