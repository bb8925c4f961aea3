//! ICE candidates between signalling ([`IceCandidate`]) and webrtc
//! (`RTCIceCandidateInit`), and the loopback test the ICE policy uses.

use std::net::IpAddr;

use webrtc::peer_connection::RTCIceCandidateInit;

use crate::message::IceCandidate;

/// Our signalling candidate → webrtc's.
pub fn to_rtc_candidate(c: &IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate.clone(),
        sdp_mid: c.sdp_mid.clone(),
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment.clone(),
        url: None,
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

/// Is a candidate line (`candidate:… <ip> <port> typ …`, with or without
/// `a=`) on 127.0.0.0/8?
pub fn candidate_is_loopback(candidate: &str) -> bool {
    let line = candidate.trim_start_matches("a=");
    line.split_whitespace()
        .nth(4)
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .is_some_and(|ip| matches!(ip, IpAddr::V4(v4) if v4.is_loopback()))
}

/// An SDP without its `a=candidate` lines that are not on 127.0.0.0/8 (for a
/// loopback-only peer given a remote description with every interface's
/// candidates in it).
pub fn filter_sdp_candidates(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|line| {
            let t = line.trim_end();
            !t.starts_with("a=candidate:") || candidate_is_loopback(t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn loopback_candidates_are_recognised() {
        assert!(candidate_is_loopback("candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"));
        assert!(candidate_is_loopback("a=candidate:1 1 udp 2130706431 127.0.0.2 5000 typ host"));
        assert!(!candidate_is_loopback("candidate:1 1 udp 2130706431 192.0.2.4 5000 typ host"));
        assert!(!candidate_is_loopback("candidate:1 1 udp 1 ::1 5000 typ host"));
        assert!(!candidate_is_loopback("garbage"));
    }

    #[test]
    fn only_loopback_candidates_stay_in_an_sdp() {
        let sdp = "v=0\r\na=candidate:1 1 udp 1 10.0.0.1 9 typ host\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n";
        assert_eq!(filter_sdp_candidates(sdp), "v=0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n");
    }

    #[test]
    fn a_candidate_without_mid_gets_the_first_m_line() {
        let bare =
            RTCIceCandidateInit { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(), ..Default::default() };
        let c = from_rtc_candidate(bare);
        assert_eq!((c.sdp_mid.as_deref(), c.sdp_mline_index), (Some("0"), Some(0)));
    }
}
