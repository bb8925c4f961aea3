//! `GET /match`: the Matchmaker's job, done by the service itself. Which
//! streamers may take one more player, best first; the reservation that
//! stops two people arriving together from getting the same one is taken
//! in Redis in a cluster ([`super::bus::Bus::reserve`]) and in
//! [`LocalReservations`] on one node. Sans-I/O.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a pick holds its streamer for the player it was made for.
pub const RESERVATION: Duration = Duration::from_secs(5);

/// A streamer that could be picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    /// `None` on one node.
    pub node: Option<String>,
    pub order: u64,
    pub subscribers: usize,
    /// Live reservations.
    pub reserved: usize,
    pub node_draining: bool,
}

impl Candidate {
    fn load(&self) -> usize {
        self.subscribers + self.reserved
    }
}

/// The candidates that have room (`max_players` 0 = no limit), never on a
/// draining node, fewest players (and reservations) first, then in
/// registration order.
pub fn rank(mut candidates: Vec<Candidate>, max_players: usize) -> Vec<Candidate> {
    candidates.retain(|c| !c.node_draining && (max_players == 0 || c.load() < max_players));
    candidates.sort_by(|a, b| a.load().cmp(&b.load()).then(a.order.cmp(&b.order)).then(a.id.cmp(&b.id)));
    candidates
}

/// Reservations on one node (no cluster).
#[derive(Debug, Default)]
pub struct LocalReservations {
    until: HashMap<String, Vec<Instant>>,
}

impl LocalReservations {
    /// Live reservations of `id` at `now`.
    pub fn count(&mut self, id: &str, now: Instant) -> usize {
        let Some(list) = self.until.get_mut(id) else { return 0 };
        list.retain(|t| *t > now);
        list.len()
    }

    /// Reserve `id` if `subscribers` plus its live reservations stay under
    /// `max` (0 = no limit).
    pub fn reserve(&mut self, id: &str, max: usize, subscribers: usize, now: Instant) -> bool {
        let live = self.count(id, now);
        if max > 0 && subscribers + live >= max {
            return false;
        }
        self.until.entry(id.to_string()).or_default().push(now + RESERVATION);
        self.until.retain(|_, l| !l.is_empty());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, order: u64, subscribers: usize, reserved: usize, draining: bool) -> Candidate {
        Candidate { id: id.into(), node: None, order, subscribers, reserved, node_draining: draining }
    }

    #[test]
    fn fewest_first_then_registration_order_never_draining_never_full() {
        let ranked = rank(
            vec![c("B", 2, 1, 0, false), c("A", 1, 1, 0, false), c("C", 3, 0, 0, false), c("D", 0, 0, 0, true)],
            0,
        );
        let ids: Vec<&str> = ranked.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["C", "A", "B"]);
        let ranked = rank(vec![c("A", 1, 1, 0, false), c("B", 2, 0, 1, false), c("C", 3, 0, 0, false)], 1);
        assert_eq!(ranked.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["C"]);
    }

    #[test]
    fn a_reservation_holds_a_single_seat_until_it_expires() {
        let mut r = LocalReservations::default();
        let t0 = Instant::now();
        assert!(r.reserve("A", 1, 0, t0));
        assert!(!r.reserve("A", 1, 0, t0 + Duration::from_secs(1)));
        assert!(r.reserve("A", 2, 0, t0 + Duration::from_secs(1)));
        let mut r = LocalReservations::default();
        assert!(r.reserve("A", 1, 0, t0));
        assert!(r.reserve("A", 1, 0, t0 + RESERVATION + Duration::from_millis(1)));
    }
}
