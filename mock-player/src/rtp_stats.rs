//! RTP statistics for one received track, without decoding any media.
//!
//! Counts packets, bytes, frames (a new RTP timestamp starts a frame),
//! keyframes and the picture size (H.264 from each SPS, VP8 and VP9 from each
//! keyframe's header, AV1 from each sequence header OBU: see
//! [`proto::rtp_payload`]),
//! sequence gaps (RFC 3550 expected − received), interarrival jitter
//! (RFC 3550 §6.4.1), retransmissions (a missing sequence number that
//! arrives late) and duplicates, and for video each frame's delivery
//! ([`FrameDelivery`]: latency, freezes, completeness).

use std::time::Instant;

use serde::Serialize;

pub use proto::rtp_payload::Codec;

use crate::frame_delivery::{DeliverySummary, FrameDelivery};

/// One arriving RTP packet, as the track reader hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub now: Instant,
    /// `now` on the wall clock, ms since 1970.
    pub now_unix_ms: f64,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
    /// The packet's `abs-capture-time`, ms since 1970 on the sender's clock.
    pub capture_ms: Option<f64>,
    /// Our clock minus the sender's, ms; `None`: not known yet.
    pub clock_offset_ms: Option<f64>,
}

/// Sequence numbers seen lately (for retransmissions and duplicates).
const SEEN_SPAN: u64 = 4096;

/// Running statistics for one track.
#[derive(Debug, Clone)]
pub struct RtpStats {
    /// What keyframe and picture-size detection the payloads get.
    pub codec: Codec,
    /// The negotiated codec's name as its MIME subtype has it (`H264`,
    /// `VP8`, `opus`, …); empty until the track knows it.
    pub codec_name: String,
    pub kind: String,
    pub clock_rate: u32,
    pub packets: u64,
    /// RTP payload bytes.
    pub bytes: u64,
    pub frames: u64,
    pub keyframes: u64,
    pub first_packet: Option<Instant>,
    pub first_keyframe: Option<Instant>,
    pub last_packet: Option<Instant>,
    /// Keyframe requests (RTCP PLI) the player sent about this track.
    pub plis_sent: u64,
    /// From the last H.264 SPS or VP8 key frame header seen.
    pub resolution: Option<(u32, u32)>,
    /// Packets that filled a gap in the sequence (arrived after later ones:
    /// retransmissions, on a path that keeps order).
    pub retransmitted: u64,
    /// Packets received twice (not counted in `packets`).
    pub duplicates: u64,
    /// Video only.
    pub delivery: Option<FrameDelivery>,
    seen: Vec<u64>,
    last_timestamp: Option<u32>,
    frame_is_key: bool,
    // Sequence tracking (RFC 3550 appendix A.1, simplified).
    base_seq: u32,
    max_ext_seq: Option<u32>,
    // Jitter.
    jitter: f64,
    last_transit: Option<i64>,
    epoch: Option<Instant>,
}

/// A finished (or current) view of [`RtpStats`].
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TrackSummary {
    pub kind: String,
    pub codec: String,
    pub packets: u64,
    pub bytes: u64,
    pub frames: u64,
    pub keyframes: u64,
    /// Keyframe requests (RTCP PLI) the player sent.
    pub plis_sent: u64,
    pub lost: u64,
    /// Fraction of expected packets that never arrived, 0..1.
    pub loss: f64,
    pub jitter_ms: f64,
    /// Seconds between the first and last packet.
    pub active_secs: f64,
    pub fps: f64,
    pub bitrate_bps: f64,
    /// Picture size from the last H.264 SPS or VP8 key frame received (0 when
    /// none was seen, and for audio).
    pub width: u32,
    pub height: u32,
    /// Packets that arrived to fill a gap (retransmissions).
    pub retransmitted: u64,
    pub duplicates: u64,
    /// Video: frames complete, latency, freezes.
    pub delivery: DeliverySummary,
}

