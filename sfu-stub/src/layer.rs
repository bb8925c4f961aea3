//! Per-player layer selection and RTP rewriting (sans I/O).
//!
//! A player receives one layer (simulcast encoding) of a track. It starts at
//! a keyframe of its target layer, and a new target takes effect at the next
//! keyframe of the new layer. Sequence numbers and timestamps are rewritten
//! so that the player sees one continuous stream whichever layers it got.

use std::time::Instant;

/// What to do with one upstream packet for one player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it with these header values.
    Forward { sequence_number: u16, timestamp: u32, switched: bool },
    /// Not for this player (another layer, or waiting for a keyframe).
    Drop,
    /// Waiting for a keyframe of `layer`: one should be asked for.
    NeedKeyframe { layer: usize },
}

/// The layer state of one player and one track.
#[derive(Debug, Clone)]
pub struct LayerSelector {
    needs_keyframe: bool,
    clock_rate: u32,
    target: usize,
    current: Option<usize>,
    seq_offset: u16,
    ts_offset: u32,
    last_out: Option<(u16, u32, Instant)>,
}

impl LayerSelector {
    /// `needs_keyframe`: video that must start at a keyframe.
    pub fn new(target: usize, needs_keyframe: bool, clock_rate: u32) -> Self {
        LayerSelector {
            needs_keyframe,
            clock_rate: clock_rate.max(1),
            target,
            current: None,
            seq_offset: 0,
            ts_offset: 0,
            last_out: None,
        }
    }

    pub fn target(&self) -> usize {
        self.target
    }

    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// Switch to `layer` at its next keyframe (the current layer goes on
    /// until then).
    pub fn set_target(&mut self, layer: usize) {
        self.target = layer;
    }

    /// Packets were lost for this player: wait for a keyframe again.
    pub fn resync(&mut self) {
        if self.needs_keyframe {
            self.current = None;
        }
    }

    /// Decide about one packet of `layer`; `keyframe_start`: it begins a keyframe.
    pub fn on_packet(
        &mut self,
        now: Instant,
        layer: usize,
        sequence_number: u16,
        timestamp: u32,
        keyframe_start: bool,
    ) -> Verdict {
        let mut switched = false;
        if self.current != Some(self.target) && layer == self.target {
            if self.needs_keyframe && !keyframe_start {
                return match self.current {
                    // Still on the old layer: no need to nag for every packet.
                    Some(_) => Verdict::Drop,
                    None => Verdict::NeedKeyframe { layer },
                };
            }
            // Start (or switch to) this layer here: continue the numbering.
            match self.last_out {
                Some((seq, ts, at)) => {
                    let elapsed = now.saturating_duration_since(at).as_secs_f64();
                    let ticks = ((elapsed * f64::from(self.clock_rate)) as u32).max(1);
                    self.seq_offset = seq.wrapping_add(1).wrapping_sub(sequence_number);
                    self.ts_offset = ts.wrapping_add(ticks).wrapping_sub(timestamp);
                }
                None => {
                    self.seq_offset = 0;
                    self.ts_offset = 0;
                }
            }
            switched = self.current.is_some();
            self.current = Some(layer);
        }
        if self.current != Some(layer) {
            return match (self.current, self.needs_keyframe) {
                (None, true) => Verdict::NeedKeyframe { layer: self.target },
                _ => Verdict::Drop,
            };
        }
        let out_seq = sequence_number.wrapping_add(self.seq_offset);
        let out_ts = timestamp.wrapping_add(self.ts_offset);
        self.last_out = Some((out_seq, out_ts, now));
        Verdict::Forward { sequence_number: out_seq, timestamp: out_ts, switched }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fwd(v: Verdict) -> (u16, u32) {
        match v {
            Verdict::Forward { sequence_number, timestamp, .. } => (sequence_number, timestamp),
            other => panic!("expected Forward, got {other:?}"),
        }
    }

    #[test]
    fn starts_at_a_keyframe_of_the_target() {
        let t = Instant::now();
        let mut s = LayerSelector::new(1, true, 90_000);
        assert_eq!(s.on_packet(t, 1, 10, 1000, false), Verdict::NeedKeyframe { layer: 1 });
        assert_eq!(s.on_packet(t, 0, 50, 5000, true), Verdict::NeedKeyframe { layer: 1 });
        assert_eq!(fwd(s.on_packet(t, 1, 11, 1000, true)), (11, 1000));
        assert_eq!(fwd(s.on_packet(t, 1, 12, 4000, false)), (12, 4000));
        assert_eq!(s.on_packet(t, 0, 51, 8000, false), Verdict::Drop);
    }

    #[test]
    fn switches_at_the_new_layers_keyframe_with_continuous_numbering() {
        let t = Instant::now();
        let mut s = LayerSelector::new(0, true, 90_000);
        assert_eq!(fwd(s.on_packet(t, 0, 100, 9000, true)), (100, 9000));
        assert_eq!(fwd(s.on_packet(t, 0, 101, 9000, false)), (101, 9000));
        s.set_target(2);
        // Layer 2 without keyframe: still layer 0.
        assert_eq!(s.on_packet(t, 2, 7000, 1, false), Verdict::Drop);
        assert_eq!(fwd(s.on_packet(t, 0, 102, 12000, false)), (102, 12000));
        let later = t + Duration::from_millis(33);
        let v = s.on_packet(later, 2, 7001, 500, true);
        assert!(matches!(v, Verdict::Forward { sequence_number: 103, switched: true, .. }), "{v:?}");
        let (_, ts) = fwd(v);
        assert!(ts > 12000 && ts < 12000 + 4000, "{ts}");
        assert_eq!(fwd(s.on_packet(later, 2, 7002, 500, false)), (104, ts));
        assert_eq!(s.on_packet(later, 0, 103, 15000, true), Verdict::Drop);
        assert_eq!(s.current(), Some(2));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t = Instant::now();
        let mut s = LayerSelector::new(0, true, 90_000);
        fwd(s.on_packet(t, 0, 65535, u32::MAX, true));
        s.set_target(1);
        assert_eq!(fwd(s.on_packet(t, 1, 10, 0, true)).0, 0);
    }

    #[test]
    fn audio_needs_no_keyframe_and_resync() {
        let t = Instant::now();
        let mut s = LayerSelector::new(0, false, 48_000);
        assert_eq!(fwd(s.on_packet(t, 0, 1, 1, false)), (1, 1));
        s.resync();
        assert_eq!(fwd(s.on_packet(t, 0, 2, 961, false)), (2, 961));
        let mut v = LayerSelector::new(0, true, 90_000);
        fwd(v.on_packet(t, 0, 1, 1, true));
        v.resync();
        assert_eq!(v.on_packet(t, 0, 2, 2, false), Verdict::NeedKeyframe { layer: 0 });
        // After a resync the numbering continues.
        assert_eq!(fwd(v.on_packet(t, 0, 9, 3, true)).0, 2);
    }
}
