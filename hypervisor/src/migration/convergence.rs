//! When to stop pre-copying, and how hard to throttle a guest that will not converge.
//!
//! After every live round the source knows how many pages the guest dirtied while the round
//! was sent and how fast the link moved bytes. The expected downtime of switching over now
//! is the remaining bytes divided by that throughput. Switch over when it is within the
//! downtime limit, or at `max-rounds`. A guest that dirties as fast as the link sends never
//! gets there: when a round does not shrink the dirty set by at least 10 %, the vCPU is
//! throttled (auto-converge, as in QEMU: 20 % first, then +10 % per round up to 99 %), and
//! once the throttle is at its maximum and rounds still do not shrink, the source switches
//! over anyway rather than copy forever.

use crate::vmx::ept::PAGE_SIZE;

/// First throttle step, percent of the vCPU's time taken away.
pub const THROTTLE_INITIAL: u8 = 20;
/// Throttle increment per non-shrinking round.
pub const THROTTLE_STEP: u8 = 10;
/// Highest throttle.
pub const THROTTLE_MAX: u8 = 99;

/// What one finished live round measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundMeasurement {
    /// Round number (0 = the full copy).
    pub round: u32,
    /// Pages dirtied while the round was sent (what the next round must send).
    pub dirty_pages: u64,
    /// Bytes per second the link moved during the round (0 = unknown).
    pub throughput_bytes_per_sec: u64,
}

/// Why the source switches over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchReason {
    /// The expected downtime is within the limit.
    Converged,
    /// `max-rounds` reached.
    MaxRounds,
    /// Throttled to the maximum and rounds still do not shrink.
    NotShrinking,
}

impl SwitchReason {
    /// For the progress line.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Converged => "expected downtime within limit",
            Self::MaxRounds => "max-rounds reached",
            Self::NotShrinking => "not converging at maximum throttle",
        }
    }
}

/// The decision after a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Pause the VM and send the rest.
    SwitchOver(SwitchReason),
    /// Another round, with this throttle (percent).
    Continue {
        /// vCPU throttle for the next round.
        throttle: u8,
    },
}

/// Expected downtime in microseconds of sending `pages` at `throughput` bytes/s
/// (`u64::MAX` when the throughput is unknown).
pub fn expected_downtime_us(pages: u64, throughput_bytes_per_sec: u64) -> u64 {
    if pages == 0 {
        return 0;
    }
    if throughput_bytes_per_sec == 0 {
        return u64::MAX;
    }
    let bytes = u128::from(pages) * u128::from(PAGE_SIZE);
    let us = bytes * 1_000_000 / u128::from(throughput_bytes_per_sec);
    u64::try_from(us).unwrap_or(u64::MAX)
}

/// The convergence state carried across rounds.
#[derive(Clone, Debug, Default)]
pub struct ConvergencePolicy {
    previous_dirty: Option<u64>,
    throttle: u8,
}

impl ConvergencePolicy {
    /// Current throttle, percent.
    pub fn throttle(&self) -> u8 {
        self.throttle
    }

    /// Decides after round `m.round` with the given limits.
    pub fn decide(
        &mut self,
        m: RoundMeasurement,
        downtime_limit_ms: u64,
        max_rounds: u32,
    ) -> Decision {
        let expected = expected_downtime_us(m.dirty_pages, m.throughput_bytes_per_sec);
        let previous = self.previous_dirty.replace(m.dirty_pages);
        if expected <= downtime_limit_ms.saturating_mul(1000) {
            return Decision::SwitchOver(SwitchReason::Converged);
        }
        if m.round + 1 >= max_rounds {
            return Decision::SwitchOver(SwitchReason::MaxRounds);
        }
        // Shrinking means at least 10 % fewer dirty pages than the previous round.
        let shrinking =
            previous.is_none_or(|p| m.dirty_pages.saturating_mul(10) <= p.saturating_mul(9));
        if !shrinking {
            if self.throttle >= THROTTLE_MAX {
                return Decision::SwitchOver(SwitchReason::NotShrinking);
            }
            self.throttle = match self.throttle {
                0 => THROTTLE_INITIAL,
                t => t.saturating_add(THROTTLE_STEP).min(THROTTLE_MAX),
            };
        }
        Decision::Continue {
            throttle: self.throttle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(round: u32, dirty_pages: u64) -> RoundMeasurement {
        RoundMeasurement {
            round,
            dirty_pages,
            throughput_bytes_per_sec: 4096 * 1000, // 1000 pages/s
        }
    }

    #[test]
    fn downtime_estimate() {
        assert_eq!(expected_downtime_us(0, 0), 0);
        assert_eq!(expected_downtime_us(1, 0), u64::MAX);
        assert_eq!(expected_downtime_us(1000, 4096 * 1000), 1_000_000);
    }

    #[test]
    fn converges_when_within_limit() {
        let mut p = ConvergencePolicy::default();
        assert_eq!(
            p.decide(round(0, 500), 100, 30),
            Decision::Continue { throttle: 0 }
        );
        assert_eq!(
            p.decide(round(1, 200), 100, 30),
            Decision::Continue { throttle: 0 }
        );
        assert_eq!(
            p.decide(round(2, 100), 100, 30),
            Decision::SwitchOver(SwitchReason::Converged)
        );
    }

    #[test]
    fn throttles_stepwise_then_gives_up() {
        let mut p = ConvergencePolicy::default();
        let mut throttles = alloc::vec::Vec::new();
        let mut r = 0;
        let last = loop {
            match p.decide(round(r, 5000), 10, 1000) {
                Decision::Continue { throttle } => throttles.push(throttle),
                d => break d,
            }
            r += 1;
        };
        assert_eq!(throttles[..4], [0, 20, 30, 40]);
        assert_eq!(*throttles.last().unwrap(), THROTTLE_MAX);
        assert_eq!(last, Decision::SwitchOver(SwitchReason::NotShrinking));
    }

    #[test]
    fn max_rounds_forces_switch() {
        let mut p = ConvergencePolicy::default();
        assert!(matches!(
            p.decide(round(0, 5000), 10, 2),
            Decision::Continue { .. }
        ));
        assert_eq!(
            p.decide(round(1, 100), 10, 2),
            Decision::SwitchOver(SwitchReason::MaxRounds)
        );
    }
}
