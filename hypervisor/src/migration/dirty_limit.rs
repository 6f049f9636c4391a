//! The dirty-rate limit: a vCPU may dirty at most N pages per second while its VM migrates.
//!
//! Why next to auto-converge's throttle: the throttle takes CPU time away and hopes the guest
//! dirties less, which fails for a guest whose writes are paced by its clock (the heartbeat
//! guest, and any guest that timestamps its work): it dirties as fast as before, just in
//! fewer slices. A limit on the dirty rate itself bounds what the next round must send, so a
//! guest that outruns the link converges whatever paces it. Like QEMU's dirty-limit, the
//! vCPU is held when it has used its budget: a token bucket filled at the limit, charged for
//! every page the dirty tracking sees newly dirtied (each write-protection fault; 512 at a
//! time at a PML log-full exit), and a vCPU whose budget is spent sits out its slices until
//! the bucket refills. Time is the host TSC, passed in.

/// A token bucket of pages for one vCPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyRateLimiter {
    pages_per_sec: u64,
    tsc_hz: u64,
    /// Pages the vCPU may still dirty; negative when a burst overdrew it.
    budget: i64,
    /// Most pages the bucket holds: a tenth of a second at the limit (at least one).
    capacity: i64,
    /// TSC up to which the budget has been credited.
    credited_to: u64,
}

impl DirtyRateLimiter {
    /// A full bucket at `now` for `pages_per_sec` (at least 1) on a TSC of `tsc_hz`.
    pub fn new(pages_per_sec: u64, tsc_hz: u64, now: u64) -> Self {
        let pages_per_sec = pages_per_sec.max(1);
        let capacity = i64::try_from(pages_per_sec / 10).unwrap_or(i64::MAX).max(1);
        DirtyRateLimiter {
            pages_per_sec,
            tsc_hz: tsc_hz.max(1),
            budget: capacity,
            capacity,
            credited_to: now,
        }
    }

    /// The limit, pages per second.
    pub fn pages_per_sec(&self) -> u64 {
        self.pages_per_sec
    }

    /// Sets `slot` to a limit of `pages_per_sec` (`None`: no limit). The same limit set again
    /// (each round repeats it) keeps its bucket, so a new round does not refill an
    /// overdrawn budget.
    pub fn retarget(slot: &mut Option<Self>, pages_per_sec: Option<u64>, tsc_hz: u64, now: u64) {
        match (slot.as_ref(), pages_per_sec) {
            (Some(current), Some(pps)) if current.pages_per_sec == pps.max(1) => {}
            (_, pps) => *slot = pps.map(|pps| Self::new(pps, tsc_hz, now)),
        }
    }

    /// Charges `pages` newly dirtied pages.
    pub fn dirtied(&mut self, pages: u64) {
        self.budget = self
            .budget
            .saturating_sub(i64::try_from(pages).unwrap_or(i64::MAX));
    }

    /// Credits the time up to `now` (whole pages only, so no time is lost to rounding).
    fn refill(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.credited_to);
        let earned = u128::from(elapsed) * u128::from(self.pages_per_sec) / u128::from(self.tsc_hz);
        if earned == 0 {
            return;
        }
        let spent_ticks = earned * u128::from(self.tsc_hz) / u128::from(self.pages_per_sec);
        self.credited_to = self
            .credited_to
            .saturating_add(u64::try_from(spent_ticks).unwrap_or(u64::MAX));
        let earned = i64::try_from(earned).unwrap_or(i64::MAX);
        self.budget = self.budget.saturating_add(earned).min(self.capacity);
        if self.budget == self.capacity {
            // A full bucket does not bank idle time.
            self.credited_to = self.credited_to.max(now);
        }
    }

    /// Whether the vCPU may run a slice at `now` (its budget is not spent).
    pub fn may_run(&mut self, now: u64) -> bool {
        self.refill(now);
        self.budget > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 1_000_000; // 1 tick = 1 µs

    #[test]
    fn a_guest_dirtying_flat_out_is_held_to_the_limit() {
        // 100 pages/s; the guest would dirty 10 pages per 1 ms slice when it runs.
        let mut limiter = DirtyRateLimiter::new(100, HZ, 0);
        let mut dirtied = 0;
        for ms in 0..10_000u64 {
            if limiter.may_run(ms * 1000) {
                limiter.dirtied(10);
                dirtied += 10;
            }
        }
        // 10 s at 100 pages/s, plus the initial bucket and one overdrawn slice.
        assert!((1000..=1030).contains(&dirtied), "{dirtied}");
    }

    #[test]
    fn a_quiet_guest_never_waits_and_idle_time_is_not_banked() {
        let mut limiter = DirtyRateLimiter::new(1000, HZ, 0);
        for ms in 0..1000u64 {
            assert!(limiter.may_run(ms * 1000));
            limiter.dirtied(1);
        }
        // After an idle minute the bucket holds at most its capacity (100 pages).
        assert!(limiter.may_run(61_000_000));
        limiter.dirtied(100);
        assert!(!limiter.may_run(61_000_000));
        assert!(limiter.may_run(61_001_000));
    }

    #[test]
    fn setting_the_same_limit_again_keeps_the_debt() {
        let mut slot = None;
        DirtyRateLimiter::retarget(&mut slot, Some(100), HZ, 0);
        slot.as_mut().unwrap().dirtied(1000);
        DirtyRateLimiter::retarget(&mut slot, Some(100), HZ, 0);
        assert!(!slot.as_mut().unwrap().may_run(0), "still overdrawn");
        DirtyRateLimiter::retarget(&mut slot, Some(50), HZ, 0);
        assert!(slot.as_mut().unwrap().may_run(0), "a new limit starts full");
        DirtyRateLimiter::retarget(&mut slot, None, HZ, 0);
        assert!(slot.is_none());
    }

    #[test]
    fn a_pml_sized_charge_holds_the_vcpu_for_its_worth_of_time() {
        let mut limiter = DirtyRateLimiter::new(512, HZ, 0);
        limiter.dirtied(512 + 51); // overdrawn by one second's worth
        assert!(!limiter.may_run(500_000));
        assert!(limiter.may_run(1_010_000));
    }
}
