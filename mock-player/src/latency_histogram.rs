//! Per-frame latencies kept in constant memory: a log-scale histogram (about
//! 2 % relative resolution from 0.1 ms to 100 s), so a player that streams
//! for days keeps a few kilobytes, not a value per frame.

use serde::Serialize;

/// Bucket `i` holds values in `[MIN_MS·GROWTH^i, MIN_MS·GROWTH^(i+1))`.
const MIN_MS: f64 = 0.1;
const GROWTH: f64 = 1.02;
/// ln(100 s / 0.1 ms) / ln(1.02) ≈ 698.
const BUCKETS: usize = 700;

#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    counts: Vec<u32>,
    n: u64,
    max_ms: f64,
    sum_ms: f64,
}

/// A histogram's summary, as reports carry it.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct LatencySummary {
    pub n: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { counts: Vec::new(), n: 0, max_ms: 0.0, sum_ms: 0.0 }
    }
}

impl LatencyHistogram {
    fn bucket(ms: f64) -> usize {
        if ms <= MIN_MS {
            return 0;
        }
        ((ms / MIN_MS).ln() / GROWTH.ln()).floor().clamp(0.0, (BUCKETS - 1) as f64) as usize
    }

    /// Record one latency; negative values (clock skew) count as zero.
    pub fn record(&mut self, ms: f64) {
        if !ms.is_finite() {
            return;
        }
        let ms = ms.max(0.0);
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        self.counts[Self::bucket(ms)] += 1;
        self.n += 1;
        self.sum_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    /// The value at or below which `p` percent of the recorded values lie
    /// (a bucket's geometric middle; the maximum for the last rank).
    fn percentile(&self, p: f64) -> f64 {
        let rank = ((p / 100.0) * self.n as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                let mid = MIN_MS * GROWTH.powf(i as f64 + 0.5);
                return mid.min(self.max_ms);
            }
        }
        self.max_ms
    }

    pub fn summary(&self) -> LatencySummary {
        if self.n == 0 {
            return LatencySummary::default();
        }
        LatencySummary {
            n: self.n,
            p50_ms: self.percentile(50.0),
            p99_ms: self.percentile(99.0),
            max_ms: self.max_ms,
            mean_ms: self.sum_ms / self.n as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_two_percent() {
        let mut h = LatencyHistogram::default();
        for i in 1..=1000 {
            h.record(f64::from(i) / 10.0); // 0.1 .. 100 ms
        }
        let s = h.summary();
        assert_eq!(s.n, 1000);
        assert!((s.p50_ms / 50.0 - 1.0).abs() < 0.02, "{s:?}");
        assert!((s.p99_ms / 99.0 - 1.0).abs() < 0.02, "{s:?}");
        assert_eq!(s.max_ms, 100.0);
        assert!((s.mean_ms - 50.05).abs() < 1e-9);
        // A negative sample (clocks disagreeing) counts as 0 ms.
        h.record(-5.0);
        assert_eq!(h.summary().n, 1001);
        assert_eq!(h.summary().max_ms, 100.0);
        assert_eq!(LatencyHistogram::default().summary(), LatencySummary::default());
    }
}
