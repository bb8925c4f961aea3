//! WebRTC settings shared by every WebRTC peer of the toolkit (mock-streamer,
//! mock-player, sfu-stub), for `webrtc = "=0.17.2"` (the classic API).
//!
//! - [`build_api`]: an `API` with our codecs, an interceptor set
//!   ([`Interceptors`]) and an ICE policy ([`IcePolicy`]): loopback-only
//!   gathers host candidates on 127.0.0.1 over UDP4 only, with mDNS off.
//! - [`rtc_configuration`]: an `RTCConfiguration` from the `peerConnectionOptions`
//!   object of the server's `config` message, with the process's DTLS
//!   certificate ([`process_certificate`]).
//! - [`to_rtc_candidate`] / [`from_rtc_candidate`]: `proto::IceCandidate` ⇄
//!   `RTCIceCandidateInit`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use webrtc::api::interceptor_registry::{configure_rtcp_reports, configure_twcc_receiver_only};
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::nack::responder::Responder;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::certificate::RTCCertificate;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RTPCodecType,
};
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::sdp::extmap::{SDES_MID_URI, SDES_REPAIR_RTP_STREAM_ID_URI, SDES_RTP_STREAM_ID_URI};
use webrtc::util::vnet::net::Net;

use crate::message::IceCandidate;

/// H.264 payload type we register.
pub const H264_PAYLOAD_TYPE: u8 = 102;
/// VP8 payload type we register.
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// Opus payload type we register.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Constrained baseline, level 3.1, non-interleaved packetization: what
/// browsers decode everywhere.
pub const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// Sent packets a sender keeps per stream to answer NACKs: 2^10 = 1024, about
/// 10 s of 1 Mbit/s video and far more than a retransmission can wait for.
pub const NACK_HISTORY_LOG2: u8 = 10;

/// Where ICE may gather candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcePolicy {
    /// Host candidates on 127.0.0.1 only, UDP4 only, mDNS off, no STUN/TURN
    /// (ICE servers from `config` are ignored). For tests, demos and
    /// benchmarks on one machine.
    pub loopback_only: bool,
}

impl IcePolicy {
    pub const LOOPBACK: IcePolicy = IcePolicy { loopback_only: true };
    pub const ANY: IcePolicy = IcePolicy { loopback_only: false };
}

/// Which RTP/RTCP interceptors a peer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interceptors {
    /// webrtc-rs defaults (NACK generator + responder, sender/receiver
    /// reports, TWCC receiver), except that the NACK responder keeps 1024
    /// sent packets per stream ([`NACK_HISTORY_LOG2`]). For senders.
    Full,
    /// Receiver/sender reports and a NACK generator (no responder buffer).
    /// For receive-only peers: about 0.4 MB per peer instead of ~3 MB.
    Receiver,
    /// Receiver/sender reports only.
    ReportsOnly,
}

/// Errors building WebRTC settings.
#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::Error),
    #[error("peerConnectionOptions: {0}")]
    Options(String),
    #[error("DTLS certificate: {0}")]
    Certificate(#[from] webrtc::dtls::Error),
}

/// How long the process certificate is used before a new one is made.
const CERTIFICATE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// The DTLS certificate every peer connection of this process presents
/// (ECDSA P-256, self-signed, as browsers expect). Without one in the
/// `RTCConfiguration`, webrtc-rs generates a key pair and signs a new
/// certificate for each peer connection: with 100 players joining at once
/// that was ~10 % of the streamer's CPU in the join burst. libwebrtc likewise
/// shares one certificate per peer-connection factory. Renewed when it nears
/// its expiry (webrtc-rs refuses expired certificates).
pub fn process_certificate() -> Result<RTCCertificate, RtcError> {
    static CERT: Mutex<Option<(RTCCertificate, SystemTime)>> = Mutex::new(None);
    let mut cert = CERT.lock().unwrap_or_else(|e| e.into_inner());
    let now = SystemTime::now();
    if let Some((c, renew_at)) = cert.as_ref() {
        if now < *renew_at {
            return Ok(c.clone());
        }
    }
    let dtls = webrtc::dtls::crypto::Certificate::generate_self_signed(vec!["webrtc".to_owned()])?;
    // rcgen's certificate is valid far longer; `expires` is what webrtc-rs checks.
    let c = RTCCertificate::from_existing(dtls, now + CERTIFICATE_LIFETIME + Duration::from_secs(24 * 3600));
    *cert = Some((c.clone(), now + CERTIFICATE_LIFETIME));
    Ok(c)
}

