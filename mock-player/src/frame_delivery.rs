//! When each video frame could be decoded, without decoding it.
//!
//! Packets are grouped into frames by RTP timestamp; a frame is complete when
//! every sequence number from its first packet to its marker packet arrived.
//! Frames are released in order, as a decoder takes them: a complete frame
//! goes when the frame before it went (its first packet follows that one's
//! marker), a complete keyframe goes at once and gives up every frame
//! before it. A frame that never completes holds back the frames after it
//! until a keyframe: a freeze, as a browser shows it.
//!
//! From the release times: per-frame latency (release on our clock minus
//! the `abs-capture-time` the streamer stamped, less the clock offset), and
//! freezes as the WebRTC statistics define them (`freezeCount`,
//! `totalFreezesDuration`): an inter-frame gap longer than
//! max(3 × the average frame interval, average + 150 ms), the average taken
//! over the last 30 intervals. Sans-I/O: the track reader feeds packets.

use std::collections::VecDeque;
use std::time::Instant;

use serde::Serialize;

use crate::latency_histogram::{LatencyHistogram, LatencySummary};

/// Intervals in the freeze detector's running average (libwebrtc's window).
const AVERAGE_OVER: usize = 30;
/// Frames held at most; beyond, the oldest is given up.
const MAX_PENDING: usize = 256;

#[derive(Debug, Clone)]
struct PendingFrame {
    timestamp: u32,
    keyframe: bool,
    first_seq: u64,
    marker_seq: Option<u64>,
    packets: u64,
    capture_ms: Option<f64>,
}

impl PendingFrame {
    fn complete(&self) -> bool {
        self.marker_seq.is_some_and(|m| m >= self.first_seq && m - self.first_seq + 1 == self.packets)
    }
}

/// One video track's frame delivery (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct FrameDelivery {
    pending: VecDeque<PendingFrame>,
    /// The marker sequence number of the last frame released.
    released_end: Option<u64>,
    /// A keyframe was released: frames before the first are not judged.
    started: bool,
    pub released: u64,
    /// Frames given up: never completed, or skipped by a later keyframe.
    pub abandoned: u64,
    latency: LatencyHistogram,
    /// Subtracted from each latency: our clock minus the streamer's;
    /// `None` while unknown (no latency is recorded then).
    pub clock_offset_ms: Option<f64>,
    last_release: Option<Instant>,
    intervals: VecDeque<f64>,
    pub freezes: u64,
    pub frozen_secs: f64,
}

/// What [`FrameDelivery`] measured, as reports carry it.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct DeliverySummary {
    /// Frames released complete (decodable).
    pub frames_complete: u64,
    /// Frames given up incomplete.
    pub frames_incomplete: u64,
    /// Capture → decodable latency of each frame with a capture time.
    pub latency: LatencySummary,
    pub freezes: u64,
    pub frozen_secs: f64,
}

impl FrameDelivery {
    /// One new (not duplicate) packet: extended sequence number `seq`, RTP
    /// `timestamp`, marker bit, whether it starts a keyframe, its
    /// `abs-capture-time` (ms since 1970, sender's clock); `now` and
    /// `now_unix_ms` are its arrival on our clocks.
    #[allow(clippy::too_many_arguments)]
    pub fn on_packet(
        &mut self,
        now: Instant,
        now_unix_ms: f64,
        seq: u64,
        timestamp: u32,
        marker: bool,
        keyframe: bool,
        capture_ms: Option<f64>,
    ) {
        if self.released_end.is_some_and(|end| seq <= end) {
            return; // a late copy of a packet of a frame already released
        }
        let frame = match self.pending.iter().position(|f| f.timestamp == timestamp) {
            Some(i) => &mut self.pending[i],
            None => {
                let at = self.pending.iter().position(|f| f.first_seq > seq).unwrap_or(self.pending.len());
                self.pending.insert(
                    at,
                    PendingFrame {
                        timestamp,
                        keyframe: false,
                        first_seq: seq,
                        marker_seq: None,
                        packets: 0,
                        capture_ms,
                    },
                );
                &mut self.pending[at]
            }
        };
        frame.packets += 1;
        frame.first_seq = frame.first_seq.min(seq);
        frame.keyframe |= keyframe;
        if marker {
            frame.marker_seq = Some(seq);
        }
        if frame.capture_ms.is_none() {
            frame.capture_ms = capture_ms;
        }
        self.release(now, now_unix_ms);
        while self.pending.len() > MAX_PENDING {
            self.give_up_front();
        }
    }

    fn release(&mut self, now: Instant, now_unix_ms: f64) {
        loop {
            let Some(front) = self.pending.front() else { return };
            let follows = self.released_end.is_some_and(|end| front.first_seq == end + 1);
            if front.complete() && (front.keyframe || (self.started && follows)) {
                let Some(f) = self.pending.pop_front() else { return };
                self.deliver(&f, now, now_unix_ms);
                continue;
            }
            match self.pending.iter().position(|f| f.keyframe && f.complete()) {
                Some(k) if k > 0 => {
                    for _ in 0..k {
                        self.give_up_front();
                    }
                }
                _ => return,
            }
        }
    }

