//! The codecs and RTP header extensions every peer of the toolkit registers.
//!
//! Video is H.264, VP8, VP9 and AV1 (what Unreal's Pixel Streaming encodes),
//! with the payload types and format parameters Chromium uses, so that our
//! offers and answers look like a browser's. Which of them a connection
//! registers, and in what order (an offer lists the first as preferred), is
//! its [`VideoCodecs`].

use ::rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_AV1, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_VP9,
};
use ::rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use ::rtc::sdp::extmap::{SDES_MID_URI, SDES_REPAIR_RTP_STREAM_ID_URI, SDES_RTP_STREAM_ID_URI};

use super::RtcError;
use crate::capture_time::ABS_CAPTURE_TIME_URI;
use crate::rtp_payload::Codec;

/// H.264 payload type we register.
pub const H264_PAYLOAD_TYPE: u8 = 102;
/// VP8 payload type we register.
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// VP9 (profile 0) payload type we register.
pub const VP9_PAYLOAD_TYPE: u8 = 98;
/// AV1 payload type we register.
pub const AV1_PAYLOAD_TYPE: u8 = 45;
/// VP9 profile 0 (8-bit 4:2:0), the profile every browser decodes.
pub const VP9_FMTP: &str = "profile-id=0";
/// AV1 main profile, level 3.1, main tier: Chromium's offer.
pub const AV1_FMTP: &str = "level-idx=5;profile=0;tier=0";
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
    video_codec(MIME_TYPE_VP8, "")
}

/// Our VP9 codec (profile 0).
pub fn vp9_codec() -> RTCRtpCodec {
    video_codec(MIME_TYPE_VP9, VP9_FMTP)
}

/// Our AV1 codec.
pub fn av1_codec() -> RTCRtpCodec {
    video_codec(MIME_TYPE_AV1, AV1_FMTP)
}

fn video_codec(mime_type: &str, fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime_type.into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: fmtp.into(),
        rtcp_feedback: video_feedback(),
    }
}

/// The codec and payload type we register for `codec` (`None` for
/// [`Codec::Other`]).
pub fn codec_parameters(codec: Codec) -> Option<RTCRtpCodecParameters> {
    let (rtp_codec, payload_type) = match codec {
        Codec::H264 => (h264_codec(), H264_PAYLOAD_TYPE),
        Codec::Vp8 => (vp8_codec(), VP8_PAYLOAD_TYPE),
        Codec::Vp9 => (vp9_codec(), VP9_PAYLOAD_TYPE),
        Codec::Av1 => (av1_codec(), AV1_PAYLOAD_TYPE),
        Codec::Other => return None,
    };
    Some(RTCRtpCodecParameters { rtp_codec, payload_type })
}

/// The video codecs a peer connection registers, most preferred first (an
/// offer lists them in this order). `Copy`, so that [`super::PeerSettings`]
/// stays a plain value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoCodecs {
    list: [Option<Codec>; 4],
}

impl VideoCodecs {
    /// H.264, VP8, VP9, AV1: H.264 first, as Unreal offers by default.
    pub const ALL: VideoCodecs =
        VideoCodecs { list: [Some(Codec::H264), Some(Codec::Vp8), Some(Codec::Vp9), Some(Codec::Av1)] };

    /// These codecs in this order (duplicates and [`Codec::Other`] left
    /// out); empty: [`VideoCodecs::ALL`].
    pub fn new(codecs: &[Codec]) -> VideoCodecs {
        let mut list = [None; 4];
        let mut n = 0;
        for &codec in codecs {
            if codec != Codec::Other && n < list.len() && !list[..n].contains(&Some(codec)) {
                list[n] = Some(codec);
                n += 1;
            }
        }
        if n == 0 {
            VideoCodecs::ALL
        } else {
            VideoCodecs { list }
        }
    }

    /// The codecs, most preferred first.
    pub fn iter(&self) -> impl Iterator<Item = Codec> + '_ {
        self.list.iter().flatten().copied()
    }

    /// The first (most preferred) codec.
    pub fn first(&self) -> Codec {
        self.iter().next().unwrap_or(Codec::H264)
    }

    pub fn contains(&self, codec: Codec) -> bool {
        self.iter().any(|c| c == codec)
    }
}

