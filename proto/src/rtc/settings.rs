//! What a peer connection is built with besides its codecs: the setting
//! engine (ICE policy, DTLS role, timers), the interceptors and the
//! `RTCConfiguration` (ICE servers, certificate).

use std::sync::Arc;
use std::time::Duration;

use ::rtc::ice::mdns::MulticastDnsMode;
use ::rtc::ice::network_type::NetworkType;
use ::rtc::interceptor::{
    NackGeneratorBuilder, NackResponderBuilder, ReceiverReportBuilder, Registry, SenderReportBuilder, Slot,
    TwccReceiverBuilder,
};
use ::rtc::peer_connection::configuration::media_engine::MediaEngine;
use ::rtc::peer_connection::configuration::setting_engine::{SettingEngine, SettingEngineBuilder};
use ::rtc::peer_connection::configuration::{RTCConfiguration, RTCConfigurationBuilder, RTCIceTransportPolicy};
use ::rtc::peer_connection::transport::{RTCDtlsRole, RTCIceServer};
use ::rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpHeaderExtensionCapability, RtpCodecKind, TYPE_RTCP_FB_TRANSPORT_CC,
};
use serde_json::Value;

use super::crypto::ProcessCrypto;
use super::keyframe_requests::{KeyframeRequestsToApplication, KEYFRAME_REQUESTS_SLOT};
use super::repair_traffic::{CountRepairTraffic, RepairCounters, REPAIR_TRAFFIC_SLOT};
use super::{IcePolicy, Interceptors, PeerSettings, RtcError};

/// Sent packets a sender keeps per stream to answer NACKs: 1024, about 10 s
/// of 1 Mbit/s video and far more than a retransmission can wait for.
/// (webrtc 0.17's default was 8192: ~0.9 MB per stream, written out when the
/// sender started, most of the streamer's memory per player.)
pub const NACK_HISTORY: u16 = 1024;

/// How often a receiver sends transport-wide congestion-control feedback:
/// every 50 ms, as libwebrtc's receiver does for any stream above about
/// 220 kbit/s (its `RemoteEstimatorProxy` sizes the interval so feedback
/// takes 5 % of the received rate, clamped to 50–250 ms); webrtc-rs's default
/// is 100 ms. (Measured in `e2e/tests/feedback.rs`: on its own it did not
/// change how a libwebrtc sender's estimate ramped; the answer's RTX did.)
pub const TWCC_FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);

/// The setting engine of one peer connection.
pub fn setting_engine(settings: &PeerSettings, crypto: &ProcessCrypto) -> SettingEngine {
    let mut b = SettingEngineBuilder::new()
        .with_crypto_provider(crypto.provider.clone())
        // A trickling peer's connectivity checks often overtake its
        // candidates (which travel through the signalling server): the pair
        // is then peer-reflexive, and webrtc-rs by default waits before
        // using one. Browsers trickle, so without this every browser join
        // took a second on 0.17.
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO));
    if settings.ice.loopback_only {
        // With the UDP socket bound to 127.0.0.1 (see `bind_addresses`) the
        // only host candidate is 127.0.0.1: webrtc 0.21 has no IP filter.
        b = b
            .with_include_loopback_candidate(true)
            .with_network_types(vec![NetworkType::Udp4])
            .with_multicast_dns_mode(MulticastDnsMode::Disabled);
    }
    if settings.answer_as_dtls_server {
        b = b.with_answering_dtls_role(RTCDtlsRole::Server);
    }
    if let Some(interval) = settings.ice_check_interval {
        b = b.with_ice_connection_attempts(Some(interval), None);
    }
    b.build()
}

/// The local UDP addresses a peer connection binds: 127.0.0.1 only for
/// loopback-only ICE (one socket, one host candidate), else the IPv4 and
/// IPv6 wildcards, which webrtc 0.21 expands into one socket per interface
/// address (as 0.17 gathered on every interface).
pub fn bind_addresses(policy: IcePolicy) -> Vec<&'static str> {
    if policy.loopback_only {
        vec!["127.0.0.1:0"]
    } else {
        vec!["0.0.0.0:0", "[::]:0"]
    }
}

