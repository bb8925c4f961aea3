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
//! - the feedback a browser's receiver sends ([`Interceptors::Receiver`]):
//!   receiver reports, NACKs and transport-wide congestion-control feedback
//!   (a libwebrtc sender, Unreal's included, sets its bitrate and resolution
//!   from it; without it a sender never ramps up), and PLIs
//!   (`keyframe_requests`); the answer advertises exactly these (`nack`,
//!   `nack pli`, `transport-cc`), no REMB or FIR, which the player never sends;
//! - with `--no-nack`, no NACK generator and no `nack` in the answer;
//! - its UDP sockets through [`crate::udp_path`] when it is impaired
//!   (`--impair`) or has ICE servers (to tell why a TURN server refused);
//! - ICE over relays only with `--ice-transport-policy relay`;
//! - the answer's video codecs in the order of Epic's frontend by default
//!   (H.264 first, then the rest in Chromium's order), or `--codec-preference`'s
//!   ([`answer_codec_order`]), each with its retransmission (`rtx`) format
//!   when the offer pairs it with one, as a browser answers.

use std::sync::Arc;

use proto::impairment::Impairment;
use proto::rtc::repair_traffic::RepairCounters;
use proto::rtc::{settings, IcePolicy, Interceptors, PeerSettings, ProcessCrypto};
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_RTX;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use serde_json::Value;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, SettingEngine,
};

pub use proto::rtc::{candidate_is_loopback, filter_sdp_candidates, from_rtc_candidate, to_rtc_candidate};

use crate::error::PlayerError;
use crate::turn_allocations::TurnAllocations;
use crate::udp_path::PlayerRuntime;

/// How a player's peer connections are built (see the module doc).
fn player_settings(ice: IcePolicy, interceptors: Interceptors) -> PeerSettings {
    PeerSettings { answer_as_dtls_server: true, ..PeerSettings::answerer(ice, interceptors) }
}

/// What a player's connections do beyond the ICE policy and codec order.
#[derive(Debug, Clone, Copy)]
pub struct PathOptions {
    /// Ask for retransmissions (RTCP NACK).
    pub nack: bool,
    pub impairment: Option<Impairment>,
    /// `iceTransportPolicy: "relay"`.
    pub relay_only: bool,
}

impl Default for PathOptions {
    fn default() -> Self {
        PathOptions { nack: true, impairment: None, relay_only: false }
    }
}

/// What every player of a process shares to build its peer connections.
pub struct RtcContext {
    pub loopback_only: bool,
    /// The answer's video codecs, most preferred first.
    pub codec_order: Vec<RTCRtpCodecParameters>,
    pub path: PathOptions,
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
    /// Players answering with Epic's frontend's default codec order.
    pub fn new(loopback_only: bool) -> Result<Arc<RtcContext>, PlayerError> {
        Self::with_codec_preference(loopback_only, &[])
    }

    /// Players answering with the video codecs named in `preference` first
    /// (case-insensitive MIME subtypes: `h264`, `vp8`, `vp9`, `av1`); empty: Epic's
    /// frontend's default. An unknown name is an error.
    pub fn with_codec_preference(loopback_only: bool, preference: &[String]) -> Result<Arc<RtcContext>, PlayerError> {
        Self::with_path(loopback_only, preference, PathOptions::default())
    }

    /// The context of the players of `cfg` that get `impairment`.
    pub fn for_config(
        cfg: &crate::PlayerConfig,
        impairment: Option<Impairment>,
    ) -> Result<Arc<RtcContext>, PlayerError> {
        let path = PathOptions { nack: cfg.nack, impairment, relay_only: cfg.relay_only };
        Self::with_path(cfg.ice_loopback_only, &cfg.codec_preference, path)
    }

    /// Players with `path`'s options.
    pub fn with_path(
        loopback_only: bool,
        preference: &[String],
        path: PathOptions,
    ) -> Result<Arc<RtcContext>, PlayerError> {
        let rtc = |e: proto::rtc::RtcError| PlayerError::Rtc(e.to_string());
        let codec_order = answer_codec_order(preference)?;
        let crypto = proto::rtc::process_crypto().map_err(rtc)?;
        // No feedback of their own: the interceptors register what they send.
        let mut media =
            proto::rtc::media_engine_with_feedback(proto::rtc::VideoCodecs::ALL, Vec::new()).map_err(rtc)?;
        register_rtx(&mut media)?;
        let ice = Self::policy(loopback_only);
        let settings = settings::setting_engine(&player_settings(ice, path.interceptors()), crypto);
        Ok(Arc::new(RtcContext { loopback_only, codec_order, path, crypto, media, settings }))
    }

