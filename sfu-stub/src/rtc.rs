//! WebRTC settings of the SFU: on top of `proto::rtc` (codecs with the
//! simulcast header extensions mid, rid and repaired rid, ICE policy), which
//! interceptors each side runs, and candidates that break the ICE policy
//! filtered out of what the remote end sends.

use proto::rtc::{candidate_is_loopback, IcePolicy, Interceptors, PeerSettings};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

/// The one upstream connection (we answer the streamer's offer): webrtc's
/// default interceptors (NACK, reports, TWCC).
pub fn upstream_settings(policy: IcePolicy) -> PeerSettings {
    PeerSettings::answerer(policy, Interceptors::Full)
}

/// Every player connection (we offer, so we are the controlling ICE agent):
/// sender/receiver reports and a NACK responder, so a player's lost packets
/// are resent from here (as a real SFU does) rather than asked of the
/// streamer or replaced by a keyframe.
pub fn downstream_settings(policy: IcePolicy) -> PeerSettings {
    PeerSettings::offerer(policy, Interceptors::Forwarder)
}

/// Whether a remote candidate may be used under the ICE policy.
pub fn candidate_allowed(policy: IcePolicy, candidate: &str) -> bool {
    !policy.loopback_only || candidate_is_loopback(candidate)
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
pub fn offered_media(sdp: &str) -> Vec<(RtpCodecKind, Vec<String>)> {
    let mut out: Vec<(RtpCodecKind, Vec<String>, bool)> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(rest) = line.strip_prefix("m=") {
            let mut f = rest.split_whitespace();
            let kind = match f.next() {
                Some("video") => RtpCodecKind::Video,
                Some("audio") => RtpCodecKind::Audio,
                _ => RtpCodecKind::Unspecified,
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
        .filter(|(k, _, sends)| *sends && *k != RtpCodecKind::Unspecified)
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
        assert_eq!(m[0].0, RtpCodecKind::Video);
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
