//! `--signalling-only`: a syntactically valid answer and a few host candidates
//! without any WebRTC, for loading a signalling server.
//!
//! The answer mirrors the offer's media sections (kind, mid, payload types) so
//! that a streamer can parse it; ICE on it never succeeds.

use proto::IceCandidate;
use rand::Rng;

/// An answer SDP for `offer`.
pub fn answer_sdp(offer: &str) -> String {
    let mut rng = rand::rng();
    let ufrag: String = (0..8).map(|_| rng.sample(rand::distr::Alphanumeric) as char).collect();
    let pwd: String = (0..24).map(|_| rng.sample(rand::distr::Alphanumeric) as char).collect();
    let fingerprint: Vec<String> = (0..32).map(|_| format!("{:02X}", rng.random::<u8>())).collect();
    let session_id: u64 = rng.random_range(1..1u64 << 62);

    let sections = media_sections(offer);
    let mids: Vec<&str> = sections.iter().map(|s| s.mid.as_str()).collect();
    let mut sdp = format!(
        "v=0\r\no=- {session_id} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE {}\r\na=msid-semantic: WMS\r\n",
        mids.join(" ")
    );
    for s in &sections {
        sdp.push_str(&format!("m={} 9 {} {}\r\nc=IN IP4 0.0.0.0\r\n", s.kind, s.proto, s.formats));
        sdp.push_str(&format!(
            "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n\
             a=fingerprint:sha-256 {}\r\na=setup:active\r\na=mid:{}\r\n",
            fingerprint.join(":"),
            s.mid
        ));
        if s.kind == "application" {
            sdp.push_str("a=sctp-port:5000\r\n");
        } else {
            sdp.push_str("a=recvonly\r\na=rtcp-mux\r\n");
            for line in &s.rtpmaps {
                sdp.push_str(line);
                sdp.push_str("\r\n");
            }
        }
    }
    sdp
}

/// Canned host candidates for the first media section.
pub fn candidates(offer: &str) -> Vec<IceCandidate> {
    let mid = media_sections(offer).first().map(|s| s.mid.clone()).unwrap_or_else(|| "0".into());
    (0..2u16)
        .map(|i| IceCandidate {
            candidate: format!(
                "candidate:{} 1 udp {} 127.0.0.1 {} typ host",
                1000 + i,
                2_130_706_431 - u32::from(i),
                9 + i
            ),
            sdp_mid: Some(mid.clone()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        })
        .collect()
}

struct Section {
    kind: String,
    proto: String,
    formats: String,
    mid: String,
    rtpmaps: Vec<String>,
}

fn media_sections(offer: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in offer.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split_whitespace();
            let kind = f.next().unwrap_or("video").to_string();
            let _port = f.next();
            let proto = f.next().unwrap_or("UDP/TLS/RTP/SAVPF").to_string();
            let formats: Vec<&str> = f.collect();
            out.push(Section {
                mid: out.len().to_string(),
                kind,
                proto,
                formats: if formats.is_empty() { "96".into() } else { formats.join(" ") },
                rtpmaps: Vec::new(),
            });
        } else if let Some(s) = out.last_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                s.mid = mid.to_string();
            } else if line.starts_with("a=rtpmap:") || line.starts_with("a=fmtp:") {
                s.rtpmaps.push(line.to_string());
            }
        }
    }
    if out.is_empty() {
        out.push(Section {
            kind: "video".into(),
            proto: "UDP/TLS/RTP/SAVPF".into(),
            formats: "96".into(),
            mid: "0".into(),
            rtpmaps: vec!["a=rtpmap:96 H264/90000".into()],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_offer() {
        let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:v\r\na=rtpmap:102 H264/90000\r\n\
                     m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:d\r\n";
        let a = answer_sdp(offer);
        assert!(a.contains("a=group:BUNDLE v d\r\n"));
        assert!(a.contains("m=video 9 UDP/TLS/RTP/SAVPF 102\r\n"));
        assert!(a.contains("a=rtpmap:102 H264/90000\r\n"));
        assert!(a.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"));
        let c = candidates(offer);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].sdp_mid.as_deref(), Some("v"));
        // An empty offer still gives a valid answer.
        assert!(answer_sdp("").contains("m=video"));
    }
}