    fn give_up_front(&mut self) {
        if self.pending.pop_front().is_some() && self.started {
            self.abandoned += 1;
        }
    }

    fn deliver(&mut self, f: &PendingFrame, now: Instant, now_unix_ms: f64) {
        self.started = true;
        self.released += 1;
        self.released_end = f.marker_seq;
        if let (Some(captured), Some(offset)) = (f.capture_ms, self.clock_offset_ms) {
            self.latency.record(now_unix_ms - captured - offset);
        }
        if let Some(last) = self.last_release {
            let gap = now.duration_since(last).as_secs_f64();
            if self.intervals.len() >= 5 {
                let average = self.intervals.iter().sum::<f64>() / self.intervals.len() as f64;
                if gap > (3.0 * average).max(average + 0.150) {
                    self.freezes += 1;
                    self.frozen_secs += gap;
                }
            }
            self.intervals.push_back(gap);
            if self.intervals.len() > AVERAGE_OVER {
                self.intervals.pop_front();
            }
        }
        self.last_release = Some(now);
    }

    /// A delivery whose clock offset is known: zero (one clock).
    pub fn one_clock() -> Self {
        FrameDelivery { clock_offset_ms: Some(0.0), ..Default::default() }
    }

    pub fn summary(&self) -> DeliverySummary {
        DeliverySummary {
            frames_complete: self.released,
            frames_incomplete: self.abandoned,
            latency: self.latency.summary(),
            freezes: self.freezes,
            frozen_secs: self.frozen_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Frames of `per` packets at 30 fps from `t0`, each with its capture
    /// time 20 ms before its first packet; `skip(frame, packet)` drops packets.
    fn feed(d: &mut FrameDelivery, frames: u32, per: u64, skip: impl Fn(u32, u64) -> bool) -> Instant {
        let t0 = Instant::now();
        let mut now = t0;
        for f in 0..frames {
            now = t0 + Duration::from_millis(u64::from(f) * 33);
            let unix = 1_000_000.0 + f64::from(f) * 33.0;
            for p in 0..per {
                if skip(f, p) {
                    continue;
                }
                let seq = u64::from(f) * per + p;
                d.on_packet(now, unix, seq, f * 3000, p == per - 1, f % 30 == 0 && p == 0, Some(unix - 20.0));
            }
        }
        now
    }

    #[test]
    fn a_clean_stream_releases_every_frame_with_its_latency() {
        let mut d = FrameDelivery::one_clock();
        feed(&mut d, 60, 3, |_, _| false);
        let s = d.summary();
        assert_eq!((s.frames_complete, s.frames_incomplete, s.freezes), (60, 0, 0));
        assert_eq!(s.latency.n, 60);
        assert!((s.latency.p50_ms - 20.0).abs() < 0.5, "{s:?}");
    }

    #[test]
    fn a_repaired_packet_delays_its_frame_and_the_next() {
        let t0 = Instant::now();
        let mut d = FrameDelivery::one_clock();
        let pkt = |d: &mut FrameDelivery, ms: u64, seq: u64, f: u32, marker: bool, key: bool| {
            let unix = 1_000_000.0 + ms as f64;
            d.on_packet(
                t0 + Duration::from_millis(ms),
                unix,
                seq,
                f * 3000,
                marker,
                key,
                Some(1_000_000.0 + f64::from(f) * 33.0),
            );
        };
        pkt(&mut d, 0, 0, 0, true, true);
        pkt(&mut d, 33, 1, 1, false, false); // seq 2 (frame 1's marker) lost
        pkt(&mut d, 66, 3, 2, true, false);
        assert_eq!(d.released, 1, "frame 1 incomplete holds frame 2");
        pkt(&mut d, 120, 2, 1, true, false); // the retransmission
        assert_eq!(d.released, 3);
        let s = d.summary();
        // Frame 1 released at 120 ms, captured at 33: 87 ms.
        assert!((s.latency.max_ms - 87.0).abs() < 2.0, "{s:?}");
    }

    #[test]
    fn an_unrepaired_loss_freezes_until_the_next_keyframe() {
        let mut d = FrameDelivery::one_clock();
        // One packet of frame 40 never arrives: frames 41..59 wait for the keyframe at 60.
        feed(&mut d, 90, 2, |f, p| f == 40 && p == 0);
        let s = d.summary();
        assert_eq!(s.freezes, 1, "{s:?}");
        // The gap: frame 39 at 39×33 ms, frame 60 at 60×33 ms.
        assert!((s.frozen_secs - 21.0 * 0.033).abs() < 0.002, "{s:?}");
        assert_eq!(s.frames_incomplete, 20, "frame 40 and the 19 after it");
        assert_eq!(s.frames_complete, 70);
    }

    #[test]
    fn frames_before_the_first_keyframe_are_not_judged() {
        let mut d = FrameDelivery::one_clock();
        let t0 = Instant::now();
        d.on_packet(t0, 0.0, 10, 100, true, false, None);
        d.on_packet(t0, 0.0, 11, 200, true, true, None);
        assert_eq!((d.released, d.abandoned), (1, 0));
    }
}
