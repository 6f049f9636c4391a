//! Per-VM exit counters by basic exit reason, for `vm info` and for benchmarks.

use crate::vmx::exit::reason::{COUNTED_REASONS, name};

/// Exit counts indexed by basic reason; reasons past the table share the last slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitCounters {
    by_reason: [u64; COUNTED_REASONS],
    total: u64,
}

impl Default for ExitCounters {
    fn default() -> Self {
        Self {
            by_reason: [0; COUNTED_REASONS],
            total: 0,
        }
    }
}

impl ExitCounters {
    fn slot(reason: u16) -> usize {
        usize::from(reason).min(COUNTED_REASONS - 1)
    }

    /// Count one exit with basic reason `reason`.
    pub fn record(&mut self, reason: u16) {
        let slot = Self::slot(reason);
        self.by_reason[slot] = self.by_reason[slot].saturating_add(1);
        self.total = self.total.saturating_add(1);
    }

    /// Exits with basic reason `reason`.
    pub fn count(&self, reason: u16) -> u64 {
        self.by_reason[Self::slot(reason)]
    }

    /// All exits.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// `(reason, name, count)` for every reason seen at least once, in reason order.
    pub fn nonzero(&self) -> impl Iterator<Item = (u16, &'static str, u64)> + '_ {
        self.by_reason
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(r, c)| {
                // The table has COUNTED_REASONS (< 65536) slots.
                let reason = r as u16;
                (reason, name(reason), *c)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason() {
        let mut c = ExitCounters::default();
        c.record(30);
        c.record(30);
        c.record(12);
        c.record(9999);
        assert_eq!((c.count(30), c.count(12), c.total()), (2, 1, 4));
        let seen: Vec<_> = c.nonzero().collect();
        assert_eq!(seen, [(12, "hlt", 1), (30, "io", 2), (65, "other", 1)]);
    }
}
