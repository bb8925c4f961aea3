//! Splitting one run's players over agents in proportion to their capacity,
//! so that every agent starts its share at the same moment and the ramps add
//! up to the one asked for.

use serde::{Deserialize, Serialize};

/// One agent's part of a run: players `first_index..first_index + players`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub first_index: usize,
    pub players: usize,
    /// This agent's ramp (players per second): its fraction of the overall ramp.
    pub ramp: f64,
    /// This agent's fraction of the overall limit of joins in flight (at least 1).
    pub max_joining: usize,
}

/// Split `players` over agents of the given capacities (largest remainder:
/// shares are proportional to capacity, sum to `players`, and differ from the
/// exact proportion by less than one player). An agent of capacity 0 gets
/// nothing; if every capacity is 0 the players are split evenly.
pub fn split(players: usize, ramp: f64, max_joining: usize, capacities: &[usize]) -> Vec<Share> {
    if capacities.is_empty() {
        return Vec::new();
    }
    let total_cap: usize = capacities.iter().sum();
    let caps: Vec<f64> =
        if total_cap == 0 { vec![1.0; capacities.len()] } else { capacities.iter().map(|&c| c as f64).collect() };
    let sum: f64 = caps.iter().sum();
    let exact: Vec<f64> = caps.iter().map(|c| players as f64 * c / sum).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = players - counts.iter().sum::<usize>();
    // Hand the remaining players to the largest fractional parts (ties: the first agent).
    let mut order: Vec<usize> = (0..caps.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        if caps[i] > 0.0 {
            counts[i] += 1;
            left -= 1;
        }
    }
    let mut first = 0;
    counts
        .into_iter()
        .map(|n| {
            let frac = if players == 0 { 0.0 } else { n as f64 / players as f64 };
            let share = Share {
                first_index: first,
                players: n,
                ramp: ramp * frac,
                max_joining: ((max_joining as f64 * frac).ceil() as usize).max(1),
            };
            first += n;
            share
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_to_capacity_and_complete() {
        let s = split(1200, 50.0, 60, &[400, 400, 400]);
        assert_eq!(s.iter().map(|s| s.players).collect::<Vec<_>>(), vec![400, 400, 400]);
        assert_eq!(s.iter().map(|s| s.first_index).collect::<Vec<_>>(), vec![0, 400, 800]);
        let ramp: f64 = s.iter().map(|s| s.ramp).sum();
        assert!((ramp - 50.0).abs() < 1e-9, "overall ramp {ramp}");
        assert_eq!(s[0].max_joining, 20);

        let s = split(1000, 10.0, 50, &[100, 300]);
        assert_eq!((s[0].players, s[1].players), (250, 750));
        assert!((s[0].ramp - 2.5).abs() < 1e-9 && (s[1].ramp - 7.5).abs() < 1e-9);
    }

    #[test]
    fn remainders_go_to_the_largest_fractions() {
        let s = split(10, 1.0, 1, &[1, 1, 1]);
        assert_eq!(s.iter().map(|s| s.players).collect::<Vec<_>>(), vec![4, 3, 3]);
        let s = split(7, 1.0, 1, &[1, 2]);
        // exact 2.33 / 4.67: the second has the larger fraction.
        assert_eq!(s.iter().map(|s| s.players).collect::<Vec<_>>(), vec![2, 5]);
        for n in 0..50 {
            let s = split(n, 1.0, 1, &[3, 0, 7, 1]);
            assert_eq!(s.iter().map(|s| s.players).sum::<usize>(), n);
            assert_eq!(s[1].players, 0, "capacity 0 gets nothing");
            let mut next = 0;
            for sh in &s {
                assert_eq!(sh.first_index, next, "contiguous index ranges");
                next += sh.players;
                assert!(sh.max_joining >= 1);
            }
        }
    }

    #[test]
    fn zero_capacity_everywhere_splits_evenly() {
        let s = split(5, 5.0, 10, &[0, 0]);
        assert_eq!(s.iter().map(|s| s.players).collect::<Vec<_>>(), vec![3, 2]);
        assert!(split(5, 5.0, 10, &[]).is_empty());
    }
}
