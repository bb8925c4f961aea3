//! Connection limits per role and per client IP, enforced at the upgrade.
//!
//! A [`Permit`] is taken before the `101 Switching Protocols` and held by the
//! connection's task; dropping it (however the task ends) frees the slot, so
//! the counts cannot drift from the sockets actually open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::Limits;
use crate::registry::Role;

/// Why a connection was refused at the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitRefusal {
    #[error("too many {0} connections")]
    Role(&'static str),
    #[error("too many connections from this address")]
    PerIp,
}

#[derive(Debug, Default)]
struct Counts {
    by_role: [usize; Role::ALL.len()],
    by_ip: HashMap<IpAddr, usize>,
}

/// Live WebSocket connections, by role and by IP.
#[derive(Debug, Clone)]
pub struct Gate {
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection; frees its slot when dropped.
#[derive(Debug)]
pub struct Permit {
    role: Role,
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Gate {
    pub fn new(limits: Limits) -> Self {
        Gate { limits, counts: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admit one more `role` connection from `ip`, or say which limit it breaks.
    pub fn admit(&self, role: Role, ip: IpAddr) -> Result<Permit, LimitRefusal> {
        let max_role = match role {
            Role::Streamer => self.limits.max_streamers,
            Role::Player => self.limits.max_players,
            Role::Sfu => self.limits.max_sfus,
        };
        let mut counts = self.lock();
        if max_role > 0 && counts.by_role[role.index()] >= max_role {
            return Err(LimitRefusal::Role(role.as_str()));
        }
        let from_ip = counts.by_ip.get(&ip).copied().unwrap_or(0);
        if self.limits.max_per_ip > 0 && from_ip >= self.limits.max_per_ip {
            return Err(LimitRefusal::PerIp);
        }
        counts.by_role[role.index()] += 1;
        *counts.by_ip.entry(ip).or_insert(0) += 1;
        Ok(Permit { role, ip, counts: self.counts.clone() })
    }

    /// Live connections of `role`.
    pub fn count(&self, role: Role) -> usize {
        self.lock().by_role[role.index()]
    }

    /// Distinct client addresses with a live connection (the map never keeps
    /// zero entries, so it cannot grow with churn).
    pub fn addresses(&self) -> usize {
        self.lock().by_ip.len()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut counts.by_role[self.role.index()];
        *slot = slot.saturating_sub(1);
        if let Some(n) = counts.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn role_and_ip_limits_and_release() {
        let gate = Gate::new(Limits { max_players: 2, max_per_ip: 3, ..Limits::default() });
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let p1 = gate.admit(Role::Player, a).expect("first");
        let _p2 = gate.admit(Role::Player, a).expect("second");
        assert_eq!(gate.admit(Role::Player, b).unwrap_err(), LimitRefusal::Role("player"));
        let _s1 = gate.admit(Role::Streamer, a).expect("streamers unlimited");
        assert_eq!(gate.admit(Role::Streamer, a).unwrap_err(), LimitRefusal::PerIp);
        let _s2 = gate.admit(Role::Streamer, b).expect("other ip");
        drop(p1);
        assert_eq!(gate.count(Role::Player), 1);
        let _p3 = gate.admit(Role::Player, b).expect("slot freed");
        assert_eq!(gate.addresses(), 2);
    }

    #[test]
    fn map_empties_after_churn() {
        let gate = Gate::new(Limits::default());
        for i in 0..1000u32 {
            let _p = gate.admit(Role::Player, IpAddr::V4(Ipv4Addr::from(i)));
        }
        assert_eq!(gate.addresses(), 0);
        assert_eq!(gate.count(Role::Player), 0);
    }
}
