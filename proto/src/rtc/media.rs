//! The codecs and RTP header extensions every peer of the toolkit registers.

use ::rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use ::rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use ::rtc::sdp::extmap::{SDES_MID_URI, SDES_REPAIR_RTP_STREAM_ID_URI, SDES_RTP_STREAM_ID_URI};

use super::RtcError;

/// H.264 payload type we register.
pub const H264_PAYLOAD_TYPE: u8 = 102;
/// VP8 payload type we register.
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// Opus payload type we register.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Constrained baseline, level 3.1, non-interleaved packetization: what
/// browsers decode everywhere.
pub const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// Opus format parameters we offer.
pub const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";

fn video_feedback() -> Vec<RTCPFeedback> {
    [("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback { typ: typ.into(), parameter: parameter.into() })
        .collect()
}

/// Our H.264 codec (constrained baseline, packetization-mode=1).
pub fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.into(),
        rtcp_feedback: video_feedback(),
    }
}

/// Our VP8 codec.
pub fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: video_feedback(),
    }
}

/// Our Opus codec (stereo, in-band FEC).
pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.into(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.into(),
        rtcp_feedback: vec![],
    }
}

/// A media engine with H.264 (constrained baseline, packetization-mode=1,
/// profile-level-id=42e01f), VP8 and Opus, and the MID/RID header
/// extensions simulcast needs (each encoding is told apart by its rid).
pub fn media_engine() -> Result<MediaEngine, RtcError> {
    let mut m = MediaEngine::default();
    for (rtp_codec, payload_type) in [(h264_codec(), H264_PAYLOAD_TYPE), (vp8_codec(), VP8_PAYLOAD_TYPE)] {
        m.register_codec(RTCRtpCodecParameters { rtp_codec, payload_type }, RtpCodecKind::Video)?;
    }
    for uri in [SDES_MID_URI, SDES_RTP_STREAM_ID_URI, SDES_REPAIR_RTP_STREAM_ID_URI] {
        m.register_header_extension(
            RTCRtpHeaderExtensionCapability { uri: uri.to_owned() },
            RtpCodecKind::Video,
            None,
        )?;
    }
    m.register_codec(
        RTCRtpCodecParameters { rtp_codec: opus_codec(), payload_type: OPUS_PAYLOAD_TYPE },
        RtpCodecKind::Audio,
    )?;
    Ok(m)
}
