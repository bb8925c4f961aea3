//! The one WebRTC API object every player of a process shares, and the
//! per-peer RTCConfiguration.
//!
//! Built from `proto::rtc` (codecs, ICE policy, `peerConnectionOptions`)
//! with two player-specific choices on top:
//! - interceptors: RTCP reports only (receive-only players need no NACK
//!   responder or TWCC; memory per peer);
//! - the answer takes the DTLS server role (see [`RtcContext::new`]).
//!
//! With loopback-only ICE, candidates are gathered on 127.0.0.1 (IPv4 UDP)
//! only, mDNS is off, ICE servers from the server's `config` are ignored and
//! remote candidates that are not 127.0.0.1 are dropped.

use std::net::IpAddr;
use std::sync::Arc;

use proto::rtc::IcePolicy;
use serde_json::Value;
use webrtc::api::interceptor_registry::configure_rtcp_reports;
use webrtc::api::{APIBuilder, API};
use webrtc::dtls_transport::dtls_role::DTLSRole;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;

use crate::error::PlayerError;

/// Shared WebRTC state: one API object for all players.
pub struct RtcContext {
    pub api: API,
    pub loopback_only: bool,
}

impl std::fmt::Debug for RtcContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtcContext").field("loopback_only", &self.loopback_only).finish()
    }
}

impl RtcContext {
    pub fn new(loopback_only: bool) -> Result<Arc<RtcContext>, PlayerError> {
        let rtc_err = |e: proto::rtc::RtcError| PlayerError::Rtc(e.to_string());
        let media = proto::rtc::media_engine().map_err(rtc_err)?;
        let registry = configure_rtcp_reports(Registry::new());
        let mut settings = proto::rtc::setting_engine(IcePolicy { loopback_only });
        // Answer `a=setup:passive` (DTLS server; browsers answer active).
        // As DTLS client our first ClientHello often reached the streamer
        // before its DTLS transport was listening and was retransmitted only
        // after DTLS's 1 s timer: 50 players, first RTP p90 1019 ms as client,
        // 35 ms as server.
        settings.set_answering_dtls_role(DTLSRole::Server)?;
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .build();
        Ok(Arc::new(RtcContext { api, loopback_only }))
    }

    /// The peer configuration: the server's ICE servers unless loopback-only.
    pub fn configuration(&self, peer_connection_options: &Value) -> RTCConfiguration {
        let policy = IcePolicy { loopback_only: self.loopback_only };
        proto::rtc::rtc_configuration(peer_connection_options, policy).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring the server's peerConnectionOptions");
            RTCConfiguration::default()
        })
    }

    /// Whether a remote candidate may be used under the ICE policy.
    pub fn accept_remote_candidate(&self, candidate: &str) -> bool {
        !self.loopback_only || candidate_is_loopback(candidate)
    }
}

/// Is a candidate line (`candidate:… <ip> <port> typ …`) on 127.0.0.0/8?
pub fn candidate_is_loopback(candidate: &str) -> bool {
    let line = candidate.trim_start_matches("a=");
    let fields: Vec<&str> = line.split_whitespace().collect();
    fields
        .get(4)
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .is_some_and(|ip| matches!(ip, IpAddr::V4(v4) if v4.is_loopback()))
}

/// Remove `a=candidate` lines that are not loopback from an SDP.
pub fn filter_sdp_candidates(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let t = line.trim_end();
        if t.starts_with("a=candidate:") && !candidate_is_loopback(t) {
            continue;
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates() {
        assert!(candidate_is_loopback("candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"));
        assert!(!candidate_is_loopback("candidate:1 1 udp 2130706431 192.0.2.4 5000 typ host"));
        assert!(!candidate_is_loopback("candidate:1 1 udp 1 ::1 5000 typ host"));
        assert!(!candidate_is_loopback("garbage"));
        let sdp = "v=0\r\na=candidate:1 1 udp 1 10.0.0.1 9 typ host\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n";
        assert_eq!(filter_sdp_candidates(sdp), "v=0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n");
    }
}
