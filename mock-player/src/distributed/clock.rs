//! Each agent's clock offset from the coordinator, estimated NTP-style over
//! Redis round trips: the coordinator stamps a ping (`t0`, its clock), the
//! agent stamps its arrival (`t1`) and its reply (`t2`, agent clock), the
//! coordinator stamps the reply's arrival (`t3`). Assuming both legs take as
//! long, `offset = ((t1 - t0) + (t2 - t3)) / 2` (agent minus coordinator) with
//! an error of at most half the round trip `(t3 - t0) - (t2 - t1)`; of several
//! exchanges the one with the shortest round trip is kept.

use serde::{Deserialize, Serialize};

/// One ping/pong, all in milliseconds of wall-clock time (Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// Ping sent (coordinator clock).
    pub t0: f64,
    /// Ping received (agent clock).
    pub t1: f64,
    /// Pong sent (agent clock).
    pub t2: f64,
    /// Pong received (coordinator clock).
    pub t3: f64,
}

/// The estimate: add `offset_ms` to a coordinator time to get the agent's.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Offset {
    pub offset_ms: f64,
    /// Round trip through Redis minus the agent's own processing; the offset
    /// is right to within half of it.
    pub round_trip_ms: f64,
}

impl Exchange {
    pub fn offset(&self) -> Offset {
        Offset {
            offset_ms: ((self.t1 - self.t0) + (self.t2 - self.t3)) / 2.0,
            round_trip_ms: ((self.t3 - self.t0) - (self.t2 - self.t1)).max(0.0),
        }
    }
}

/// The exchange with the shortest round trip (its offset is the least
/// disturbed by queueing); `None` without exchanges.
pub fn best(exchanges: &[Exchange]) -> Option<Offset> {
    exchanges.iter().map(Exchange::offset).min_by(|a, b| a.round_trip_ms.total_cmp(&b.round_trip_ms))
}

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_legs_give_the_exact_offset() {
        // Agent is 500 ms ahead; each leg takes 3 ms; the agent takes 1 ms.
        let e = Exchange { t0: 1000.0, t1: 1503.0, t2: 1504.0, t3: 1007.0 };
        assert_eq!(e.offset(), Offset { offset_ms: 500.0, round_trip_ms: 6.0 });
        // Agent behind.
        let e = Exchange { t0: 1000.0, t1: 802.0, t2: 802.0, t3: 1004.0 };
        assert_eq!(e.offset(), Offset { offset_ms: -200.0, round_trip_ms: 4.0 });
    }

    #[test]
    fn asymmetric_legs_err_by_at_most_half_the_round_trip() {
        // True offset 100; outbound 10 ms, return 2 ms.
        let e = Exchange { t0: 0.0, t1: 110.0, t2: 110.0, t3: 12.0 };
        let o = e.offset();
        assert!((o.offset_ms - 100.0).abs() <= o.round_trip_ms / 2.0, "{o:?}");
    }

    #[test]
    fn keeps_the_shortest_round_trip() {
        let slow = Exchange { t0: 0.0, t1: 150.0, t2: 150.0, t3: 60.0 }; // rtt 60
        let fast = Exchange { t0: 100.0, t1: 201.0, t2: 201.0, t3: 102.0 }; // rtt 2, offset 100
        let o = best(&[slow, fast]).expect("an estimate");
        assert_eq!(o, Offset { offset_ms: 100.0, round_trip_ms: 2.0 });
        assert!(best(&[]).is_none());
    }
}