impl Default for VideoCodecs {
    fn default() -> Self {
        VideoCodecs::ALL
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

/// All our video codecs with their payload types, H.264 first.
pub fn video_codecs() -> Vec<RTCRtpCodecParameters> {
    VideoCodecs::ALL.iter().filter_map(codec_parameters).collect()
}

/// A media engine with `codecs` (H.264 constrained baseline,
/// packetization-mode=1, profile-level-id=42e01f; VP8; VP9 profile 0; AV1),
/// Opus, the MID/RID header extensions simulcast needs (each encoding is
/// told apart by its rid) and `abs-capture-time` ([`crate::capture_time`]). Video advertises REMB, FIR, NACK and PLI: what a
/// sender can act on.
pub fn media_engine(codecs: VideoCodecs) -> Result<MediaEngine, RtcError> {
    media_engine_with_feedback(codecs, video_feedback())
}

/// The same codecs and extensions with `video_feedback` as the RTCP
/// feedback of every video codec: an answer advertises what its side sends,
/// so a receive-only peer passes only what it really sends (the interceptors
/// add theirs: NACK, transport-cc).
pub fn media_engine_with_feedback(
    codecs: VideoCodecs,
    video_feedback: Vec<RTCPFeedback>,
) -> Result<MediaEngine, RtcError> {
    let mut m = MediaEngine::default();
    for mut codec in codecs.iter().filter_map(codec_parameters) {
        codec.rtp_codec.rtcp_feedback = video_feedback.clone();
        m.register_codec(codec, RtpCodecKind::Video)?;
    }
    // abs-capture-time: the streamer stamps each frame's capture time, the
    // SFU forwards it, players measure each frame's latency with it.
    for uri in [SDES_MID_URI, SDES_RTP_STREAM_ID_URI, SDES_REPAIR_RTP_STREAM_ID_URI, ABS_CAPTURE_TIME_URI] {
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

/// The video codec an SDP's first video section lists first: in an answer,
/// the codec the answerer wants (and the offerer then sends). `None` without
/// a video section or when its first payload type has no `rtpmap`.
pub fn first_video_codec(sdp: &str) -> Option<Codec> {
    let mut in_video = false;
    let mut first_pt: Option<&str> = None;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            if first_pt.is_some() {
                break; // past the first video section
            }
            in_video = m.starts_with("video ");
            if in_video {
                first_pt = Some(m.split_whitespace().nth(3)?);
            }
        } else if let (true, Some(pt), Some(map)) = (in_video, first_pt, line.strip_prefix("a=rtpmap:")) {
            let (this_pt, encoding) = map.split_once(' ')?;
            if this_pt == pt {
                let name = encoding.split('/').next()?;
                return Some(Codec::from_mime(&format!("video/{name}")));
            }
        }
    }
    None
}

/// The id the remote side negotiated for the header extension `uri` on `sender` (the
/// streamer's simulcast and capture-time stamps, the SFU's re-stamping), if it did.
pub async fn negotiated_extension_id(sender: &dyn webrtc::rtp_transceiver::RtpSender, uri: &str) -> Option<u8> {
    let parameters = sender.get_parameters().await.ok()?;
    let ext = parameters.rtp_parameters.header_extensions.iter().find(|e| e.uri == uri)?;
    u8::try_from(ext.id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_video_codec_of_an_answer() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 98 102 45\r\na=rtpmap:102 H264/90000\r\n\
                   a=rtpmap:98 VP9/90000\r\na=rtpmap:45 AV1/90000\r\n";
        assert_eq!(first_video_codec(sdp), Some(Codec::Vp9));
        assert_eq!(first_video_codec("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"), None);
        assert_eq!(first_video_codec("m=video 9 UDP/TLS/RTP/SAVPF 45\r\na=rtpmap:45 AV1/90000"), Some(Codec::Av1));
        assert_eq!(first_video_codec("m=video 9 UDP/TLS/RTP/SAVPF"), None);
    }

    #[test]
    fn codec_lists() {
        let list = VideoCodecs::new(&[Codec::Vp9, Codec::Other, Codec::Vp9, Codec::H264]);
        assert_eq!(list.iter().collect::<Vec<_>>(), vec![Codec::Vp9, Codec::H264]);
        assert_eq!(list.first(), Codec::Vp9);
        assert_eq!(VideoCodecs::new(&[]), VideoCodecs::ALL);
        assert_eq!(video_codecs().len(), 4);
    }
}
