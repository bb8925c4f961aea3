//! WebRTC settings of the SFU: on top of `proto::rtc` (codecs, ICE policy),
//! the upstream API registers the RTP header extensions simulcast needs
//! (mid, rid, repaired rid), and candidates that break the ICE policy are
//! filtered out of what the remote end sends.

use std::net::IpAddr;

use proto::rtc::{media_engine, setting_engine, IcePolicy, Interceptors};
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::{APIBuilder, API};
use webrtc::interceptor::registry::Registry;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpHeaderExtensionCapability, RTPCodecType};

use crate::error::SfuError;

const SIMULCAST_EXTENSIONS: [&str; 3] = [
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
];

/// The API of the one upstream connection: default interceptors (NACK,
/// reports, TWCC) and the simulcast header extensions.
pub fn upstream_api(policy: IcePolicy) -> Result<API, SfuError> {
    let mut media = media_engine()?;
    for uri in SIMULCAST_EXTENSIONS {
        media.register_header_extension(
            RTCRtpHeaderExtensionCapability { uri: uri.to_string() },
            RTPCodecType::Video,
            None,
        )?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut media)?;
    Ok(APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(setting_engine(policy))
        .build())
}

/// The API shared by every player connection: sender/receiver reports only
/// (no NACK responder buffer of 1024 packets per player and track).
pub fn downstream_api(policy: IcePolicy) -> Result<API, SfuError> {
    Ok(proto::rtc::build_api(policy, Interceptors::ReportsOnly)?)
}

/// Whether a remote candidate may be used under the ICE policy.
pub fn candidate_allowed(policy: IcePolicy, candidate: &str) -> bool {
    !policy.loopback_only || candidate_is_loopback(candidate)
}

fn candidate_is_loopback(candidate: &str) -> bool {
    let line = candidate.trim_start_matches("a=");
    line.split_whitespace()
        .nth(4)
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .is_some_and(|ip| matches!(ip, IpAddr::V4(v4) if v4.is_loopback()))
}

/// Remove candidates the ICE policy forbids from a remote SDP.
pub fn filter_sdp(policy: IcePolicy, sdp: &str) -> String {
    if !policy.loopback_only {
        return sdp.to_string();
    }
    sdp.split_inclusive('\n')
        .filter(|line| {
            let t = line.trim_end();
            !t.starts_with("a=candidate:") || candidate_is_loopback(t)
        })
        .collect()
}

/// What an offer sends: per m-section kind, the simulcast rids as spatial
/// layers, lowest resolution first (empty without simulcast). Sections the offerer does not send are left out.
pub fn offered_media(sdp: &str) -> Vec<(RTPCodecType, Vec<String>)> {
    let mut out: Vec<(RTPCodecType, Vec<String>, bool)> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(rest) = line.strip_prefix("m=") {
            let mut f = rest.split_whitespace();
            let kind = match f.next() {
                Some("video") => RTPCodecType::Video,
                Some("audio") => RTPCodecType::Audio,
                _ => RTPCodecType::Unspecified,
            };
            let port_zero = f.next() == Some("0");
            out.push((kind, Vec::new(), !port_zero));
        } else if let Some(last) = out.last_mut() {
            if line == "a=recvonly" || line == "a=inactive" {
                last.2 = false;
            } else if let Some(rid) = line.strip_prefix("a=rid:") {
                let mut f = rid.split_whitespace();
                if let (Some(id), Some("send")) = (f.next(), f.next()) {
                    last.1.push(id.to_string());
                }
            }
        }
    }
    out.into_iter()
        .filter(|(k, _, sends)| *sends && *k != RTPCodecType::Unspecified)
        .map(|(k, r, _)| (k, order_layers(r)))
        .collect()
}

/// Rank of a well-known rid name, lowest resolution first. `quarter_scheme`:
/// the rids use q/h/f (quarter, half, full), where `h` is the middle one;
/// otherwise `h` means high (l/m/h, lo/mid/hi).
fn known_rank(rid: &str, quarter_scheme: bool) -> Option<u8> {
    match rid.to_ascii_lowercase().as_str() {
        "q" | "quarter" | "l" | "lo" | "low" => Some(0),
        "h" if quarter_scheme => Some(1),
        "half" | "m" | "mid" | "medium" => Some(1),
        "f" | "full" | "h" | "hi" | "high" => Some(2),
        _ => None,
    }
}

/// Spatial layer order of simulcast rids: by well-known names (q/h/f,
/// l/m/h, lo/mid/hi) when every rid has one, else as offered (lowest first,
/// as mediasoup and so Epic's SFU assume).
fn order_layers(mut rids: Vec<String>) -> Vec<String> {
    let quarter_scheme = rids.iter().any(|r| r.eq_ignore_ascii_case("q") || r.eq_ignore_ascii_case("f"));
    if rids.iter().all(|r| known_rank(r, quarter_scheme).is_some()) {
        rids.sort_by_key(|r| known_rank(r, quarter_scheme));
    }
    rids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_read() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=sendrecv\r\na=rid:h send\r\na=rid:m send\r\na=rid:l send\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        let m = offered_media(sdp);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, RTPCodecType::Video);
        assert_eq!(m[0].1, vec!["l", "m", "h"]);
        let named = offered_media("m=video 9 X 102\r\na=rid:f send\r\na=rid:h send\r\na=rid:q send\r\n");
        assert_eq!(named[0].1, vec!["q", "h", "f"]);
        let other = offered_media("m=video 9 X 102\r\na=rid:a send\r\na=rid:b send\r\n");
        assert_eq!(other[0].1, vec!["a", "b"]);
    }

    #[test]
    fn candidates_are_filtered() {
        let p = IcePolicy::LOOPBACK;
        assert!(candidate_allowed(p, "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"));
        assert!(!candidate_allowed(p, "candidate:1 1 udp 2130706431 192.0.2.4 5000 typ host"));
        assert!(candidate_allowed(IcePolicy::ANY, "candidate:1 1 udp 2130706431 192.0.2.4 5000 typ host"));
        let sdp = "v=0\r\na=candidate:1 1 udp 1 10.0.0.1 9 typ host\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n";
        assert_eq!(filter_sdp(p, sdp), "v=0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n");
    }
}
