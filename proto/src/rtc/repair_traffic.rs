//! An interceptor that counts the repair traffic of a peer connection, both
//! ways: the NACKs, PLIs and FIRs it sends and receives, and the RTP packets
//! it sends a second time (a NACK responder's retransmissions).
//!
//! It sits at the wire end of the chain ([`REPAIR_TRAFFIC_SLOT`], below every
//! built-in slot): the write walk runs from the application to the wire, so
//! it sees every departing packet, generated RTCP and retransmissions
//! included; the read walk starts there, so it sees every arriving RTCP
//! packet before an interceptor consumes it. It only counts: packets pass
//! unchanged.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ::rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use ::rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use ::rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use ::rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use ::rtc::sansio::Protocol;
use ::rtc::shared::error::Error;
use serde::{Deserialize, Serialize};

/// The chain position: the wire end (the lowest built-in slot is 1,000).
pub const REPAIR_TRAFFIC_SLOT: usize = 500;

/// Running counts, shared between the interceptor and whoever reports them.
#[derive(Debug, Default)]
pub struct RepairCounters {
    nacks_sent: AtomicU64,
    nacked_packets_sent: AtomicU64,
    plis_sent: AtomicU64,
    firs_sent: AtomicU64,
    nacks_received: AtomicU64,
    nacked_packets_received: AtomicU64,
    plis_received: AtomicU64,
    firs_received: AtomicU64,
    rtp_sent: AtomicU64,
    rtp_resent: AtomicU64,
}

/// What [`RepairCounters`] counted, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairTraffic {
    /// RTCP NACK packets sent, and the RTP packets they asked for.
    pub nacks_sent: u64,
    pub nacked_packets_sent: u64,
    pub plis_sent: u64,
    pub firs_sent: u64,
    /// RTCP NACK packets received, and the RTP packets they asked for.
    pub nacks_received: u64,
    pub nacked_packets_received: u64,
    pub plis_received: u64,
    pub firs_received: u64,
    /// RTP packets sent, and of those the ones sent again (same SSRC and
    /// sequence number: retransmissions answering NACKs).
    pub rtp_sent: u64,
    pub rtp_resent: u64,
}

impl RepairCounters {
    pub fn snapshot(&self) -> RepairTraffic {
        RepairTraffic {
            nacks_sent: self.nacks_sent.load(Relaxed),
            nacked_packets_sent: self.nacked_packets_sent.load(Relaxed),
            plis_sent: self.plis_sent.load(Relaxed),
            firs_sent: self.firs_sent.load(Relaxed),
            nacks_received: self.nacks_received.load(Relaxed),
            nacked_packets_received: self.nacked_packets_received.load(Relaxed),
            plis_received: self.plis_received.load(Relaxed),
            firs_received: self.firs_received.load(Relaxed),
            rtp_sent: self.rtp_sent.load(Relaxed),
            rtp_resent: self.rtp_resent.load(Relaxed),
        }
    }

    fn count_rtcp(&self, packets: &[Box<dyn ::rtc::rtcp::Packet>], sent: bool) {
        for p in packets {
            let any = p.as_any();
            if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                let asked: usize = nack.nacks.iter().map(|n| n.packet_list().len()).sum();
                let (n, k) = match sent {
                    true => (&self.nacks_sent, &self.nacked_packets_sent),
                    false => (&self.nacks_received, &self.nacked_packets_received),
                };
                n.fetch_add(1, Relaxed);
                k.fetch_add(asked as u64, Relaxed);
            } else if any.is::<PictureLossIndication>() {
                match sent {
                    true => &self.plis_sent,
                    false => &self.plis_received,
                }
                .fetch_add(1, Relaxed);
            } else if any.is::<FullIntraRequest>() {
                match sent {
                    true => &self.firs_sent,
                    false => &self.firs_received,
                }
                .fetch_add(1, Relaxed);
            }
        }
    }
}

impl std::ops::Add for RepairTraffic {
    type Output = RepairTraffic;
    fn add(self, o: RepairTraffic) -> RepairTraffic {
        RepairTraffic {
            nacks_sent: self.nacks_sent + o.nacks_sent,
            nacked_packets_sent: self.nacked_packets_sent + o.nacked_packets_sent,
            plis_sent: self.plis_sent + o.plis_sent,
            firs_sent: self.firs_sent + o.firs_sent,
            nacks_received: self.nacks_received + o.nacks_received,
            nacked_packets_received: self.nacked_packets_received + o.nacked_packets_received,
            plis_received: self.plis_received + o.plis_received,
            firs_received: self.firs_received + o.firs_received,
            rtp_sent: self.rtp_sent + o.rtp_sent,
            rtp_resent: self.rtp_resent + o.rtp_resent,
        }
    }
}

