//! A canned, syntactically valid SDP offer for `--signalling-only` load
//! tests: video (H.264) and a data channel, bundled, with msid, but no real
//! ICE agent or DTLS behind it.

use rand::Rng;

/// A fresh canned offer (random ICE credentials and session id).
pub fn canned_offer() -> String {
    let mut rng = rand::rng();
    let session: u64 = rng.random_range(1..i64::MAX as u64);
    let ufrag: String = (0..8).map(|_| rng.sample(rand::distr::Alphanumeric) as char).collect();
    let pwd: String = (0..24).map(|_| rng.sample(rand::distr::Alphanumeric) as char).collect();
    let fingerprint: Vec<String> = (0..32).map(|_| format!("{:02X}", rng.random::<u8>())).collect();
    let fingerprint = fingerprint.join(":");
    let ssrc: u32 = rng.random();
    format!(
        "v=0\r\n\
o=- {session} 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS pixelstreaming_av_stream_id\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:{ufrag}\r\n\
a=ice-pwd:{pwd}\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 {fingerprint}\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=msid:pixelstreaming_av_stream_id pixelstreaming_video_track_label\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:102 H264/90000\r\n\
a=rtcp-fb:102 nack\r\n\
a=rtcp-fb:102 nack pli\r\n\
a=rtcp-fb:102 ccm fir\r\n\
a=fmtp:102 {fmtp}\r\n\
a=ssrc:{ssrc} cname:mockstreamer\r\n\
a=ssrc:{ssrc} msid:pixelstreaming_av_stream_id pixelstreaming_video_track_label\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:{ufrag}\r\n\
a=ice-pwd:{pwd}\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 {fingerprint}\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=sctp-port:5000\r\n\
a=max-message-size:262144\r\n",
        fmtp = proto::rtc::H264_FMTP
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn canned_offer_parses() {
        let sdp = super::canned_offer();
        let mut reader = std::io::Cursor::new(sdp.as_bytes());
        let parsed = rtc::sdp::SessionDescription::unmarshal(&mut reader).expect("valid SDP");
        assert_eq!(parsed.media_descriptions.len(), 2);
    }
}
