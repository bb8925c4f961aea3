//! A token bucket per connection: `per_sec` messages sustained, `burst` at
//! once. Sans-I/O: the caller passes the time.

use std::time::Instant;

#[derive(Debug, Clone)]
pub struct RateLimit {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// `per_sec == 0` disables the limit.
    pub fn new(per_sec: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimit { per_sec: f64::from(per_sec), burst, tokens: burst, last: now }
    }

    /// Take one token; false when the connection is over its limit.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.per_sec == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(10, 5, t0);
        assert!((0..5).all(|_| limit.allow(t0)));
        assert!(!limit.allow(t0));
        // 100 ms at 10/s refills exactly one token.
        assert!(limit.allow(t0 + Duration::from_millis(100)));
        assert!(!limit.allow(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(0, 1, t0);
        assert!((0..10_000).all(|_| limit.allow(t0)));
    }
}