fn video_feedback() -> Vec<RTCPFeedback> {
    [("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback { typ: typ.into(), parameter: parameter.into() })
        .collect()
}

/// A media engine with H.264 (constrained baseline, packetization-mode=1,
/// profile-level-id=42e01f), VP8 and Opus, and the MID/RID header
/// extensions simulcast needs.
pub fn media_engine() -> Result<MediaEngine, RtcError> {
    let mut m = MediaEngine::default();
    let video = [(MIME_TYPE_H264, H264_PAYLOAD_TYPE, H264_FMTP), (MIME_TYPE_VP8, VP8_PAYLOAD_TYPE, "")];
    for (mime, pt, fmtp) in video {
        m.register_codec(
            RTCRtpCodecParameters {
                capability: RTCRtpCodecCapability {
                    mime_type: mime.into(),
                    clock_rate: 90000,
                    channels: 0,
                    sdp_fmtp_line: fmtp.into(),
                    rtcp_feedback: video_feedback(),
                },
                payload_type: pt,
                ..Default::default()
            },
            RTPCodecType::Video,
        )?;
    }
    // MID and RID header extensions: needed to send and receive simulcast
    // (each encoding is told apart by its rid).
    for uri in [SDES_MID_URI, SDES_RTP_STREAM_ID_URI, SDES_REPAIR_RTP_STREAM_ID_URI] {
        m.register_header_extension(
            RTCRtpHeaderExtensionCapability { uri: uri.to_owned() },
            RTPCodecType::Video,
            None,
        )?;
    }
    m.register_codec(
        RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: MIME_TYPE_OPUS.into(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                rtcp_feedback: vec![],
            },
            payload_type: OPUS_PAYLOAD_TYPE,
            ..Default::default()
        },
        RTPCodecType::Audio,
    )?;
    Ok(m)
}

/// A setting engine for the ICE policy.
pub fn setting_engine(policy: IcePolicy) -> SettingEngine {
    let mut s = SettingEngine::default();
    // A trickling peer's connectivity checks often overtake its candidates
    // (which travel through the signalling server): the pair is then
    // peer-reflexive, and webrtc-rs by default waits 1 s before using one.
    // Browsers trickle, so without this every browser join took a second.
    s.set_prflx_acceptance_min_wait(Some(std::time::Duration::ZERO));
    if policy.loopback_only {
        s.set_include_loopback_candidate(true);
        s.set_ip_filter(Box::new(|ip: IpAddr| ip == IpAddr::V4(Ipv4Addr::LOCALHOST)));
        s.set_network_types(vec![NetworkType::Udp4]);
        s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        // Without a `Net`, every ICE agent (one per peer connection) lists
        // the machine's interfaces over netlink when it is created. Only
        // 127.0.0.1 is used here, so one list per API is enough.
        s.set_vnet(Some(Arc::new(Net::new(None))));
    }
    s
}

/// Build the `API` every peer connection of a peer is created from. Build it
/// once per process (or per role) and share it.
pub fn build_api(policy: IcePolicy, interceptors: Interceptors) -> Result<API, RtcError> {
    let mut media = media_engine()?;
    let mut registry = Registry::new();
    registry = match interceptors {
        // `register_default_interceptors`, but with a smaller NACK history:
        // its responder keeps 8192 packets per stream (~0.9 MB, written out
        // when the sender starts), which was most of the streamer's memory
        // per player and, as page faults, a good part of its CPU when 100
        // players join at once.
        Interceptors::Full => {
            registry = nack_and_reports(registry, &mut media, Some(NACK_HISTORY_LOG2));
            configure_twcc_receiver_only(registry, &mut media)?
        }
        // `configure_nack` adds the responder too: only the generator here.
        Interceptors::Receiver => nack_and_reports(registry, &mut media, None),
        Interceptors::ReportsOnly => configure_rtcp_reports(registry),
    };
    Ok(APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(setting_engine(policy))
        .build())
}

/// NACK feedback for video, a NACK responder keeping 2^`responder_log2`
/// sent packets per stream (senders only), a NACK generator, and
/// sender/receiver reports, in `register_default_interceptors`' order.
fn nack_and_reports(mut registry: Registry, media: &mut MediaEngine, responder_log2: Option<u8>) -> Registry {
    for parameter in ["", "pli"] {
        media.register_feedback(RTCPFeedback { typ: "nack".into(), parameter: parameter.into() }, RTPCodecType::Video);
    }
    if let Some(log2) = responder_log2 {
        registry.add(Box::new(Responder::builder().with_log2_size(log2)));
    }
    registry.add(Box::new(webrtc::interceptor::nack::generator::Generator::builder()));
    configure_rtcp_reports(registry)
}

/// An `RTCConfiguration` from the `peerConnectionOptions` of `config`
/// (`{"iceServers":[{"urls":[…]|"…","username":"…","credential":"…"}]}`).
/// With a loopback-only policy the ICE servers are ignored; otherwise they are
/// read by [`crate::ice_servers::ice_servers`]. The certificate is the
/// process's shared one ([`process_certificate`]).
pub fn rtc_configuration(options: &Value, policy: IcePolicy) -> Result<RTCConfiguration, RtcError> {
    let mut config = RTCConfiguration { certificates: vec![process_certificate()?], ..Default::default() };
    if policy.loopback_only {
        return Ok(config);
    }
    let servers = crate::ice_servers::ice_servers(options).map_err(|e| RtcError::Options(e.to_string()))?;
    config.ice_servers.extend(servers.into_iter().map(|s| RTCIceServer {
        urls: s.urls,
        username: s.username,
        credential: s.credential,
    }));
    Ok(config)
}

/// Our signalling candidate → webrtc's.
pub fn to_rtc_candidate(c: &IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate.clone(),
        sdp_mid: c.sdp_mid.clone(),
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment.clone(),
    }
}

