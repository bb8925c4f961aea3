//! A bad network on purpose: the delay, jitter, random loss and rate limit
//! a peer applies to its own UDP datagrams (`--impair
//! "delay=40ms,jitter=10ms,loss=2%,rate=8mbit"`), like netem but per peer
//! connection rather than per host (netem is missing on some machines and
//! impairs every peer of a host alike).
//!
//! Sans-I/O: [`Impairment`] is the parsed profile, [`ImpairedLink`] one
//! direction of one socket: told each datagram's size and arrival time (and
//! two random numbers), it says when to deliver it or that it is lost. The
//! socket that holds and releases the datagrams lives with the peer.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// One impairment profile, applied to each direction separately.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    /// Added to every datagram.
    pub delay: Duration,
    /// Each datagram's delay varies uniformly by ± this (order is kept: a
    /// datagram never overtakes the one before it, as with netem's rate).
    pub jitter: Duration,
    /// Fraction of datagrams dropped at random, 0..=1.
    pub loss: f64,
    /// Bits per second the link carries (0: unlimited); datagrams queue
    /// behind one another and are dropped when [`QUEUE_LIMIT`] wait.
    pub rate_bps: u64,
}

/// Datagrams a rate-limited link holds before it drops (netem's default limit).
pub const QUEUE_LIMIT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("impairment {input:?}: {reason} (expected e.g. \"delay=40ms,jitter=10ms,loss=2%,rate=8mbit\")")]
pub struct ImpairmentError {
    input: String,
    reason: String,
}

impl Impairment {
    /// No impairment at all (an empty profile).
    pub fn is_none(&self) -> bool {
        *self == Impairment::default()
    }
}

impl FromStr for Impairment {
    type Err = ImpairmentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ImpairmentError { input: s.to_string(), reason };
        let mut out = Impairment::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| err(format!("{part:?} is not key=value")))?;
            let value = value.trim().to_ascii_lowercase();
            match key.trim().to_ascii_lowercase().as_str() {
                "delay" => out.delay = duration(&value).map_err(err)?,
                "jitter" => out.jitter = duration(&value).map_err(err)?,
                "loss" => {
                    let pct = value.strip_suffix('%').ok_or_else(|| err(format!("loss {value:?} needs a %")))?;
                    let pct: f64 = pct.trim().parse().map_err(|_| err(format!("loss {value:?} is not a number")))?;
                    if !(0.0..=100.0).contains(&pct) {
                        return Err(err(format!("loss {value:?} is not within 0–100 %")));
                    }
                    out.loss = pct / 100.0;
                }
                "rate" => out.rate_bps = rate(&value).map_err(err)?,
                other => return Err(err(format!("unknown key {other:?} (delay, jitter, loss, rate)"))),
            }
        }
        if out.jitter > out.delay {
            return Err(err("jitter must not exceed delay".into()));
        }
        Ok(out)
    }
}

impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.delay.is_zero() {
            parts.push(format!("delay={}ms", self.delay.as_millis()));
        }
        if !self.jitter.is_zero() {
            parts.push(format!("jitter={}ms", self.jitter.as_millis()));
        }
        if self.loss > 0.0 {
            parts.push(format!("loss={}%", self.loss * 100.0));
        }
        if self.rate_bps > 0 {
            parts.push(format!("rate={}kbit", self.rate_bps / 1000));
        }
        if parts.is_empty() {
            return f.write_str("clean");
        }
        f.write_str(&parts.join(","))
    }
}

fn duration(v: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!("{v:?} needs a unit (ms or s)"));
    };
    let n: f64 = num.trim().parse().map_err(|_| format!("{v:?} is not a number"))?;
    Duration::try_from_secs_f64(n * scale).map_err(|_| format!("{v:?} is not a duration"))
}

fn rate(v: &str) -> Result<u64, String> {
    let units = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)];
    let (num, scale) = units
        .iter()
        .find_map(|(u, s)| v.strip_suffix(u).map(|n| (n, *s)))
        .ok_or_else(|| format!("rate {v:?} needs a unit (kbit, mbit, gbit)"))?;
    let n: f64 = num.trim().parse().map_err(|_| format!("rate {v:?} is not a number"))?;
    if n.is_nan() || n <= 0.0 || !n.is_finite() {
        return Err(format!("rate {v:?} must be positive"));
    }
    Ok((n * scale) as u64)
}

/// One direction of one impaired socket.
#[derive(Debug)]
pub struct ImpairedLink {
    profile: Impairment,
    /// When the rate-limited link is free again.
    busy_until: Option<Instant>,
    /// The last delivery time given: later datagrams are not delivered before it.
    last_delivery: Option<Instant>,
    /// Delivery times of datagrams still queued (for the queue limit).
    queued: std::collections::VecDeque<Instant>,
    pub dropped_random: u64,
    pub dropped_queue: u64,
    pub passed: u64,
}