impl RtpStats {
    pub fn new(codec: Codec, kind: &str, clock_rate: u32) -> Self {
        RtpStats {
            codec,
            codec_name: String::new(),
            kind: kind.to_string(),
            clock_rate: clock_rate.max(1),
            packets: 0,
            bytes: 0,
            frames: 0,
            keyframes: 0,
            first_packet: None,
            first_keyframe: None,
            last_packet: None,
            plis_sent: 0,
            resolution: None,
            retransmitted: 0,
            duplicates: 0,
            delivery: (kind == "video").then(FrameDelivery::default),
            seen: vec![0; (SEEN_SPAN / 64) as usize],
            last_timestamp: None,
            frame_is_key: false,
            base_seq: 0,
            max_ext_seq: None,
            jitter: 0.0,
            last_transit: None,
            epoch: None,
        }
    }

    /// Account for one packet (test shorthand: no marker, no capture time).
    pub fn on_packet(&mut self, now: Instant, seq: u16, timestamp: u32, payload: &[u8]) -> (bool, bool) {
        let arrival = Arrival {
            now,
            now_unix_ms: 0.0,
            seq,
            timestamp,
            marker: false,
            payload,
            capture_ms: None,
            clock_offset_ms: None,
        };
        self.on_arrival(&arrival)
    }

    /// Account for one packet. Returns `(new_frame, new_keyframe)`.
    pub fn on_arrival(&mut self, a: &Arrival<'_>) -> (bool, bool) {
        let (now, timestamp, payload) = (a.now, a.timestamp, a.payload);
        let previous_max = self.max_ext_seq;
        let ext = self.on_seq(a.seq);
        if previous_max.is_some() && self.was_seen(ext) {
            self.duplicates += 1;
            return (false, false);
        }
        if previous_max.is_some_and(|m| ext < u64::from(m)) {
            self.retransmitted += 1;
        }
        self.mark_seen(ext);
        self.packets += 1;
        self.bytes += payload.len() as u64;
        if self.first_packet.is_none() {
            self.first_packet = Some(now);
        }
        self.last_packet = Some(now);
        self.on_jitter(now, timestamp);
        // Read once per packet: the frame delivery and the keyframe count both need it.
        let starts_keyframe = self.codec.is_keyframe_start(payload);
        if let Some(d) = self.delivery.as_mut() {
            d.clock_offset_ms = a.clock_offset_ms;
            d.on_packet(now, a.now_unix_ms, ext, timestamp, a.marker, starts_keyframe, a.capture_ms);
        }

        let new_frame = self.last_timestamp != Some(timestamp);
        if new_frame {
            self.frames += 1;
            self.last_timestamp = Some(timestamp);
            self.frame_is_key = false;
        }
        let size = self.codec.keyframe_resolution(payload);
        if size.is_some() {
            self.resolution = size;
        }
        let mut new_key = false;
        if !self.frame_is_key && starts_keyframe {
            self.frame_is_key = true;
            self.keyframes += 1;
            new_key = true;
            if self.first_keyframe.is_none() {
                self.first_keyframe = Some(now);
            }
        }
        (new_frame, new_key)
    }

