//! Issue 18: a player sends back what a browser's receiver sends, and its
//! answer says so and orders codecs as Epic's frontend does.
//!
//! The sender here is a webrtc 0.21 connection built in the test the way a
//! libwebrtc sender offers: VP8 before H.264 (Chromium's order), REMB, FIR,
//! NACK, PLI and transport-cc feedback, and the transport-wide sequence
//! number extension on its packets. It sends H.264 packets that are never a
//! keyframe, and the test reads every RTCP packet that comes back.

use std::sync::Arc;
use std::time::Duration;

use mock_player::datachannel::{DcBehaviour, DcSession};
use mock_player::live::Live;
use mock_player::peer::{PeerEvent, PeerSession};
use mock_player::rtc::{from_rtc_candidate, to_rtc_candidate, RtcContext};
use proto::IceCandidate;
use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::configure_twcc_sender_only;
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_H264, MIME_TYPE_VP8};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCPeerConnectionIceEvent, RTCSessionDescription,
};

/// Hands the test every RTCP packet that reaches the sender (webrtc 0.21
/// delivers inbound RTCP to `TrackLocal::poll` only when an interceptor marks
/// it so). Last in the sender's chain.
#[derive(Default)]
struct AllRtcpToApplication {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for AllRtcpToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if matches!(msg.message.packet, rtc::interceptor::Packet::Rtcp(_)) {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for AllRtcpToApplication {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// The sender's handler: its local candidates, for the test to trickle.
struct SenderCandidates(mpsc::UnboundedSender<IceCandidate>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for SenderCandidates {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            if !init.candidate.is_empty() {
                let _ = self.0.send(from_rtc_candidate(init));
            }
        }
    }
}

fn codec(mime: &str, fmtp: &str) -> RTCRtpCodec {
    let feedback = [("goog-remb", ""), ("transport-cc", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")];
    RTCRtpCodec {
        mime_type: mime.into(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: fmtp.into(),
        rtcp_feedback: feedback
            .into_iter()
            .map(|(typ, parameter)| RTCPFeedback { typ: typ.into(), parameter: parameter.into() })
            .collect(),
    }
}

const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
const SSRC: u32 = 4242;

/// A sender offering like Chromium: VP8 (96) first, then H.264 (102), with
/// the transport-wide sequence numbers on what it sends.
async fn chromium_like_sender(
    candidates: mpsc::UnboundedSender<IceCandidate>,
) -> (Arc<dyn PeerConnection>, Arc<TrackLocalStaticRTP>) {
    let crypto = proto::rtc::process_crypto().expect("crypto");
    let mut media = MediaEngine::default();
    for (mime, fmtp, pt) in [(MIME_TYPE_VP8, "", 96), (MIME_TYPE_H264, H264_FMTP, 102)] {
        media
            .register_codec(
                RTCRtpCodecParameters { rtp_codec: codec(mime, fmtp), payload_type: pt },
                RtpCodecKind::Video,
            )
            .expect("codec");
    }
    let registry = configure_twcc_sender_only(Registry::new(), &mut media)
        .expect("twcc sender")
        .with(Slot::Custom(30_000), AllRtcpToApplication::default());
    let settings = proto::rtc::PeerSettings::offerer(proto::rtc::IcePolicy::LOOPBACK, proto::rtc::Interceptors::Full);
    let pc = PeerConnectionBuilder::new()
        .with_configuration(
            proto::rtc::rtc_configuration(&Value::Null, proto::rtc::IcePolicy::LOOPBACK, crypto).expect("config"),
        )
        .with_media_engine(media)
        .with_setting_engine(proto::rtc::settings::setting_engine(&settings, crypto))
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(SenderCandidates(candidates)))
        .with_udp_addrs(proto::rtc::settings::bind_addresses(proto::rtc::IcePolicy::LOOPBACK))
        .build()
        .await
        .expect("sender");
    let coding = RTCRtpEncodingParameters {
        rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(SSRC), ..Default::default() },
        active: true,
        codec: codec(MIME_TYPE_H264, H264_FMTP),
        ..Default::default()
    };
    let track =
        MediaStreamTrack::new("stream".into(), "video".into(), "video".into(), RtpCodecKind::Video, vec![coding]);
    let track = Arc::new(TrackLocalStaticRTP::new(track));
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await.expect("track");
    // The track's encoding names H.264; offer both, VP8 first, as Chromium does.
    let both = vec![
        RTCRtpCodecParameters { rtp_codec: codec(MIME_TYPE_VP8, ""), payload_type: 96 },
        RTCRtpCodecParameters { rtp_codec: codec(MIME_TYPE_H264, H264_FMTP), payload_type: 102 },
    ];
    for transceiver in pc.get_transceivers().await {
        transceiver.set_codec_preferences(both.clone()).await.expect("codec preferences");
    }
    (pc, track)
}

/// The `a=rtcp-fb` values of payload type `pt` in `sdp`.
fn feedback_of(sdp: &str, pt: u8) -> Vec<String> {
    let prefix = format!("a=rtcp-fb:{pt} ");
    sdp.lines().filter_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_prefers_h264_and_advertises_only_the_feedback_the_player_sends() {
    let ctx = RtcContext::new(true).expect("webrtc context");
    let (sender_candidates_tx, mut sender_candidates) = mpsc::unbounded_channel();
    let (sender, track) = chromium_like_sender(sender_candidates_tx).await;
    let offer = sender.create_offer(None).await.expect("offer");
    sender.set_local_description(offer.clone()).await.expect("local offer");
    let video_line = offer.sdp.lines().find(|l| l.starts_with("m=video")).expect("m=video").to_string();
    assert!(video_line.ends_with(" 96 102"), "the offer lists VP8 first, as Chromium: {video_line}");

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let dc = DcSession::new(DcBehaviour { input_rate: 0.0, latency_test: false }, cancel.clone());
    let live = Arc::new(Live::default());
    let session =
        PeerSession::new(ctx.clone(), &Value::Null, events_tx, live, dc, cancel).await.expect("player session");
    let answer = session.answer(&offer.sdp).await.expect("answer");

    let video_line = answer.lines().find(|l| l.starts_with("m=video")).expect("m=video in the answer");
    let first_pt = video_line.split_whitespace().nth(3).expect("a payload type");
    assert_eq!(first_pt, "102", "H.264 first, as Epic's frontend answers: {video_line}");
    let mut h264 = feedback_of(&answer, 102);
    h264.sort();
    assert_eq!(h264, ["nack", "nack pli", "transport-cc"], "answer:\n{answer}");
    assert!(!answer.contains("goog-remb") && !answer.contains("ccm fir"), "answer:\n{answer}");
    assert!(
        answer.lines().any(|l| l.starts_with("a=extmap:") && l.contains("transport-wide-cc")),
        "the transport-wide sequence number extension is accepted:\n{answer}"
    );
    sender.set_remote_description(RTCSessionDescription::answer(answer).expect("answer SDP")).await.expect("remote");

    // Connect, then send 3 s of H.264 packets, none of them a keyframe,
    // with a gap of 5 sequence numbers the sender never resends.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut connected = false;
    while !connected {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => panic!("no connection in 10 s"),
            Some(c) = sender_candidates.recv() => session.add_candidate(c).await.expect("sender candidate"),
            Some(e) = events.recv() => match e {
                PeerEvent::LocalCandidate(c) => sender.add_ice_candidate(to_rtc_candidate(&c)).await.expect("candidate"),
                PeerEvent::Connected(_) => connected = true,
                PeerEvent::Failed(why) => panic!("peer failed: {why}"),
                _ => {}
            },
        }
    }
    let writer = {
        let track = track.clone();
        tokio::spawn(async move {
            let mut sequence_number: u16 = 1;
            for i in 0..300u32 {
                if i == 100 {
                    sequence_number = sequence_number.wrapping_add(5);
                }
                let packet = Packet {
                    header: Header {
                        version: 2,
                        payload_type: 102,
                        sequence_number,
                        timestamp: i * 3000,
                        ssrc: SSRC,
                        marker: true,
                        ..Default::default()
                    },
                    // A non-IDR slice (NAL type 1): never a keyframe.
                    payload: bytes::Bytes::from_static(&[0x41, 0x9a, 0x02, 0x03, 0x04, 0x05]),
                };
                let _ = track.write_rtp(packet).await;
                sequence_number = sequence_number.wrapping_add(1);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // What comes back: receiver reports, transport-wide CC feedback, NACKs
    // for the gap and PLIs for the missing keyframe.
    let (mut rr, mut twcc, mut nack, mut pli) = (0, 0, 0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rr == 0 || twcc == 0 || nack == 0 || pli == 0 {
        let event = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                panic!("in 10 s: {rr} receiver reports, {twcc} TWCC feedbacks, {nack} NACKs, {pli} PLIs")
            }
            e = track.poll() => e,
        };
        let Some(TrackLocalEvent::OnRtcpPacket(packets)) = event else { continue };
        for p in &packets {
            let any = p.as_any();
            rr += usize::from(any.is::<ReceiverReport>());
            twcc += usize::from(any.is::<TransportLayerCc>());
            nack += usize::from(any.is::<TransportLayerNack>());
            pli += usize::from(any.is::<PictureLossIndication>());
        }
    }
    let tracks = session.track_summaries();
    let video = tracks.iter().find(|t| t.kind == "video").expect("a video track");
    assert_eq!(video.codec, "H264");
    assert!(video.plis_sent >= 1, "{video:?}");
    writer.abort();
    session.close().await;
    sender.close().await.expect("close sender");
}