    fn policy(loopback_only: bool) -> IcePolicy {
        if loopback_only {
            IcePolicy::LOOPBACK
        } else {
            IcePolicy::ANY
        }
    }

    /// A new peer connection whose events go to `handler`, counting its
    /// repair traffic into `repair` and its TURN refusals into `turn`. The
    /// handler must not own the connection (or its channels): the
    /// connection owns it. Malformed ICE servers in `peer_connection_options`
    /// are ignored with a warning: the player can still join on host
    /// candidates.
    pub async fn new_peer_connection(
        &self,
        peer_connection_options: &Value,
        handler: Arc<dyn PeerConnectionEventHandler>,
        repair: Arc<RepairCounters>,
        turn: Arc<std::sync::Mutex<TurnAllocations>>,
    ) -> Result<Arc<dyn PeerConnection>, PlayerError> {
        let rtc = |e: proto::rtc::RtcError| PlayerError::Rtc(e.to_string());
        let policy = Self::policy(self.loopback_only);
        let relay = self.path.relay_only;
        let configuration = settings::rtc_configuration_with(peer_connection_options, policy, self.crypto, relay)
            .or_else(|e| {
                tracing::warn!(error = %e, "ignoring the server's peerConnectionOptions");
                settings::rtc_configuration_with(&Value::Null, policy, self.crypto, relay)
            })
            .map_err(rtc)?;
        let has_ice_servers = !configuration.ice_servers().is_empty();
        let mut media = self.media.clone();
        let registry = settings::interceptors(self.path.interceptors(), &mut media, repair).map_err(rtc)?;
        let mut builder = PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(media)
            .with_setting_engine(self.settings.clone())
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(settings::bind_addresses(policy));
        if self.path.impairment.is_some() || has_ice_servers {
            builder = builder.with_runtime(Arc::new(PlayerRuntime::new(self.path.impairment, turn)));
        }
        Ok(Arc::new(builder.build().await?))
    }

    /// Whether a remote candidate may be used under the ICE policy.
    pub fn accept_remote_candidate(&self, candidate: &str) -> bool {
        !self.loopback_only || candidate_is_loopback(candidate)
    }
}

impl PathOptions {
    fn interceptors(&self) -> Interceptors {
        match self.nack {
            true => Interceptors::Receiver,
            false => Interceptors::ReceiverWithoutNack,
        }
    }
}

/// Chromium's order of the video codecs it receives (`RTCRtpReceiver.getCapabilities`),
/// as far as the player has them.
const BROWSER_ORDER: [&str; 4] = ["vp8", "vp9", "h264", "av1"];

/// The answer's video codecs: those named in `preference` first, in its
/// order, then the rest in Chromium's order. With no preference, H.264 first,
/// as Epic's frontend does by default (its `PreferredCodec` is the browser's
/// first H.264, and `setCodecPreferences` puts it before the browser's own
/// list). An answer that kept the offer's order would negotiate what the
/// streamer lists first (VP8 from a browser sender), not what a browser
/// viewer gets.
pub fn answer_codec_order(preference: &[String]) -> Result<Vec<RTCRtpCodecParameters>, PlayerError> {
    let name = |c: &RTCRtpCodecParameters| {
        c.rtp_codec.mime_type.split_once('/').map_or(String::new(), |(_, sub)| sub.to_ascii_lowercase())
    };
    let ours = proto::rtc::video_codecs();
    let default = ["h264".to_string()];
    let preference = if preference.is_empty() { &default[..] } else { preference };
    let mut order: Vec<RTCRtpCodecParameters> = Vec::new();
    for wanted in preference {
        let wanted = wanted.trim().to_ascii_lowercase();
        let Some(codec) = ours.iter().find(|c| name(c) == wanted) else {
            let known: Vec<String> = ours.iter().map(name).collect();
            return Err(PlayerError::Usage(format!(
                "--codec-preference: unknown codec {wanted:?} (the player receives {})",
                known.join(", ")
            )));
        };
        if !order.iter().any(|c| name(c) == wanted) {
            order.push(codec.clone());
        }
    }
    for browser in BROWSER_ORDER {
        if let Some(codec) = ours.iter().find(|c| name(c) == browser && !order.iter().any(|o| name(o) == browser)) {
            order.push(codec.clone());
        }
    }
    Ok(order)
}

