//! Per-track receive counters, the same work per packet as mock-player's
//! `RtpStats`: packets, bytes, frames (a new RTP timestamp), keyframes,
//! RFC 3550 loss (expected − received) and interarrival jitter.

use std::time::Instant;

use proto::rtp_payload::Codec;
use serde::Serialize;

/// One track's counters.
#[derive(Debug)]
pub struct RtpCount {
    codec: Codec,
    clock_rate: f64,
    pub packets: u64,
    pub bytes: u64,
    pub frames: u64,
    pub keyframes: u64,
    last_timestamp: Option<u32>,
    frame_is_key: bool,
    base_seq: u64,
    max_ext_seq: Option<u64>,
    jitter: f64,
    last_transit: Option<f64>,
    epoch: Option<Instant>,
}

/// What a track reports at the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrackTotals {
    pub packets: u64,
    pub bytes: u64,
    pub frames: u64,
    pub keyframes: u64,
    pub lost: u64,
    pub jitter_ms: f64,
}

impl RtpCount {
    pub fn new(codec: Codec, clock_rate: u32) -> RtpCount {
        RtpCount {
            codec,
            clock_rate: f64::from(clock_rate.max(1)),
            packets: 0,
            bytes: 0,
            frames: 0,
            keyframes: 0,
            last_timestamp: None,
            frame_is_key: false,
            base_seq: 0,
            max_ext_seq: None,
            jitter: 0.0,
            last_transit: None,
            epoch: None,
        }
    }

    /// Account for one packet. Returns `(new_frame, new_keyframe)`.
    pub fn on_packet(&mut self, now: Instant, seq: u16, timestamp: u32, payload: &[u8]) -> (bool, bool) {
        self.packets += 1;
        self.bytes += payload.len() as u64;
        self.on_seq(seq);
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = now.duration_since(epoch).as_secs_f64() * self.clock_rate;
        let transit = arrival - f64::from(timestamp);
        if let Some(last) = self.last_transit.replace(transit) {
            self.jitter += ((transit - last).abs() - self.jitter) / 16.0;
        }
        let new_frame = self.last_timestamp != Some(timestamp);
        if new_frame {
            self.frames += 1;
            self.last_timestamp = Some(timestamp);
            self.frame_is_key = false;
        }
        let mut new_key = false;
        if !self.frame_is_key && self.codec.is_keyframe_start(payload) {
            self.frame_is_key = true;
            self.keyframes += 1;
            new_key = true;
        }
        (new_frame, new_key)
    }

    fn on_seq(&mut self, seq: u16) {
        let Some(max) = self.max_ext_seq else {
            self.base_seq = u64::from(seq);
            self.max_ext_seq = Some(u64::from(seq));
            return;
        };
        // Extend to 64 bits: the candidate nearest to the highest seen.
        let cycle = max & !0xffff;
        let ext = [cycle.wrapping_sub(0x10000), cycle, cycle + 0x10000]
            .into_iter()
            .map(|c| c.wrapping_add(u64::from(seq)))
            .min_by_key(|e| e.abs_diff(max))
            .unwrap_or(max);
        if ext > max {
            self.max_ext_seq = Some(ext);
        }
    }

    pub fn totals(&self) -> TrackTotals {
        let expected = self.max_ext_seq.map_or(0, |m| m - self.base_seq + 1);
        TrackTotals {
            packets: self.packets,
            bytes: self.bytes,
            frames: self.frames,
            keyframes: self.keyframes,
            lost: expected.saturating_sub(self.packets),
            jitter_ms: self.jitter / self.clock_rate * 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_loss_across_a_wrap() {
        let mut c = RtpCount::new(Codec::Other, 90_000);
        let t = Instant::now();
        for (seq, ts) in [(65534u16, 1u32), (65535, 1), (1, 2), (2, 3)] {
            c.on_packet(t, seq, ts, &[0]);
        }
        let totals = c.totals();
        assert_eq!((totals.packets, totals.frames, totals.lost), (4, 3, 1));
    }
}
