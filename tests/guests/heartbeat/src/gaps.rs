//! Statistics of the gaps a busy loop sees in its own time line: when a loop that reads the
//! TSC every few ticks suddenly sees a large step, something else ran in between (a
//! hypervisor's slice boundary: preemption-timer exit, the host's other work, VM entry).
//! Portable so the arithmetic is tested on the host; `hb.mode=bench` feeds it.

/// Gaps and the runs between them, in TSC ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapStats {
    /// A step of at least this many ticks counts as a gap.
    pub threshold: u64,
    /// Gaps seen.
    pub gaps: u64,
    /// Sum, smallest and largest gap.
    pub total: u64,
    /// Smallest gap (`u64::MAX` while there is none).
    pub min: u64,
    /// Largest gap.
    pub max: u64,
    /// Ticks run since the last gap (or the start).
    run: u64,
    /// Sum of the runs that ended in a gap.
    pub runs_total: u64,
}

impl GapStats {
    /// Nothing seen yet.
    pub fn new(threshold: u64) -> Self {
        Self {
            threshold,
            gaps: 0,
            total: 0,
            min: u64::MAX,
            max: 0,
            run: 0,
            runs_total: 0,
        }
    }

    /// The loop saw the TSC advance by `step` since its previous reading.
    pub fn step(&mut self, step: u64) {
        if step >= self.threshold {
            self.gaps += 1;
            self.total = self.total.saturating_add(step);
            self.min = self.min.min(step);
            self.max = self.max.max(step);
            self.runs_total = self.runs_total.saturating_add(self.run);
            self.run = 0;
        } else {
            self.run = self.run.saturating_add(step);
        }
    }

    /// Mean gap, 0 without gaps.
    pub fn mean(&self) -> u64 {
        self.total.checked_div(self.gaps).unwrap_or(0)
    }

    /// Mean run between gaps (the guest's share of a slice), 0 without gaps.
    pub fn mean_run(&self) -> u64 {
        self.runs_total.checked_div(self.gaps).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_steps_are_runs_large_ones_gaps() {
        let mut g = GapStats::new(100);
        for s in [5, 5, 300, 5, 5, 5, 500, 7] {
            g.step(s);
        }
        assert_eq!(g.gaps, 2);
        assert_eq!((g.min, g.max, g.mean()), (300, 500, 400));
        assert_eq!(g.runs_total, 25);
        assert_eq!(g.mean_run(), 12);
    }

    #[test]
    fn no_gaps_means_zeros() {
        let mut g = GapStats::new(100);
        g.step(1);
        assert_eq!((g.gaps, g.mean(), g.mean_run()), (0, 0, 0));
    }
}
