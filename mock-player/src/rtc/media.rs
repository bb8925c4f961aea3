//! The codecs and RTP header extensions a player answers with: the same
//! table as `proto::rtc::media_engine` (webrtc 0.17), so a player on 0.21
//! answers the streamer's and the SFU's offers with the same payload types.

use rtc::peer_connection::configuration::interceptor_registry::configure_simulcast_extension_headers;
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};

/// H.264 payload type (as `proto::rtc::H264_PAYLOAD_TYPE`).
pub const H264_PAYLOAD_TYPE: u8 = 102;
/// VP8 payload type (as `proto::rtc::VP8_PAYLOAD_TYPE`).
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// Opus payload type (as `proto::rtc::OPUS_PAYLOAD_TYPE`).
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Constrained baseline, level 3.1, non-interleaved packetization: what
/// browsers decode everywhere (as `proto::rtc::H264_FMTP`).
pub const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

fn video_feedback() -> Vec<RTCPFeedback> {
    [("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback { typ: typ.into(), parameter: parameter.into() })
        .collect()
}

/// H.264 (constrained baseline), VP8 and Opus, and the MID/RID header
/// extensions (an SFU's simulcast layers are told apart by their rid).
pub fn media_engine() -> Result<MediaEngine, webrtc::error::Error> {
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
    configure_simulcast_extension_headers(&mut m)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds() {
        media_engine().expect("media engine");
    }
}
