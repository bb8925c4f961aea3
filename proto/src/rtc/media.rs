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

/// Our video codecs with their payload types, H.264 first.
pub fn video_codecs() -> Vec<RTCRtpCodecParameters> {
    vec![
        RTCRtpCodecParameters { rtp_codec: h264_codec(), payload_type: H264_PAYLOAD_TYPE },
        RTCRtpCodecParameters { rtp_codec: vp8_codec(), payload_type: VP8_PAYLOAD_TYPE },
    ]
}

/// A media engine with H.264 (constrained baseline, packetization-mode=1,
/// profile-level-id=42e01f), VP8 and Opus, and the MID/RID header
/// extensions simulcast needs (each encoding is told apart by its rid).
/// Video advertises REMB, FIR, NACK and PLI: what a sender can act on.
pub fn media_engine() -> Result<MediaEngine, RtcError> {
    media_engine_with_feedback(video_feedback())
}

/// The same codecs and extensions with `video_feedback` as the RTCP
/// feedback of every video codec: an answer advertises what its side sends,
/// so a receive-only peer passes only what it really sends (the interceptors
/// add theirs: NACK, transport-cc).
pub fn media_engine_with_feedback(video_feedback: Vec<RTCPFeedback>) -> Result<MediaEngine, RtcError> {
    let mut m = MediaEngine::default();
    for mut codec in video_codecs() {
        codec.rtp_codec.rtcp_feedback = video_feedback.clone();
        m.register_codec(codec, RtpCodecKind::Video)?;
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