/// webrtc's candidate → our signalling candidate. Browsers need `sdpMid` and
/// `sdpMLineIndex`: fill them with `"0"` / `0` (the bundled first m-line)
/// when webrtc left them out.
pub fn from_rtc_candidate(c: RTCIceCandidateInit) -> IceCandidate {
    IceCandidate {
        candidate: c.candidate,
        sdp_mid: Some(c.sdp_mid.unwrap_or_else(|| "0".into())),
        sdp_mline_index: Some(c.sdp_mline_index.unwrap_or(0)),
        username_fragment: c.username_fragment,
    }
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
        let c = rtc_configuration(&opts, IcePolicy::ANY).unwrap();
        assert_eq!(c.ice_servers.len(), 2);
        assert_eq!(c.ice_servers[1].urls, vec!["turn:turn.example:3478".to_string()]);
        assert_eq!(c.ice_servers[1].credential, "p");
        let c = rtc_configuration(&opts, IcePolicy::LOOPBACK).unwrap();
        assert!(c.ice_servers.is_empty());
        assert!(rtc_configuration(&serde_json::json!({}), IcePolicy::ANY).unwrap().ice_servers.is_empty());
        assert!(rtc_configuration(&serde_json::json!({"iceServers":5}), IcePolicy::ANY).is_err());
    }

    #[test]
    fn candidates_convert_both_ways() {
        let c = IceCandidate {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        };
        assert_eq!(from_rtc_candidate(to_rtc_candidate(&c)), c);
    }

    #[test]
    fn peer_connections_share_the_process_certificate() {
        let a = rtc_configuration(&serde_json::json!({}), IcePolicy::LOOPBACK).unwrap();
        let b = rtc_configuration(&serde_json::json!({}), IcePolicy::ANY).unwrap();
        assert_eq!(a.certificates.len(), 1);
        let fingerprint = |c: &RTCConfiguration| c.certificates[0].get_fingerprints()[0].value.clone();
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn apis_build() {
        for i in [Interceptors::Full, Interceptors::Receiver, Interceptors::ReportsOnly] {
            build_api(IcePolicy::LOOPBACK, i).unwrap();
        }
    }
}

/// What local ICE gathering reports to [`on_local_candidates`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalCandidate {
    /// A candidate, ready for an `iceCandidate` message.
    Candidate(IceCandidate),
    /// Gathering finished.
    Done,
}

/// The connection-state changes of `pc`, in order.
pub fn state_changes(
    pc: &webrtc::peer_connection::RTCPeerConnection,
) -> tokio::sync::mpsc::UnboundedReceiver<webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    pc.on_peer_connection_state_change(Box::new(move |s| {
        let _ = tx.send(s);
        Box::pin(async {})
    }));
    rx
}

/// Set our offer or answer as `pc`'s local description and return the SDP to
/// send: the local description as it now stands (candidates gathered so far
/// included; the rest trickle).
pub async fn set_local(
    pc: &webrtc::peer_connection::RTCPeerConnection,
    description: webrtc::peer_connection::sdp::session_description::RTCSessionDescription,
) -> Result<String, webrtc::Error> {
    let fallback = description.sdp.clone();
    pc.set_local_description(description).await?;
    Ok(pc.local_description().await.map_or(fallback, |d| d.sdp))
}

/// Call `on` for each local ICE candidate of `pc` (converted for signalling)
/// and once when gathering is done. Every peer of the toolkit trickles its
/// candidates this way.
pub fn on_local_candidates(
    pc: &webrtc::peer_connection::RTCPeerConnection,
    on: impl Fn(LocalCandidate) + Send + Sync + 'static,
) {
    let on = std::sync::Arc::new(on);
    pc.on_ice_candidate(Box::new(move |c| {
        let on = on.clone();
        Box::pin(async move {
            match c.map(|c| c.to_json()) {
                None => on(LocalCandidate::Done),
                Some(Ok(init)) => on(LocalCandidate::Candidate(from_rtc_candidate(init))),
                Some(Err(e)) => tracing::warn!(error = %e, "local ICE candidate not serialisable"),
            }
        })
    }));
}