/// `order` with each codec given the payload type and format parameters the
/// offer uses for it (its first matching entry), and codecs the offer lacks
/// left out. The answer must use the offer's payload types, and webrtc-rs's
/// receiver accepts only the payload types of the preferences it was given:
/// preferences with our own numbers (H.264 is 102 here, 108 in Chromium's
/// offers) left the receiver dropping every packet.
pub fn in_offer_terms(order: &[RTCRtpCodecParameters], offer_sdp: &str) -> Vec<RTCRtpCodecParameters> {
    let offered = offered_video_codecs(offer_sdp);
    let mut codecs = Vec::new();
    for ours in order {
        let Some((pt, fmtp)) =
            offered.iter().find(|(_, name, fmtp)| same_format(ours, name, fmtp)).map(|(pt, _, f)| (*pt, f))
        else {
            continue;
        };
        let mut codec = ours.clone();
        codec.payload_type = pt;
        codec.rtp_codec.sdp_fmtp_line = fmtp.clone();
        codecs.push(codec);
        // Its retransmission format, when the offer has one (a browser's
        // does; our own streamer's and sfu-stub's do not).
        let apt = pt.to_string();
        if let Some((rtx_pt, ..)) =
            offered.iter().find(|(_, name, fmtp)| name.eq_ignore_ascii_case("rtx") && fmtp_param(fmtp, "apt") == apt)
        {
            codecs.push(RTCRtpCodecParameters { rtp_codec: rtx_codec(pt), payload_type: *rtx_pt });
        }
    }
    codecs
}

/// The value of `key` in an fmtp line (`a=b;c=d`), lowercased; empty when absent.
fn fmtp_param(fmtp: &str, key: &str) -> String {
    fmtp.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Retransmissions (RTX, RFC 4588) received as a browser receives them: one
/// `video/rtx` format per video codec. A libwebrtc sender resends lost
/// packets and sends its bandwidth probes on the RTX stream when the answer
/// has one; without it, its probes were padding on the media stream and, when
/// a probe went unanswered, its estimate for the player only crept up
/// additively where a browser's jumped (`e2e/tests/feedback.rs`).
fn register_rtx(media: &mut MediaEngine) -> Result<(), PlayerError> {
    for codec in proto::rtc::video_codecs() {
        let rtx = RTCRtpCodecParameters {
            rtp_codec: rtx_codec(codec.payload_type),
            payload_type: codec.payload_type.wrapping_add(1),
        };
        media.register_codec(rtx, RtpCodecKind::Video).map_err(|e| PlayerError::Rtc(e.to_string()))?;
    }
    Ok(())
}

fn rtx_codec(apt: u8) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_RTX.into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!("apt={apt}"),
        rtcp_feedback: Vec::new(),
    }
}

/// The first video section's codecs: (payload type, name, fmtp), in order.
fn offered_video_codecs(sdp: &str) -> Vec<(u8, String, String)> {
    let mut codecs: Vec<(u8, String, String)> = Vec::new();
    let mut in_video = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            if in_video {
                break;
            }
            in_video = m.starts_with("video ");
        } else if !in_video {
            continue;
        } else if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let mut parts = rest.splitn(2, ' ');
            let (Some(pt), Some(name)) = (parts.next().and_then(|p| p.parse().ok()), parts.next()) else { continue };
            let name = name.split('/').next().unwrap_or_default().to_string();
            codecs.push((pt, name, String::new()));
        } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
            let mut parts = rest.splitn(2, ' ');
            let (Some(pt), Some(fmtp)) = (parts.next().and_then(|p| p.parse::<u8>().ok()), parts.next()) else {
                continue;
            };
            if let Some(c) = codecs.iter_mut().find(|c| c.0 == pt) {
                c.2 = fmtp.to_string();
            }
        }
    }
    codecs
}

