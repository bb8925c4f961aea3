//! The one WebRTC API object every player of a process shares, and the
//! per-peer RTCConfiguration.
//!
//! Receive-only players need no NACK responder or TWCC: the interceptor
//! registry holds only RTCP receiver reports (memory per peer). With
//! loopback-only ICE, candidates are gathered on 127.0.0.1 (IPv4 UDP) only,
//! mDNS is off, ICE servers from the server's `config` are ignored and remote
//! candidates that are not 127.0.0.1 are dropped.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;
use webrtc::api::interceptor_registry::configure_rtcp_reports;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::dtls_transport::dtls_role::DTLSRole;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_server::RTCIceServer;
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
        let mut media = MediaEngine::default();
        media.register_default_codecs()?;
        let registry = configure_rtcp_reports(Registry::new());
        let mut settings = SettingEngine::default();
        if loopback_only {
            settings.set_include_loopback_candidate(true);
            settings.set_ip_filter(Box::new(|ip: IpAddr| ip == IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)));
            settings.set_network_types(vec![NetworkType::Udp4]);
            settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        }
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
        let ice_servers = if self.loopback_only { Vec::new() } else { ice_servers(peer_connection_options) };
        RTCConfiguration { ice_servers, ..Default::default() }
    }

    /// Whether a remote candidate may be used under the ICE policy.
    pub fn accept_remote_candidate(&self, candidate: &str) -> bool {
        !self.loopback_only || candidate_is_loopback(candidate)
    }
}

/// `iceServers` of a browser `RTCConfiguration` JSON (`urls` string or array).
pub fn ice_servers(options: &Value) -> Vec<RTCIceServer> {
    let Some(list) = options.get("iceServers").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|s| {
            let urls = match s.get("urls").or_else(|| s.get("url"))? {
                Value::String(u) => vec![u.clone()],
                Value::Array(a) => a.iter().filter_map(|u| u.as_str().map(String::from)).collect(),
                _ => return None,
            };
            let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            Some(RTCIceServer { urls, username: text("username"), credential: text("credential") })
        })
        .collect()
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

    #[test]
    fn servers() {
        let v: Value = serde_json::json!({"iceServers":[{"urls":["stun:a","turn:b"],"username":"u","credential":"c"},{"urls":"stun:x"},{"nope":1}]});
        let s = ice_servers(&v);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].urls.len(), 2);
        assert_eq!(s[1].urls, vec!["stun:x".to_string()]);
    }
}