impl ImpairedLink {
    pub fn new(profile: Impairment) -> Self {
        ImpairedLink {
            profile,
            busy_until: None,
            last_delivery: None,
            queued: Default::default(),
            dropped_random: 0,
            dropped_queue: 0,
            passed: 0,
        }
    }

    /// A datagram of `len` bytes entered the link at `now`. `loss_draw` and
    /// `jitter_draw` are uniform random numbers in 0..1. Returns when to
    /// deliver it, or `None`: it is lost.
    pub fn admit(&mut self, now: Instant, len: usize, loss_draw: f64, jitter_draw: f64) -> Option<Instant> {
        if loss_draw < self.profile.loss {
            self.dropped_random += 1;
            return None;
        }
        while self.queued.front().is_some_and(|t| *t <= now) {
            self.queued.pop_front();
        }
        let mut leaves = now;
        if self.profile.rate_bps > 0 {
            if self.queued.len() >= QUEUE_LIMIT {
                self.dropped_queue += 1;
                return None;
            }
            let start = self.busy_until.map_or(now, |b| b.max(now));
            let serialise = Duration::from_secs_f64(len as f64 * 8.0 / self.profile.rate_bps as f64);
            leaves = start + serialise;
            self.busy_until = Some(leaves);
        }
        let jitter = self.profile.jitter.as_secs_f64() * (2.0 * jitter_draw - 1.0);
        let delay = Duration::from_secs_f64((self.profile.delay.as_secs_f64() + jitter).max(0.0));
        let mut at = leaves + delay;
        if let Some(last) = self.last_delivery {
            at = at.max(last);
        }
        self.last_delivery = Some(at);
        if self.profile.rate_bps > 0 {
            self.queued.push_back(at);
        }
        self.passed += 1;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form_and_prints_it_back() {
        let p: Impairment = "delay=40ms,jitter=10ms,loss=2%,rate=8mbit".parse().unwrap();
        assert_eq!(p.delay, Duration::from_millis(40));
        assert_eq!(p.jitter, Duration::from_millis(10));
        assert!((p.loss - 0.02).abs() < 1e-12);
        assert_eq!(p.rate_bps, 8_000_000);
        assert_eq!(p.to_string(), "delay=40ms,jitter=10ms,loss=2%,rate=8000kbit");
        assert_eq!(p.to_string().parse::<Impairment>().unwrap(), p);
        assert_eq!(" loss=20% ".parse::<Impairment>().unwrap().to_string(), "loss=20%");
        assert!("".parse::<Impairment>().unwrap().is_none());
        assert_eq!(Impairment::default().to_string(), "clean");
    }

    #[test]
    fn rejects_with_a_reason() {
        for (bad, why) in [
            ("delay=40", "unit"),
            ("loss=2", "needs a %"),
            ("loss=150%", "0–100"),
            ("rate=8", "unit"),
            ("rate=0mbit", "positive"),
            ("speed=1mbit", "unknown key"),
            ("delay", "key=value"),
            ("delay=10ms,jitter=20ms", "jitter must not exceed"),
        ] {
            let e = bad.parse::<Impairment>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn delays_drops_and_keeps_order() {
        let t0 = Instant::now();
        let p: Impairment = "delay=40ms,jitter=10ms,loss=50%".parse().unwrap();
        let mut link = ImpairedLink::new(p);
        assert_eq!(link.admit(t0, 100, 0.1, 0.5), None);
        let a = link.admit(t0, 100, 0.9, 1.0).unwrap();
        assert_eq!(a - t0, Duration::from_millis(50));
        // Less jitter on the next one: it still waits for the first.
        let b = link.admit(t0, 100, 0.9, 0.0).unwrap();
        assert_eq!(b, a);
        assert_eq!((link.dropped_random, link.passed), (1, 2));
    }

    #[test]
    fn a_rate_limit_queues_then_drops() {
        let t0 = Instant::now();
        // 1 Mbit/s: a 1250-byte datagram takes 10 ms.
        let mut link = ImpairedLink::new("rate=1mbit".parse().unwrap());
        let first = link.admit(t0, 1250, 0.9, 0.5).unwrap();
        let second = link.admit(t0, 1250, 0.9, 0.5).unwrap();
        assert_eq!(first - t0, Duration::from_millis(10));
        assert_eq!(second - t0, Duration::from_millis(20));
        for _ in 2..QUEUE_LIMIT {
            assert!(link.admit(t0, 1250, 0.9, 0.5).is_some());
        }
        assert_eq!(link.admit(t0, 1250, 0.9, 0.5), None);
        assert_eq!(link.dropped_queue, 1);
        // Once the queue has drained, datagrams pass again.
        assert!(link.admit(t0 + Duration::from_secs(11), 1250, 0.9, 0.5).is_some());
    }
}
