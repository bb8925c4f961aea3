//! How far the player's clock is from the streamer's, for frame latencies
//! across hosts.
//!
//! Each `LatencyTest` round trip is an NTP-style exchange: the player sends
//! at t1 (its clock), the streamer receives at t2 and answers at t3 (its
//! clock: `ReceiptTimeMs`, `TransmissionTimeMs`, which Unreal and our mock
//! streamer both send), the player receives at t4. The offset estimate is
//! ((t2 − t1) + (t3 − t4)) / 2, exact when both ways take equally long; the
//! round trip with the smallest network time bounds its error best, so that
//! one is kept. Without `--latency-test` there is no exchange: the player
//! assumes one clock (the same host, or hosts kept in step by NTP), and
//! the report says so.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use serde::Serialize;

/// The best estimate so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OffsetEstimate {
    /// Our clock minus the streamer's, ms.
    pub offset_ms: f64,
    /// Network time of the round trip it came from (t4 − t1 − (t3 − t2)), ms.
    pub network_rtt_ms: f64,
    pub samples: u64,
}

impl OffsetEstimate {
    /// Add one exchange (all times ms since 1970; t1, t4 ours, t2, t3 the streamer's).
    pub fn add(&mut self, t1: f64, t2: f64, t3: f64, t4: f64) {
        if ![t1, t2, t3, t4].iter().all(|t| t.is_finite()) || t4 < t1 || t3 < t2 {
            return;
        }
        let network = (t4 - t1) - (t3 - t2);
        let streamer_minus_ours = ((t2 - t1) + (t3 - t4)) / 2.0;
        if self.samples == 0 || network < self.network_rtt_ms {
            self.offset_ms = -streamer_minus_ours;
            self.network_rtt_ms = network.max(0.0);
        }
        self.samples += 1;
    }
}

/// The offset a player's latencies use, as its report states it.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ClockOffsetReport {
    /// Our clock minus the streamer's, ms (0 when assumed).
    pub offset_ms: f64,
    /// "assumed: one clock (no --latency-test)" or how it was estimated.
    pub source: String,
}

/// The offset shared between a player's data channel (which estimates it)
/// and its track readers (which use it).
#[derive(Debug, Default)]
pub struct SharedClockOffset {
    /// 0: assumed zero; 1: awaiting the first estimate; 2: estimated.
    state: AtomicU8,
    bits: AtomicU64,
}

impl SharedClockOffset {
    /// Latencies wait for an estimate (with `--latency-test`).
    pub fn await_estimate(&self) {
        if self.state.load(Ordering::Relaxed) == 0 {
            self.state.store(1, Ordering::Relaxed);
        }
    }

    pub fn set(&self, offset_ms: f64) {
        self.bits.store(offset_ms.to_bits(), Ordering::Relaxed);
        self.state.store(2, Ordering::Relaxed);
    }

    /// The offset to use now; `None` while awaiting the first estimate.
    pub fn get(&self) -> Option<f64> {
        match self.state.load(Ordering::Relaxed) {
            0 => Some(0.0),
            1 => None,
            _ => Some(f64::from_bits(self.bits.load(Ordering::Relaxed))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_delayed_round_trip_wins() {
        let mut e = OffsetEstimate::default();
        // Streamer 500 ms behind us; 10 ms each way, 2 ms processing.
        e.add(1000.0, 510.0 - 0.0, 512.0, 1022.0);
        assert!((e.offset_ms - 500.0).abs() < 1e-9, "{e:?}");
        assert!((e.network_rtt_ms - 20.0).abs() < 1e-9);
        // An asymmetric, slower exchange does not replace it.
        e.add(2000.0, 1560.0, 1561.0, 2031.0);
        assert!((e.offset_ms - 500.0).abs() < 1e-9);
        assert_eq!(e.samples, 2);
        // Nonsense is ignored.
        e.add(5.0, 1.0, 0.0, 4.0);
        assert_eq!(e.samples, 2);
    }

    #[test]
    fn shared_offset_states() {
        let s = SharedClockOffset::default();
        assert_eq!(s.get(), Some(0.0));
        s.await_estimate();
        assert_eq!(s.get(), None);
        s.set(-3.5);
        assert_eq!(s.get(), Some(-3.5));
        s.await_estimate();
        assert_eq!(s.get(), Some(-3.5));
    }
}
