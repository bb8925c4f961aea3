//! The setting engine of a player's peer connections: where ICE gathers,
//! how soon it uses a pair, and the DTLS role of the answer.
//!
//! webrtc 0.21 has no IP or interface filter (they are a todo in its
//! `SettingEngine`): loopback-only gathering is done by binding the
//! connection's one UDP socket to 127.0.0.1 ([`udp_bind_addrs`]), which gives
//! exactly one host candidate. The rest of the policy is set here.

use std::sync::Arc;
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::peer_connection::transport::RTCDtlsRole;
use webrtc::peer_connection::crypto::RTCCryptoProvider;
use webrtc::peer_connection::{SettingEngine, SettingEngineBuilder};

/// The local UDP addresses a peer connection binds: its host candidates.
///
/// Loopback-only: one socket on 127.0.0.1. Otherwise the IPv4 and IPv6
/// wildcards, which 0.21 expands into one socket per interface address
/// (loopback and link-local skipped), as 0.17 gathered on every interface.
pub fn udp_bind_addrs(loopback_only: bool) -> Vec<&'static str> {
    if loopback_only {
        vec!["127.0.0.1:0"]
    } else {
        vec!["0.0.0.0:0", "[::]:0"]
    }
}

/// The settings every peer connection of the process is built with (cloned
/// per connection: 0.21 takes them by value).
pub fn setting_engine(loopback_only: bool, crypto_provider: Arc<dyn RTCCryptoProvider>) -> SettingEngine {
    let mut b = SettingEngineBuilder::new()
        .with_crypto_provider(crypto_provider)
        // A trickling peer's connectivity checks often overtake its
        // candidates (which travel through the signalling server): the pair
        // is then peer-reflexive, and by default webrtc-rs waits 1 s before
        // using one.
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        // Answer `a=setup:passive` (DTLS server; browsers answer active). As
        // DTLS client (on 0.17) our first ClientHello often reached the
        // streamer before its DTLS transport was listening and was resent
        // only after DTLS's 1 s timer: 50 players, first RTP p90 1019 ms as
        // client, 35 ms as server.
        .with_answering_dtls_role(RTCDtlsRole::Server);
    if loopback_only {
        b = b
            .with_include_loopback_candidate(true)
            .with_network_types(vec![NetworkType::Udp4])
            .with_multicast_dns_mode(MulticastDnsMode::Disabled);
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_binds_one_loopback_socket() {
        assert_eq!(udp_bind_addrs(true), vec!["127.0.0.1:0"]);
        let any = udp_bind_addrs(false);
        assert!(any.iter().all(|a| !a.starts_with("127.")), "{any:?}");
    }
}