/// Whether the offer's `name`/`fmtp` is our codec: the same name, and for
/// H.264 the same packetization mode and profile (profile-level-id's first
/// two bytes; the level may differ).
fn same_format(ours: &RTCRtpCodecParameters, name: &str, fmtp: &str) -> bool {
    let our_name = ours.rtp_codec.mime_type.split_once('/').map_or("", |(_, sub)| sub);
    if !our_name.eq_ignore_ascii_case(name) {
        return false;
    }
    if !name.eq_ignore_ascii_case("h264") {
        return true;
    }
    let ours = &ours.rtp_codec.sdp_fmtp_line;
    let mode = |f: &str| {
        let m = fmtp_param(f, "packetization-mode");
        if m.is_empty() {
            "0".to_string()
        } else {
            m
        }
    };
    let profile = |f: &str| fmtp_param(f, "profile-level-id").chars().take(4).collect::<String>();
    mode(ours) == mode(fmtp) && profile(ours) == profile(fmtp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(order: &[RTCRtpCodecParameters]) -> Vec<String> {
        order.iter().map(|c| c.rtp_codec.mime_type.clone()).collect()
    }

    #[test]
    fn answers_prefer_h264_like_epics_frontend_unless_told() {
        // Chromium's order after H.264: VP8, VP9, AV1.
        let default = ["video/H264", "video/VP8", "video/VP9", "video/AV1"];
        assert_eq!(names(&answer_codec_order(&[]).unwrap()), default);
        let vp8 = answer_codec_order(&["VP8".to_string()]).unwrap();
        assert_eq!(names(&vp8), ["video/VP8", "video/VP9", "video/H264", "video/AV1"]);
        let av1 = answer_codec_order(&["av1".to_string(), "vp9".to_string()]).unwrap();
        assert_eq!(names(&av1), ["video/AV1", "video/VP9", "video/VP8", "video/H264"]);
        let err = answer_codec_order(&["h265".to_string()]).unwrap_err().to_string();
        assert!(err.contains("h265") && err.contains("h264, vp8, vp9, av1"), "{err}");
    }

    #[test]
    fn preferences_take_the_offers_payload_types() {
        // Chromium's numbering: H.264 42e01f mode 1 is 108, not our 102.
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                     m=video 9 UDP/TLS/RTP/SAVPF 96 102 104 108\r\na=rtpmap:96 VP8/90000\r\n\
                     a=rtpmap:102 H264/90000\r\n\
                     a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
                     a=rtpmap:104 H264/90000\r\n\
                     a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
                     a=rtpmap:108 H264/90000\r\n\
                     a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
                     m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        let order = in_offer_terms(&answer_codec_order(&[]).unwrap(), offer);
        let pts: Vec<u8> = order.iter().map(|c| c.payload_type).collect();
        assert_eq!(pts, [108, 96]);
        assert!(order[0].rtp_codec.sdp_fmtp_line.contains("42e01f"));
        // An offer without VP8: only H.264 is preferred.
        let h264_only = offer.replace("a=rtpmap:96 VP8/90000\r\n", "");
        assert_eq!(in_offer_terms(&answer_codec_order(&[]).unwrap(), &h264_only).len(), 1);
    }

    #[test]
    fn each_codec_brings_the_offers_retransmission_format() {
        // Chromium pairs every video codec with an rtx format (apt = its payload type).
        let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 108 109\r\na=rtpmap:96 VP8/90000\r\n\
                     a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:108 H264/90000\r\n\
                     a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
                     a=rtpmap:109 rtx/90000\r\na=fmtp:109 apt=108\r\n";
        let order = in_offer_terms(&answer_codec_order(&[]).unwrap(), offer);
        let pts: Vec<(u8, &str)> = order.iter().map(|c| (c.payload_type, c.rtp_codec.sdp_fmtp_line.as_str())).collect();
        assert_eq!(pts[1], (109, "apt=108"));
        assert_eq!(pts[3], (97, "apt=96"));
        assert_eq!(names(&order), ["video/H264", "video/rtx", "video/VP8", "video/rtx"]);
        // An offer without rtx (our streamer's, sfu-stub's): none in the answer.
        let plain = offer.replace("a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n", "");
        assert_eq!(
            names(&in_offer_terms(&answer_codec_order(&[]).unwrap(), &plain)),
            ["video/H264", "video/rtx", "video/VP8"]
        );
    }
}