/// The interceptors of one peer connection, with their RTCP feedback
/// registered in `media`. Every set starts (at the wire) with
/// [`CountRepairTraffic`] into `repair`, and ends with
/// [`KeyframeRequestsToApplication`], so senders see PLI/FIR.
pub fn interceptors(
    kind: Interceptors,
    media: &mut MediaEngine,
    repair: Arc<RepairCounters>,
) -> Result<Registry, RtcError> {
    let reports = |r: Registry| {
        r.with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
            .with(Slot::SenderReport, SenderReportBuilder::new().build())
    };
    let registry = match kind {
        // webrtc-rs's defaults (NACK generator and responder, reports, TWCC
        // receiver), with the NACK history capped at NACK_HISTORY.
        Interceptors::Full => {
            register_nack_feedback(media);
            let r = Registry::new()
                .with(Slot::NackResponder, NackResponderBuilder::new().with_size(NACK_HISTORY).build())
                .with(Slot::NackGenerator, NackGeneratorBuilder::new().build());
            twcc_receiver(reports(r), media)?
        }
        Interceptors::Receiver => {
            register_nack_feedback(media);
            let r = reports(Registry::new().with(Slot::NackGenerator, NackGeneratorBuilder::new().build()));
            twcc_receiver(r, media)?
        }
        // A receiver that never asks for retransmissions (`mock-player --no-nack`).
        Interceptors::ReceiverWithoutNack => {
            media.register_feedback(RTCPFeedback { typ: "nack".into(), parameter: "pli".into() }, RtpCodecKind::Video);
            twcc_receiver(reports(Registry::new()), media)?
        }
        Interceptors::Forwarder => {
            register_nack_feedback(media);
            reports(
                Registry::new().with(Slot::NackResponder, NackResponderBuilder::new().with_size(NACK_HISTORY).build()),
            )
        }
        Interceptors::ReportsOnly => reports(Registry::new()),
    };
    Ok(registry
        .with(Slot::Custom(REPAIR_TRAFFIC_SLOT), CountRepairTraffic::new(repair))
        .with(Slot::Custom(KEYFRAME_REQUESTS_SLOT), KeyframeRequestsToApplication::default()))
}

/// The transport-wide congestion-control receiver, sending feedback every
/// [`TWCC_FEEDBACK_INTERVAL`], with its feedback and header extension
/// registered for audio and video (as webrtc-rs's
/// `configure_twcc_receiver_only` does, which offers no interval).
fn twcc_receiver(registry: Registry, media: &mut MediaEngine) -> Result<Registry, RtcError> {
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        media.register_feedback(RTCPFeedback { typ: TYPE_RTCP_FB_TRANSPORT_CC.into(), ..Default::default() }, kind);
        media.register_header_extension(
            RTCRtpHeaderExtensionCapability { uri: ::rtc::sdp::extmap::TRANSPORT_CC_URI.into() },
            kind,
            None,
        )?;
    }
    Ok(registry.with(Slot::TwccReceiver, TwccReceiverBuilder::new().with_interval(TWCC_FEEDBACK_INTERVAL).build()))
}

fn register_nack_feedback(media: &mut MediaEngine) {
    for parameter in ["", "pli"] {
        media.register_feedback(RTCPFeedback { typ: "nack".into(), parameter: parameter.into() }, RtpCodecKind::Video);
    }
}

/// An `RTCConfiguration` from the `peerConnectionOptions` of `config`
/// (`{"iceServers":[{"urls":[…]|"…","username":"…","credential":"…"}]}`)
/// and the process's certificate. With a loopback-only policy only ICE
/// servers on 127.0.0.1 are kept. Unknown keys are ignored; a malformed
/// `iceServers` is an error.
pub fn rtc_configuration(
    options: &Value,
    policy: IcePolicy,
    crypto: &ProcessCrypto,
) -> Result<RTCConfiguration, RtcError> {
    rtc_configuration_with(options, policy, crypto, false)
}

