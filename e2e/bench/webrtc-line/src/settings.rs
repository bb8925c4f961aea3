//! The webrtc 0.21 settings of a receive-only player, the same choices
//! `proto::rtc` and `mock-player/src/rtc.rs` make on 0.17.2:
//! H.264/VP8/Opus with the toolkit's payload types and feedback, one DTLS
//! certificate (and one crypto provider) per process, loopback-only ICE
//! (a UDP socket on 127.0.0.1, loopback candidates allowed, UDP4, mDNS off,
//! no ICE servers, peer-reflexive pairs used at once), the answer as DTLS
//! server, and RTCP reports (optionally a NACK generator) as interceptors.
//!
//! 0.21 has no shared `API` object: each peer connection is built from its
//! own media engine, setting engine and interceptor registry.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rtc::crypto::{RTCCryptoProvider, SignatureScheme};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::{NackGeneratorBuilder, ReceiverReportBuilder, Registry, SenderReportBuilder, Slot};
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::peer_connection::configuration::setting_engine::{SettingEngine, SettingEngineBuilder};
use rtc::peer_connection::configuration::{RTCConfiguration, RTCConfigurationBuilder};
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};

/// Payload types and H.264 format of `proto::rtc` (kept equal so both players
/// answer the streamer's offer with the same codecs).
const H264_PAYLOAD_TYPE: u8 = 102;
const VP8_PAYLOAD_TYPE: u8 = 96;
const OPUS_PAYLOAD_TYPE: u8 = 111;
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// Errors building the settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("webrtc: {0}")]
    WebRtc(#[from] rtc::shared::error::Error),
    #[error("crypto: {0}")]
    Crypto(#[from] rtc::crypto::CryptoError),
    #[error("certificate parameters: {0}")]
    Params(String),
}

/// What a player's peer connections are built with.
#[derive(Debug, Clone, Copy)]
pub struct PlayerRtcOptions {
    /// Add a NACK generator after the RTCP reports.
    pub nack_generator: bool,
    /// ICE connectivity-check interval (`None`: the library's 200 ms).
    pub ice_check_interval: Option<Duration>,
}

/// The process-wide crypto provider and DTLS certificate.
pub struct ProcessCrypto {
    pub provider: Arc<dyn RTCCryptoProvider>,
    pub certificate: RTCCertificate,
}

/// One crypto provider and one ECDSA P-256 certificate for every peer
/// connection of the process. Without them each connection resolves its own
/// provider and generates a key pair and certificate (on 0.17 that was ~10 %
/// of a streamer's CPU in a 100-player burst).
pub fn process_crypto() -> Result<&'static ProcessCrypto, SettingsError> {
    static CRYPTO: OnceLock<ProcessCrypto> = OnceLock::new();
    if let Some(c) = CRYPTO.get() {
        return Ok(c);
    }
    let provider = rtc::crypto::default_provider()?;
    let params = CertificateParams::new(vec!["webrtc".to_owned()]).map_err(|e| SettingsError::Params(e.to_string()))?;
    let certificate = RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params)?;
    Ok(CRYPTO.get_or_init(|| ProcessCrypto { provider, certificate }))
}

fn video_feedback() -> Vec<RTCPFeedback> {
    [("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback { typ: typ.into(), parameter: parameter.into() })
        .collect()
}

/// H.264 (constrained baseline), VP8 and Opus, as `proto::rtc::media_engine`.
pub fn media_engine() -> Result<MediaEngine, SettingsError> {
    let mut m = MediaEngine::default();
    let video = [(MIME_TYPE_H264, H264_PAYLOAD_TYPE, H264_FMTP), (MIME_TYPE_VP8, VP8_PAYLOAD_TYPE, "")];
    for (mime, payload_type, fmtp) in video {
        let rtp_codec = RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: fmtp.into(),
            rtcp_feedback: video_feedback(),
        };
        m.register_codec(RTCRtpCodecParameters { rtp_codec, payload_type }, RtpCodecKind::Video)?;
    }
    let opus = RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.into(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    };
    m.register_codec(RTCRtpCodecParameters { rtp_codec: opus, payload_type: OPUS_PAYLOAD_TYPE }, RtpCodecKind::Audio)?;
    Ok(m)
}

/// Loopback-only ICE, the answer as DTLS server, the process's crypto provider.
pub fn setting_engine(options: PlayerRtcOptions, crypto: &ProcessCrypto) -> SettingEngine {
    let mut b = SettingEngineBuilder::new()
        .with_crypto_provider(crypto.provider.clone())
        // Trickled candidates are often overtaken by the streamer's checks:
        // use peer-reflexive pairs at once (as proto::rtc does on 0.17).
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        .with_include_loopback_candidate(true)
        .with_network_types(vec![NetworkType::Udp4])
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        // As mock-player: DTLS server, so our first ClientHello cannot reach
        // the streamer before its DTLS transport listens.
        .with_answering_dtls_role(RTCDtlsRole::Server);
    if let Some(interval) = options.ice_check_interval {
        b = b.with_ice_connection_attempts(Some(interval), None);
    }
    b.build()
}

/// RTCP sender/receiver reports, and a NACK generator if asked for.
pub fn interceptors(options: PlayerRtcOptions) -> Registry {
    let r = Registry::new()
        .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        .with(Slot::SenderReport, SenderReportBuilder::new().build());
    if options.nack_generator {
        r.with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
    } else {
        r
    }
}

/// No ICE servers (loopback only), the process certificate.
pub fn configuration(crypto: &ProcessCrypto) -> RTCConfiguration {
    RTCConfigurationBuilder::new().with_certificates(vec![crypto.certificate.clone()]).build()
}