    fn bit(ext: u64) -> (usize, u64) {
        let i = ext % SEEN_SPAN;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn was_seen(&self, ext: u64) -> bool {
        let max = self.max_ext_seq.map_or(0, u64::from);
        if max >= ext + SEEN_SPAN {
            return false; // too old to tell
        }
        let (w, b) = Self::bit(ext);
        self.seen[w] & b != 0
    }

    fn mark_seen(&mut self, ext: u64) {
        let (w, b) = Self::bit(ext);
        self.seen[w] |= b;
    }

    /// The extended sequence number of `seq`, after updating the highest.
    fn on_seq(&mut self, seq: u16) -> u64 {
        let seq = u32::from(seq);
        match self.max_ext_seq {
            None => {
                self.base_seq = seq;
                self.max_ext_seq = Some(seq);
                u64::from(seq)
            }
            Some(max) => {
                // Extend `seq` to the 32-bit value closest to `max`.
                let cycles = max & !0xffff;
                let mut ext = cycles | seq;
                let diff = i64::from(ext) - i64::from(max);
                if diff < -0x8000 {
                    ext = ext.wrapping_add(0x1_0000);
                } else if diff > 0x8000 && ext >= 0x1_0000 {
                    ext -= 0x1_0000;
                }
                if ext > max {
                    // Forget what the window moves over.
                    for s in (u64::from(max) + 1..=u64::from(ext)).take(SEEN_SPAN as usize) {
                        let (w, b) = Self::bit(s);
                        self.seen[w] &= !b;
                    }
                    self.max_ext_seq = Some(ext);
                }
                u64::from(ext)
            }
        }
    }

    fn on_jitter(&mut self, now: Instant, timestamp: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = (now.duration_since(epoch).as_secs_f64() * f64::from(self.clock_rate)) as i64;
        let transit = arrival - i64::from(timestamp);
        if let Some(prev) = self.last_transit {
            // Timestamps wrap at 2^32: take the difference modulo 2^32.
            let d = ((transit - prev) as i32).unsigned_abs();
            self.jitter += (f64::from(d) - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// Packets expected from the sequence numbers seen.
    pub fn expected(&self) -> u64 {
        self.max_ext_seq.map_or(0, |m| u64::from(m - self.base_seq.min(m)) + 1)
    }

    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.packets)
    }

    pub fn summary(&self) -> TrackSummary {
        let active_secs = match (self.first_packet, self.last_packet) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let expected = self.expected();
        let lost = self.lost();
        let per_sec = |n: f64| {
            if active_secs > 0.0 {
                n / active_secs
            } else {
                0.0
            }
        };
        TrackSummary {
            kind: self.kind.clone(),
            codec: if self.codec_name.is_empty() { "unknown".to_string() } else { self.codec_name.clone() },
            packets: self.packets,
            bytes: self.bytes,
            frames: self.frames,
            keyframes: self.keyframes,
            plis_sent: self.plis_sent,
            lost,
            loss: if expected > 0 { lost as f64 / expected as f64 } else { 0.0 },
            jitter_ms: self.jitter * 1000.0 / f64::from(self.clock_rate),
            active_secs,
            // A frame count over an interval: n frames span n-1 intervals.
            fps: per_sec(self.frames.saturating_sub(1) as f64),
            bitrate_bps: per_sec(self.bytes as f64 * 8.0),
            width: self.resolution.map_or(0, |r| r.0),
            height: self.resolution.map_or(0, |r| r.1),
            retransmitted: self.retransmitted,
            duplicates: self.duplicates,
            delivery: self.delivery.as_ref().map(FrameDelivery::summary).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn arbitrary_payloads_never_panic() {
        use rand::Rng;
        let mut rng = rand::rng();
        let t0 = Instant::now();
        let mut s = RtpStats::new(Codec::H264, "video", 90_000);
        let mut v = RtpStats::new(Codec::Vp8, "video", 90_000);
        for i in 0..20_000u32 {
            let len = rng.random_range(0..24);
            let p: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            s.on_packet(t0, rng.random(), rng.random(), &p);
            v.on_packet(t0, i as u16, i / 3, &p);
        }
        let _ = (s.summary(), v.summary());
    }

    #[test]
    fn frames_loss_and_wrap() {
        let t0 = Instant::now();
        let mut s = RtpStats::new(Codec::H264, "video", 90_000);
        let mut seq: u16 = 65_530;
        for f in 0..10u32 {
            for p in 0..3 {
                let now = t0 + Duration::from_millis(u64::from(f) * 33);
                if !(f == 5 && p == 1) {
                    let payload: &[u8] = if f % 5 == 0 { &[0x65, 0] } else { &[0x41, 0] };
                    s.on_packet(now, seq, f * 3000, payload);
                }
                seq = seq.wrapping_add(1);
            }
        }
        assert_eq!(s.frames, 10);
        assert_eq!(s.keyframes, 2);
        assert_eq!(s.expected(), 30);
        assert_eq!(s.lost(), 1);
        let sum = s.summary();
        assert!((sum.fps - 30.3).abs() < 1.0, "{}", sum.fps);
        assert!(sum.jitter_ms < 5.0);
        // The missing packet, late (a retransmission), then once more (a duplicate).
        let late = Arrival {
            now: t0 + Duration::from_millis(400),
            now_unix_ms: 0.0,
            seq: 65_530u16.wrapping_add(16),
            timestamp: 15_000,
            marker: false,
            payload: &[0x41, 0],
            capture_ms: None,
            clock_offset_ms: None,
        };
        s.on_arrival(&late);
        s.on_arrival(&late);
        assert_eq!((s.lost(), s.retransmitted, s.duplicates, s.packets), (0, 1, 1, 30));
    }
}
