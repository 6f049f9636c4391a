//! The migration's share of the core: at most `percent` of each 100 ms window goes to
//! reading, hashing, compressing and sealing pages while the guest runs.
//!
//! Why: tern is single-core and polls; a migration poll that encodes as many pages as the
//! socket takes competes with the VM's slices for the same CPU, and a guest being migrated
//! lost a third of its speed (docs/bench/migration.md). The kernel measures how long each
//! poll of the outgoing migration took and charges it here; once the window's share is spent
//! the engine only keeps the connection alive (receives, times out, flushes) until the next
//! window. While the VM is paused (stop-and-copy) there is no guest to protect and the
//! engine ignores the budget: downtime comes first.

/// Length of an accounting window, µs.
pub const WINDOW_US: u64 = 100_000;

/// The migration's CPU share, accounted per window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuBudget {
    percent: u8,
    window_start_us: u64,
    used_us: u64,
}

impl CpuBudget {
    /// A budget of `percent` (1..=100; 100 = no limit) starting at `now_us`.
    pub fn new(percent: u8, now_us: u64) -> Self {
        CpuBudget {
            percent: percent.clamp(1, 100),
            window_start_us: now_us,
            used_us: 0,
        }
    }

    fn roll(&mut self, now_us: u64) {
        if now_us >= self.window_start_us.saturating_add(WINDOW_US) {
            self.window_start_us = now_us;
            self.used_us = 0;
        }
    }

    /// Whether the migration may do page work at `now_us`.
    pub fn may_work(&mut self, now_us: u64) -> bool {
        if self.percent >= 100 {
            return true;
        }
        self.roll(now_us);
        self.used_us < WINDOW_US * u64::from(self.percent) / 100
    }

    /// Charges `us` of CPU time spent by the migration, ending at `now_us`.
    pub fn spent(&mut self, us: u64, now_us: u64) {
        self.roll(now_us);
        self.used_us = self.used_us.saturating_add(us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migration poll costs 5 ms of work and a guest slice 2 ms: the share the migration
    /// gets over a simulated second.
    fn share(percent: u8) -> f64 {
        let mut budget = CpuBudget::new(percent, 0);
        let (mut now, mut migration) = (0u64, 0u64);
        while now < 1_000_000 {
            if budget.may_work(now) {
                now += 5_000;
                migration += 5_000;
                budget.spent(5_000, now);
            } else {
                now += 50; // a poll that only flushes
            }
            now += 2_000; // the guest's slice
        }
        migration as f64 / now as f64
    }

    #[test]
    fn the_share_follows_the_percentage() {
        let unlimited = share(100);
        assert!(unlimited > 0.7, "{unlimited}");
        let half = share(50);
        assert!((0.4..=0.56).contains(&half), "{half}");
        let tenth = share(10);
        assert!((0.05..=0.16).contains(&tenth), "{tenth}");
    }
}
