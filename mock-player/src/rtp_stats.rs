//! RTP statistics for one received track, without decoding any media.
//!
//! Counts packets, bytes, frames (a new RTP timestamp starts a frame),
//! keyframes and the picture size (H.264 from each SPS, VP8 and VP9 from each
//! keyframe's header, AV1 from each sequence header OBU: see
//! [`proto::rtp_payload`]),
//! sequence gaps (RFC 3550 expected − received) and interarrival jitter
//! (RFC 3550 §6.4.1).

use std::time::Instant;

use serde::Serialize;

pub use proto::rtp_payload::Codec;

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
        if self.first_packet.is_none() {
            self.first_packet = Some(now);
        }
        self.last_packet = Some(now);
        self.on_seq(seq);
        self.on_jitter(now, timestamp);

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
        if !self.frame_is_key && self.codec.is_keyframe_start(payload) {
            self.frame_is_key = true;
            self.keyframes += 1;
            new_key = true;
            if self.first_keyframe.is_none() {
                self.first_keyframe = Some(now);
            }
        }
        (new_frame, new_key)
    }

    fn on_seq(&mut self, seq: u16) {
        let seq = u32::from(seq);
        match self.max_ext_seq {
            None => {
                self.base_seq = seq;
                self.max_ext_seq = Some(seq);
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
                    self.max_ext_seq = Some(ext);
                }
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
    }
}