/// [`rtc_configuration`], with `iceTransportPolicy: "relay"` when
/// `relay_only` (candidates through TURN servers only).
pub fn rtc_configuration_with(
    options: &Value,
    policy: IcePolicy,
    crypto: &ProcessCrypto,
    relay_only: bool,
) -> Result<RTCConfiguration, RtcError> {
    let mut builder = RTCConfigurationBuilder::new()
        .with_certificates(vec![crypto.certificate.clone()])
        .with_ice_servers(ice_servers(options, policy)?);
    if relay_only {
        builder = builder.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
    }
    Ok(builder.build())
}

/// The ICE servers of `peerConnectionOptions`, as
/// [`crate::ice_servers::ice_servers`] reads them; when loopback-only, only
/// the URLs on 127.0.0.1 (a TURN server the tests start), nothing that
/// would reach another host.
pub fn ice_servers(options: &Value, policy: IcePolicy) -> Result<Vec<RTCIceServer>, RtcError> {
    let servers = crate::ice_servers::ice_servers(options).map_err(|e| RtcError::Options(e.to_string()))?;
    Ok(servers
        .into_iter()
        .map(|s| {
            let urls = match policy.loopback_only {
                true => s.urls.into_iter().filter(|u| url_is_loopback(u)).collect(),
                false => s.urls,
            };
            RTCIceServer { urls, username: s.username, credential: s.credential }
        })
        .filter(|s| !s.urls.is_empty())
        .collect())
}

/// Whether a `stun:`/`turn:` URL's host is 127.0.0.1.
fn url_is_loopback(url: &str) -> bool {
    let rest = url.split_once(':').map_or("", |(_, r)| r).trim_start_matches("//");
    let host = rest.split(['?', '/']).next().unwrap_or_default();
    host.rsplit_once(':').map_or(host, |(h, _)| h) == "127.0.0.1"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_are_read_unless_loopback() {
        let opts = serde_json::json!({"iceServers":[
            {"urls":["stun:stun.example:3478"]},
            {"urls":"turn:turn.example:3478","username":"u","credential":"p"}
        ], "other": 1});
        let s = ice_servers(&opts, IcePolicy::ANY).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].urls, vec!["turn:turn.example:3478".to_string()]);
        assert_eq!(s[1].credential, "p");
        assert!(ice_servers(&opts, IcePolicy::LOOPBACK).unwrap().is_empty());
        // Loopback-only keeps a TURN server on 127.0.0.1 (the tests' coturn).
        let local = serde_json::json!({"iceServers":[
            {"urls":["turn:127.0.0.1:3478?transport=udp","turn:turn.example:3478"],"username":"u","credential":"p"}
        ]});
        let s = ice_servers(&local, IcePolicy::LOOPBACK).unwrap();
        assert_eq!(s[0].urls, vec!["turn:127.0.0.1:3478?transport=udp".to_string()]);
        assert!(ice_servers(&serde_json::json!({}), IcePolicy::ANY).unwrap().is_empty());
        assert!(ice_servers(&serde_json::json!({"iceServers":5}), IcePolicy::ANY).is_err());
    }

    #[test]
    fn peer_connections_share_the_process_certificate() {
        let crypto = super::super::process_crypto().unwrap();
        let a = rtc_configuration(&serde_json::json!({}), IcePolicy::LOOPBACK, crypto).unwrap();
        let b =
            rtc_configuration(&serde_json::json!({}), IcePolicy::ANY, super::super::process_crypto().unwrap()).unwrap();
        assert_eq!(a.certificates().len(), 1);
        assert!(a.certificates()[0] == b.certificates()[0]);
    }

    #[test]
    fn interceptor_sets_build() {
        for i in [
            Interceptors::Full,
            Interceptors::Receiver,
            Interceptors::ReceiverWithoutNack,
            Interceptors::Forwarder,
            Interceptors::ReportsOnly,
        ] {
            let mut media = super::super::media_engine(super::super::VideoCodecs::ALL).unwrap();
            let slots = interceptors(i, &mut media, Arc::default()).unwrap().slots();
            assert_eq!(slots.first().map(|(s, _)| s.slot()), Some(REPAIR_TRAFFIC_SLOT));
            assert!(slots.iter().any(|(s, _)| *s == Slot::ReceiverReport), "{i:?}: {slots:?}");
            assert_eq!(slots.last().map(|(s, _)| s.slot()), Some(KEYFRAME_REQUESTS_SLOT));
        }
    }
}
