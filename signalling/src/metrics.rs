//! Prometheus metrics, hand-written in the text exposition format (a handful
//! of counters does not justify a metrics framework).
//!
//! The transport owns one [`Metrics`] for what only it sees (refusals,
//! closes, latency); the router's [`Counters`](crate::router::Counters) hold
//! the per-message counts. [`Exposition`] renders both for `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::registry::Role;

/// Upper bounds of the forwarding-latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5];

/// A compact arrival time for queued frames: microseconds since the first
/// stamp, wrapping every ~71 minutes (far longer than any frame waits). Four
/// bytes instead of a 16-byte `Instant`, because every send queue preallocates
/// a block of slots and idle connections must stay small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(u32);

fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

impl Stamp {
    pub fn of(at: std::time::Instant) -> Stamp {
        // Truncation is the wrap-around.
        Stamp(at.saturating_duration_since(epoch()).as_micros() as u32)
    }
    /// Time since this stamp (wrong only for waits over ~71 minutes).
    pub fn elapsed(self) -> Duration {
        let now = Stamp::of(std::time::Instant::now());
        Duration::from_micros(u64::from(now.0.wrapping_sub(self.0)))
    }
}

/// A fixed-bucket histogram of durations, lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in nanoseconds.
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// An upper bound of the `q` quantile (0..1): the bucket it falls in.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let target = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= target {
                return Some(Duration::from_secs_f64(LATENCY_BUCKETS[i]));
            }
        }
        Some(Duration::MAX)
    }
}

/// What the transport counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Accepted WebSocket connections, indexed by [`Role::index`].
    pub accepted: [AtomicU64; Role::ALL.len()],
    /// Upgrades refused, by reason (`unauthorized`, `forbidden_origin`, …).
    pub refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Frames dropped or connections ended by the transport, by reason.
    pub drops: Mutex<BTreeMap<&'static str, u64>>,
    /// Close frames the server sent, by code.
    pub closes: Mutex<BTreeMap<u16, u64>>,
    /// Close frames peers sent, by code (1005 = a close frame without a code).
    pub peer_closes: Mutex<BTreeMap<u16, u64>>,
    /// Arrival of a frame → hand-off to the destination's socket write.
    pub forward_latency: Histogram,
    /// Bytes and frames written to sockets.
    pub frames_out: AtomicU64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    *map.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_insert(0) += 1;
}

fn read<K: Ord + Clone>(map: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    map.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Metrics {
    pub fn accepted(&self, role: Role) {
        self.accepted[role.index()].fetch_add(1, Ordering::Relaxed);
    }
    pub fn refused(&self, reason: &'static str) {
        bump(&self.refused, reason);
    }
    pub fn dropped(&self, reason: &'static str) {
        bump(&self.drops, reason);
    }
    pub fn closed(&self, code: u16) {
        bump(&self.closes, code);
    }
    pub fn peer_closed(&self, code: u16) {
        bump(&self.peer_closes, code);
    }
    pub fn refused_count(&self, reason: &str) -> u64 {
        read(&self.refused).get(reason).copied().unwrap_or(0)
    }
    pub fn drop_count(&self, reason: &str) -> u64 {
        read(&self.drops).get(reason).copied().unwrap_or(0)
    }
    pub fn close_count(&self, code: u16) -> u64 {
        read(&self.closes).get(&code).copied().unwrap_or(0)
    }
}

/// Builds one exposition document.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// Escape a label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// A metric with no labels.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.header(name, kind, help);
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// A metric with one label.
    pub fn labelled<K: ToString>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (K, f64)>,
    ) {
        self.header(name, kind, help);
        for (k, v) in values {
            let _ = writeln!(self.out, "{name}{{{label}=\"{}\"}} {v}", escape(&k.to_string()));
        }
    }

    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.header(name, "histogram", help);
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += h.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(self.out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = h.count();
        let _ = writeln!(self.out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(self.out, "{name}_sum {sum}\n{name}_count {count}");
    }

    /// Render the transport's own metrics.
    pub fn transport(&mut self, m: &Metrics) {
        self.labelled(
            "signalling_connections_accepted_total",
            "counter",
            "WebSocket connections accepted, by role.",
            "role",
            Role::ALL.iter().zip(&m.accepted).map(|(r, c)| (r.as_str(), c.load(Ordering::Relaxed) as f64)),
        );
        let refused = read(&m.refused);
        self.labelled(
            "signalling_upgrades_refused_total",
            "counter",
            "WebSocket upgrades refused with an HTTP status, by reason.",
            "reason",
            refused.into_iter().map(|(k, v)| (k, v as f64)),
        );
        let closes = read(&m.closes);
        self.labelled(
            "signalling_closes_total",
            "counter",
            "Close frames sent by the server, by close code.",
            "code",
            closes.into_iter().map(|(k, v)| (k, v as f64)),
        );
        let peer_closes = read(&m.peer_closes);
        self.labelled(
            "signalling_peer_closes_total",
            "counter",
            "Close frames received from peers, by close code.",
            "code",
            peer_closes.into_iter().map(|(k, v)| (k, v as f64)),
        );
        self.histogram(
            "signalling_forward_latency_seconds",
            "From a frame's arrival to its hand-off to the destination socket's write.",
            &m.forward_latency,
        );
        self.single(
            "signalling_frames_written_total",
            "counter",
            "Text frames written to sockets.",
            m.frames_out.load(Ordering::Relaxed) as f64,
        );
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_measure_elapsed_time() {
        let t = std::time::Instant::now();
        let stamp = Stamp::of(t);
        std::thread::sleep(Duration::from_millis(5));
        let e = stamp.elapsed();
        assert!(e >= Duration::from_millis(5) && e < Duration::from_secs(1), "{e:?}");
    }

    #[test]
    fn histogram_and_exposition() {
        let m = Metrics::default();
        m.forward_latency.observe(Duration::from_micros(30));
        m.forward_latency.observe(Duration::from_millis(3));
        m.forward_latency.observe(Duration::from_secs(10));
        m.refused("unauthorized");
        m.closed(1008);
        m.closed(1008);
        let mut e = Exposition::default();
        e.transport(&m);
        let text = e.finish();
        assert!(text.contains("signalling_forward_latency_seconds_bucket{le=\"0.00005\"} 1"), "{text}");
        assert!(text.contains("signalling_forward_latency_seconds_bucket{le=\"0.005\"} 2"), "{text}");
        assert!(text.contains("signalling_forward_latency_seconds_bucket{le=\"+Inf\"} 3"), "{text}");
        assert!(text.contains("signalling_upgrades_refused_total{reason=\"unauthorized\"} 1"), "{text}");
        assert!(text.contains("signalling_closes_total{code=\"1008\"} 2"), "{text}");
        assert_eq!(m.forward_latency.quantile_upper_bound(0.5), Some(Duration::from_secs_f64(0.005)));
    }
}
