//! The keyframe cache: a fast start for new players.
//!
//! A video player can only start at a keyframe. Asking the streamer for one
//! per joining player is what the rate limiter
//! ([`KeyframeRequester`](crate::keyframe::KeyframeRequester)) must
//! prevent, so without a cache a player that joins just after a keyframe
//! went by waits for the next allowed request (up to `keyframe_interval`).
//! Instead, per layer, the forwarder keeps the packets of the newest
//! keyframe **and of every frame since** (the group of pictures so far) and
//! starts a new player with them, then continues with the live packets:
//!
//! - The keyframe alone would not do: the following P-frames reference the
//!   frames in between, which the player would never get (a decoder would
//!   show corruption or ask for a keyframe). With the whole group every
//!   reference is there (H.264: SPS/PPS + IDR, then each P-frame in order).
//! - The cached packets are exactly those published before the player's
//!   first live packet (snapshot and subscription happen under one lock), so
//!   sequence numbers are contiguous: the player sees no loss.
//! - Their timestamps are rewritten to be one tick apart, ending at the
//!   newest cached frame's real timestamp: the player decodes the backlog at
//!   once and plays on at the live edge instead of staying behind it by the
//!   age of the keyframe (Pixel Streaming is interactive). Frames stay
//!   distinct and in order; from the live packets on, timing is the
//!   streamer's.
//! - The cache is only used while the keyframe is at most `keyframe_cache`
//!   old and the group is under [`CACHE_MAX_BYTES`] (the burst a new player
//!   gets stays small), and only when the group has no gap in sequence
//!   numbers (an upstream loss would make it undecodable). Otherwise the
//!   player asks for a fresh keyframe as before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::packet::LayerPacket;

/// Largest group of pictures (payload bytes) kept per layer for new players.
pub const CACHE_MAX_BYTES: usize = 1 << 20;

/// The newest keyframe of one layer and every packet of that layer since.
#[derive(Debug, Default)]
pub struct GopCache {
    /// When its first packet arrived; `None`: nothing usable cached.
    started: Option<Instant>,
    /// RTP timestamp of the keyframe (its packets may all start a keyframe).
    keyframe_ts: u32,
    last_seq: u16,
    bytes: usize,
    packets: Vec<Arc<LayerPacket>>,
}

impl GopCache {
    fn clear(&mut self) {
        self.started = None;
        self.bytes = 0;
        self.packets = Vec::new();
    }

    /// Add one packet of this layer; returns whether it starts a new keyframe.
    pub fn push(&mut self, now: Instant, item: &Arc<LayerPacket>, max_age: Duration) -> bool {
        let h = &item.packet.header;
        let new_keyframe = item.keyframe && (self.started.is_none() || h.timestamp != self.keyframe_ts);
        if new_keyframe {
            self.clear();
            self.started = Some(now);
            self.keyframe_ts = h.timestamp;
        } else if let Some(started) = self.started {
            // Too old or too big to send a new player, or a hole in it: useless.
            let gap = h.sequence_number != self.last_seq.wrapping_add(1);
            if gap || now.duration_since(started) > max_age || self.bytes + item.packet.payload.len() > CACHE_MAX_BYTES
            {
                self.clear();
            }
        }
        if self.started.is_some() {
            self.last_seq = h.sequence_number;
            self.bytes += item.packet.payload.len();
            self.packets.push(item.clone());
        }
        new_keyframe
    }

    /// Whether the cached group may start a player at `at`.
    pub fn fresh(&self, at: Instant, max_age: Duration) -> bool {
        self.started.is_some_and(|started| at.saturating_duration_since(started) <= max_age)
    }

    /// The cached group if it may start a player now.
    pub fn usable(&self, now: Instant, max_age: Duration) -> Option<Vec<Arc<LayerPacket>>> {
        self.fresh(now, max_age).then(|| self.packets.clone())
    }
}

