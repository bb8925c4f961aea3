//! When a player asks the sender for a keyframe (RTCP PLI), as a browser's
//! receiver does: when it has nothing it could decode.
//!
//! A browser sends a PLI when video starts without a keyframe and when a
//! loss leaves a frame it cannot complete (after NACK had its chance). The
//! player does the same without decoding: it watches, per video track, for
//! packets with no keyframe yet, and for RTP sequence numbers that stay
//! missing (the RFC 3550 lost count, which retransmissions bring back down).
//! Sans-I/O: [`KeyframeRequests::on_packet`] says when to send one; the
//! track's reader sends it.

use std::time::{Duration, Instant};

/// Packets with no keyframe for this long: ask for one (a sender normally
/// starts with a keyframe; a forwarding SFU may join us mid-GOP).
pub const KEYFRAME_WAIT: Duration = Duration::from_millis(300);
/// Missing packets still missing after this long were not repaired by NACK:
/// the frame they belong to cannot be completed.
pub const REPAIR_WAIT: Duration = Duration::from_millis(500);
/// At most one request per this interval (libwebrtc's receiver also spaces
/// its requests).
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// The keyframe-request state of one video track.
#[derive(Debug, Default)]
pub struct KeyframeRequests {
    first_packet: Option<Instant>,
    keyframe_seen: bool,
    last_request: Option<Instant>,
    /// The lost count already answered (by a request or a repair).
    settled_lost: u64,
    /// Since when the lost count has been above `settled_lost`.
    unrepaired_since: Option<Instant>,
    /// Requests sent.
    pub sent: u64,
}

impl KeyframeRequests {
    /// One packet of the track arrived at `now`; `keyframe` when it starts a
    /// keyframe, `lost` the track's lost count after it. True: send a PLI now.
    pub fn on_packet(&mut self, now: Instant, keyframe: bool, lost: u64) -> bool {
        let first = *self.first_packet.get_or_insert(now);
        if keyframe {
            // A keyframe makes everything before it irrelevant.
            self.keyframe_seen = true;
            self.settled_lost = lost;
            self.unrepaired_since = None;
            return false;
        }
        if lost <= self.settled_lost {
            // Repaired (retransmissions arrived) or nothing new missing.
            self.settled_lost = lost;
            self.unrepaired_since = None;
        } else if self.unrepaired_since.is_none() {
            self.unrepaired_since = Some(now);
        }
        let spaced = self.last_request.is_none_or(|t| now.duration_since(t) >= REQUEST_INTERVAL);
        let no_keyframe = !self.keyframe_seen && now.duration_since(first) >= KEYFRAME_WAIT;
        let unrepaired = self.unrepaired_since.is_some_and(|t| now.duration_since(t) >= REPAIR_WAIT);
        if spaced && (no_keyframe || unrepaired) {
            self.last_request = Some(now);
            self.settled_lost = lost;
            self.unrepaired_since = None;
            self.sent += 1;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_stream_that_starts_with_a_keyframe_and_loses_nothing_gets_no_request() {
        let t0 = Instant::now();
        let mut k = KeyframeRequests::default();
        assert!(!k.on_packet(t0, true, 0));
        assert!((1..100).all(|i| !k.on_packet(ms(t0, i * 33), false, 0)));
        assert_eq!(k.sent, 0);
    }

    #[test]
    fn no_keyframe_after_the_wait_is_requested_once_per_interval() {
        let t0 = Instant::now();
        let mut k = KeyframeRequests::default();
        assert!(!k.on_packet(t0, false, 0));
        assert!(!k.on_packet(ms(t0, 200), false, 0));
        assert!(k.on_packet(ms(t0, 300), false, 0));
        assert!(!k.on_packet(ms(t0, 900), false, 0));
        assert!(k.on_packet(ms(t0, 1300), false, 0));
        assert!(!k.on_packet(ms(t0, 1400), true, 0));
        assert!(!k.on_packet(ms(t0, 3000), false, 0));
        assert_eq!(k.sent, 2);
    }

    #[test]
    fn a_loss_that_retransmission_repairs_is_not_requested() {
        let t0 = Instant::now();
        let mut k = KeyframeRequests::default();
        k.on_packet(t0, true, 0);
        assert!(!k.on_packet(ms(t0, 100), false, 2));
        assert!(!k.on_packet(ms(t0, 200), false, 0));
        assert!(!k.on_packet(ms(t0, 900), false, 0));
        assert_eq!(k.sent, 0);
    }

    #[test]
    fn a_loss_still_missing_after_the_repair_wait_is_requested_once() {
        let t0 = Instant::now();
        let mut k = KeyframeRequests::default();
        k.on_packet(t0, true, 0);
        assert!(!k.on_packet(ms(t0, 100), false, 3));
        assert!(!k.on_packet(ms(t0, 500), false, 3));
        assert!(k.on_packet(ms(t0, 600), false, 3));
        // The same lost packets are not asked about again.
        assert!(!k.on_packet(ms(t0, 2000), false, 3));
        // A new loss is.
        assert!(!k.on_packet(ms(t0, 2100), false, 4));
        assert!(k.on_packet(ms(t0, 2600), false, 4));
        assert_eq!(k.sent, 2);
    }
}
