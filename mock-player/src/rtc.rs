//! WebRTC for the players, on the toolkit's shared settings (`proto::rtc`).
//!
//! webrtc-rs 0.21 has no shared `API` object: every peer connection is built
//! from its own media engine, setting engine and interceptor registry. What
//! the players of a process share is [`RtcContext`]: the ICE policy, and the
//! media and setting engines made once and cloned per connection (a player
//! joins hundreds of times per process). The choices themselves are
//! `proto::rtc`'s, as for every peer of the toolkit; a player's are:
//! - loopback-only ICE on request (one UDP socket on 127.0.0.1, UDP4, mDNS
//!   off, non-127.0.0.1 remote candidates dropped);
//! - the answer as DTLS server (`a=setup:passive`): as DTLS client our first
//!   ClientHello often reached the streamer before its DTLS transport was
//!   listening and was resent only after DTLS's 1 s timer (50 players, first
//!   RTP p90 1019 ms as client, 35 ms as server);
//! - RTCP reports only ([`Interceptors::ReportsOnly`]): a receive-only player
//!   needs no NACK responder (its history buffer was most of a peer's memory
//!   on 0.17) and no TWCC; receiver reports let the sender see loss and jitter.

use std::sync::Arc;

use proto::rtc::{settings, IcePolicy, Interceptors, PeerSettings, ProcessCrypto};
use serde_json::Value;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, SettingEngine,
};

pub use proto::rtc::{candidate_is_loopback, filter_sdp_candidates, from_rtc_candidate, to_rtc_candidate};

use crate::error::PlayerError;

/// How a player's peer connections are built (see the module doc).
fn player_settings(ice: IcePolicy) -> PeerSettings {
    PeerSettings { answer_as_dtls_server: true, ..PeerSettings::answerer(ice, Interceptors::ReportsOnly) }
}

/// What every player of a process shares to build its peer connections.
pub struct RtcContext {
    pub loopback_only: bool,
    crypto: &'static ProcessCrypto,
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
        let rtc = |e: proto::rtc::RtcError| PlayerError::Rtc(e.to_string());
        let crypto = proto::rtc::process_crypto().map_err(rtc)?;
        let media = proto::rtc::media_engine().map_err(rtc)?;
        let settings = settings::setting_engine(&player_settings(Self::policy(loopback_only)), crypto);
        Ok(Arc::new(RtcContext { loopback_only, crypto, media, settings }))
    }

    fn policy(loopback_only: bool) -> IcePolicy {
        if loopback_only {
            IcePolicy::LOOPBACK
        } else {
            IcePolicy::ANY
        }
    }

    /// A new peer connection whose events go to `handler`. The handler must
    /// not own the connection (or its channels): the connection owns it.
    /// Malformed ICE servers in `peer_connection_options` are ignored with a
    /// warning: the player can still join on host candidates.
    pub async fn new_peer_connection(
        &self,
        peer_connection_options: &Value,
        handler: Arc<dyn PeerConnectionEventHandler>,
    ) -> Result<Arc<dyn PeerConnection>, PlayerError> {
        let rtc = |e: proto::rtc::RtcError| PlayerError::Rtc(e.to_string());
        let policy = Self::policy(self.loopback_only);
        let configuration = settings::rtc_configuration(peer_connection_options, policy, self.crypto)
            .or_else(|e| {
                tracing::warn!(error = %e, "ignoring the server's peerConnectionOptions");
                settings::rtc_configuration(&Value::Null, policy, self.crypto)
            })
            .map_err(rtc)?;
        let mut media = self.media.clone();
        let registry = settings::interceptors(Interceptors::ReportsOnly, &mut media).map_err(rtc)?;
        let pc = PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(media)
            .with_setting_engine(self.settings.clone())
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(settings::bind_addresses(policy))
            .build()
            .await?;
        Ok(Arc::new(pc))
    }

    /// Whether a remote candidate may be used under the ICE policy.
    pub fn accept_remote_candidate(&self, candidate: &str) -> bool {
        !self.loopback_only || candidate_is_loopback(candidate)
    }
}