/// The RTP timestamps to send a cached group of pictures with: its frames
/// one tick apart, the newest keeping its own timestamp (module docs).
pub fn compressed_timestamps(packets: &[Arc<LayerPacket>]) -> Vec<u32> {
    let frames = packets.windows(2).filter(|w| w[0].packet.header.timestamp != w[1].packet.header.timestamp).count();
    let Some(last) = packets.last() else { return Vec::new() };
    let mut ts = last.packet.header.timestamp.wrapping_sub(frames as u32);
    let mut out = Vec::with_capacity(packets.len());
    for (i, p) in packets.iter().enumerate() {
        if i > 0 && p.packet.header.timestamp != packets[i - 1].packet.header.timestamp {
            ts = ts.wrapping_add(1);
        }
        out.push(ts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::header::Header;
    use rtc::rtp::packet::Packet;

    fn item(seq: u16, ts: u32, keyframe: bool, len: usize) -> Arc<LayerPacket> {
        let packet = Packet {
            header: Header { sequence_number: seq, timestamp: ts, ..Default::default() },
            payload: vec![0u8; len].into(),
        };
        Arc::new(LayerPacket { layer: 0, keyframe, packet })
    }

    fn seqs(p: &[Arc<LayerPacket>]) -> Vec<u16> {
        p.iter().map(|u| u.packet.header.sequence_number).collect()
    }

    #[test]
    fn the_cache_holds_the_newest_keyframe_and_every_packet_since() {
        let t = Instant::now();
        let age = Duration::from_secs(1);
        let mut c = GopCache::default();
        // Nothing before the first keyframe.
        assert!(!c.push(t, &item(1, 100, false, 10), age));
        assert!(c.usable(t, age).is_none());
        // A keyframe of two packets (both "start a keyframe", as SPS/PPS + IDR
        // do), then P-frames: one keyframe, all of it kept.
        assert!(c.push(t, &item(2, 200, true, 10), age));
        assert!(!c.push(t, &item(3, 200, true, 10), age));
        c.push(t, &item(4, 300, false, 10), age);
        c.push(t, &item(5, 400, false, 10), age);
        assert_eq!(seqs(&c.usable(t, age).unwrap()), [2, 3, 4, 5]);
        // The next keyframe replaces the group.
        assert!(c.push(t, &item(6, 500, true, 10), age));
        c.push(t, &item(7, 600, false, 10), age);
        assert_eq!(seqs(&c.usable(t, age).unwrap()), [6, 7]);
        // Too old to start a player with.
        assert!(c.usable(t + Duration::from_millis(1001), age).is_none());
        // Sequence numbers wrap.
        c.push(t, &item(65535, 700, true, 10), age);
        c.push(t, &item(0, 800, false, 10), age);
        assert_eq!(seqs(&c.usable(t, age).unwrap()), [65535, 0]);
    }

    #[test]
    fn a_gap_an_old_or_a_big_group_is_not_cached() {
        let t = Instant::now();
        let age = Duration::from_secs(1);
        let mut c = GopCache::default();
        c.push(t, &item(10, 100, true, 10), age);
        // A lost packet: the group would not decode.
        c.push(t, &item(12, 200, false, 10), age);
        assert!(c.usable(t, age).is_none());
        // And stays unusable until the next keyframe.
        c.push(t, &item(13, 300, false, 10), age);
        assert!(c.usable(t, age).is_none());
        c.push(t, &item(14, 400, true, 10), age);
        assert_eq!(seqs(&c.usable(t, age).unwrap()), [14]);
        // Growing past the age limit drops it.
        c.push(t + Duration::from_millis(1500), &item(15, 500, false, 10), age);
        assert!(c.usable(t + Duration::from_millis(1500), age).is_none());
        // So does growing past CACHE_MAX_BYTES.
        c.push(t, &item(16, 600, true, CACHE_MAX_BYTES - 10), age);
        c.push(t, &item(17, 700, false, 10), age);
        assert!(c.usable(t, age).is_some());
        c.push(t, &item(18, 800, false, 1), age);
        assert!(c.usable(t, age).is_none());
    }

    #[test]
    fn cached_frames_are_one_tick_apart_ending_at_the_newest_timestamp() {
        let p = [item(1, 1000, true, 1), item(2, 1000, true, 1), item(3, 4000, false, 1), item(4, 7000, false, 1)];
        assert_eq!(compressed_timestamps(&p), [6998, 6998, 6999, 7000]);
        // One frame: unchanged; wrap-around below zero.
        assert_eq!(compressed_timestamps(&p[..2]), [1000, 1000]);
        let w = [item(1, 3_000_000, true, 1), item(2, 1, false, 1), item(3, 2, false, 1), item(4, 3, false, 1)];
        assert_eq!(compressed_timestamps(&w), [0, 1, 2, 3]);
        let w = [item(1, 5, true, 1), item(2, 6, false, 1), item(3, 7, false, 1), item(4, 1, false, 1)];
        assert_eq!(compressed_timestamps(&w), [u32::MAX - 1, u32::MAX, 0, 1]);
        assert!(compressed_timestamps(&[]).is_empty());
    }
}
