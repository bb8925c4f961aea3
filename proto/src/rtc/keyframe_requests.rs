//! An interceptor that hands the application the keyframe requests (PLI,
//! FIR) a remote receiver sends about our tracks.
//!
//! webrtc 0.21 stops inbound RTCP at the end of the interceptor chain (the
//! interceptors act on reports, NACKs and congestion feedback) unless an
//! interceptor marks a packet `DeliverToApplication`; only then does it
//! reach `TrackLocal::poll`. A sender must answer PLI/FIR with a keyframe
//! (the streamer encodes one, the SFU asks the streamer), so this one marks
//! exactly those. It sits last, so every other interceptor has seen the
//! whole of the RTCP first.

use std::collections::VecDeque;
use std::time::Instant;

use ::rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use ::rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use ::rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use ::rtc::sansio::Protocol;
use ::rtc::shared::error::Error;

/// The chain position: after every built-in slot (the highest is 13,000).
pub const KEYFRAME_REQUESTS_SLOT: usize = 20_000;

/// Whether an RTCP packet asks for a keyframe.
pub fn is_keyframe_request(packet: &dyn ::rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// The SSRCs a keyframe request asks a keyframe of: a PLI's media SSRC, a
/// FIR's entries (browsers send FIR with media SSRC 0). Empty for other
/// packets.
pub fn keyframe_request_ssrcs(packet: &dyn ::rtc::rtcp::Packet) -> Vec<u32> {
    let any = packet.as_any();
    if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
        vec![pli.media_ssrc]
    } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
        match fir.fir.is_empty() {
            true => vec![fir.media_ssrc],
            false => fir.fir.iter().map(|e| e.ssrc).collect(),
        }
    } else {
        Vec::new()
    }
}

/// Marks inbound PLI/FIR for the application and lets nothing else of the
/// inbound RTCP through (it would stop at the end of the chain anyway).
#[derive(Default)]
pub struct KeyframeRequestsToApplication {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestsToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<Box<dyn ::rtc::rtcp::Packet>> =
                packets.iter().filter(|p| is_keyframe_request(p.as_ref())).cloned().collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestsToApplication {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::rtc::rtcp::payload_feedbacks::full_intra_request::FirEntry;
    use ::rtc::rtcp::receiver_report::ReceiverReport;

    #[test]
    fn keyframe_requests_name_their_ssrcs() {
        let pli = PictureLossIndication { sender_ssrc: 1, media_ssrc: 7 };
        assert!(is_keyframe_request(&pli));
        assert_eq!(keyframe_request_ssrcs(&pli), [7]);
        let fir =
            FullIntraRequest { sender_ssrc: 1, media_ssrc: 0, fir: vec![FirEntry { ssrc: 9, sequence_number: 1 }] };
        assert_eq!(keyframe_request_ssrcs(&fir), [9]);
        let rr = ReceiverReport::default();
        assert!(!is_keyframe_request(&rr));
        assert!(keyframe_request_ssrcs(&rr).is_empty());
    }
}