/// The counters of every peer connection [`super::new_peer_connection`]
/// builds in this process (the streamer's and the SFU's totals).
pub fn process_totals() -> Arc<RepairCounters> {
    static TOTALS: OnceLock<Arc<RepairCounters>> = OnceLock::new();
    TOTALS.get_or_init(Arc::default).clone()
}

/// Which of the last [`SeqWindow::SPAN`] sequence numbers of one SSRC went out.
#[derive(Debug)]
struct SeqWindow {
    highest: u16,
    sent: [u64; Self::SPAN / 64],
}

impl SeqWindow {
    /// Retransmissions answer NACKs for at most ~1 s of video (webrtc-rs's
    /// responder keeps [`super::NACK_HISTORY`] packets): 2048 is ample.
    const SPAN: usize = 2048;

    fn new(seq: u16) -> Self {
        let mut w = SeqWindow { highest: seq, sent: [0; Self::SPAN / 64] };
        w.set(seq);
        w
    }

    fn bit(seq: u16) -> (usize, u64) {
        let i = usize::from(seq) % Self::SPAN;
        (i / 64, 1 << (i % 64))
    }

    fn set(&mut self, seq: u16) {
        let (w, b) = Self::bit(seq);
        self.sent[w] |= b;
    }

    /// Record `seq`; true if it went out before (within the window).
    fn record(&mut self, seq: u16) -> bool {
        let ahead = seq.wrapping_sub(self.highest);
        if ahead != 0 && ahead < 0x8000 {
            // Newer: clear the bits the window moves over.
            for s in 1..=ahead.min(Self::SPAN as u16) {
                let (w, b) = Self::bit(self.highest.wrapping_add(s));
                self.sent[w] &= !b;
            }
            self.highest = seq;
            self.set(seq);
            return false;
        }
        let behind = self.highest.wrapping_sub(seq);
        if usize::from(behind) >= Self::SPAN {
            return false;
        }
        let (w, b) = Self::bit(seq);
        let again = self.sent[w] & b != 0;
        self.sent[w] |= b;
        again
    }
}

/// The counting interceptor (see the module doc).
pub struct CountRepairTraffic {
    counters: Arc<RepairCounters>,
    sent: HashMap<u32, SeqWindow>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl CountRepairTraffic {
    pub fn new(counters: Arc<RepairCounters>) -> Self {
        CountRepairTraffic { counters, sent: HashMap::new(), read_queue: VecDeque::new(), write_queue: VecDeque::new() }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for CountRepairTraffic {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            self.counters.count_rtcp(packets, false);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        match &msg.message.packet {
            Packet::Rtcp(packets) => self.counters.count_rtcp(packets, true),
            Packet::Rtp(rtp) => {
                self.counters.rtp_sent.fetch_add(1, Relaxed);
                let seq = rtp.header.sequence_number;
                let again = match self.sent.get_mut(&rtp.header.ssrc) {
                    Some(w) => w.record(seq),
                    None => {
                        self.sent.insert(rtp.header.ssrc, SeqWindow::new(seq));
                        false
                    }
                };
                if again {
                    self.counters.rtp_resent.fetch_add(1, Relaxed);
                }
            }
            _ => {}
        }
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for CountRepairTraffic {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.sent.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;

    #[test]
    fn a_window_tells_resends_from_new_packets_across_the_wrap() {
        let mut w = SeqWindow::new(65_530);
        for s in 65_531..=65_535u16 {
            assert!(!w.record(s));
        }
        for s in 0..10u16 {
            assert!(!w.record(s));
        }
        assert!(w.record(65_533), "resent");
        assert!(w.record(3), "resent");
        // Far behind the window: not judged.
        assert!(!w.record(60_000));
        // A jump ahead forgets what it moved over.
        assert!(!w.record(5_000));
        assert!(!w.record(4_000));
        assert!(w.record(4_000));
    }

    #[test]
    fn counts_rtcp_each_way() {
        let c = RepairCounters::default();
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 2,
            nacks: vec![NackPair { packet_id: 10, lost_packets: 0b101 }],
        };
        let pli = PictureLossIndication { sender_ssrc: 1, media_ssrc: 2 };
        let packets: Vec<Box<dyn ::rtc::rtcp::Packet>> = vec![Box::new(nack), Box::new(pli)];
        c.count_rtcp(&packets, true);
        c.count_rtcp(&packets[..1], false);
        let t = c.snapshot();
        assert_eq!((t.nacks_sent, t.nacked_packets_sent, t.plis_sent), (1, 3, 1));
        assert_eq!((t.nacks_received, t.nacked_packets_received, t.plis_received), (1, 3, 0));
    }
}
