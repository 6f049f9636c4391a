//! When to stop pre-copying, and how hard to throttle a guest that will not converge.
//!
//! After every live round the source knows how many pages the guest dirtied while the round
//! was sent and how fast the link moved bytes. The expected downtime of switching over now
//! is the remaining bytes divided by that throughput (plus the state and a round trip,
//! [`DowntimeEstimate`]). Switch over when it is within three quarters of the downtime limit
//! (the rest is kept for what the estimate cannot see), or at `max-rounds`. A guest that dirties as fast as the link sends never
//! gets there: when a round does not shrink the dirty set by at least 10 %, the vCPU is
//! throttled (auto-converge, as in QEMU: 20 % first, then +10 % per round up to 99 %), and
//! once the throttle is at its maximum and rounds still do not shrink, the source switches
//! over anyway rather than copy forever.
//!
//! The other brake, chosen with `migrate_set_parameter convergence dirty-limit`: instead of
//! taking CPU time away, limit the pages the vCPU may dirty per second (`dirty_limit`): half
//! the link's rate in pages at the first round that does not shrink, halved again at each
//! further one down to a floor. It works on guests whose writes are paced by their clock,
//! which the throttle cannot slow down.

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
    /// The downtime switching over now would cost, µs (see [`DowntimeEstimate`]).
    pub expected_downtime_us: u64,
}

/// What the stop phase will cost, from figures the source measured: the last dirty pages at
/// the wire size pages had in the last round, the VM's state, at the last round's
/// throughput, plus one round trip for the commit and its acknowledgement.
///
/// Why these terms: with the page digest (protocol version 3) nothing in the stop phase is
/// proportional to the VM's size any more, so what is left to send and one round trip is
/// the whole cost; the estimate is what the switch-over decision and `info migrate` use, and
/// the final statistics print it beside the downtime measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DowntimeEstimate {
    /// Pages still dirty.
    pub dirty_pages: u64,
    /// Wire bytes per data-carrying page sent in the last round (compression, headers,
    /// tags; zero pages left out, they cost two bytes); 0 = unknown, counted as a raw page.
    pub wire_bytes_per_page: u64,
    /// Bytes of vCPU and device state to send once the VM is paused.
    pub state_bytes: u64,
    /// Bytes per second the link moved in the last round (0 = unknown).
    pub throughput_bytes_per_sec: u64,
    /// Measured round trip to the destination, µs.
    pub round_trip_us: u64,
}

impl DowntimeEstimate {
    /// The estimate, µs (`u64::MAX` when the throughput is unknown and bytes remain).
    pub fn micros(&self) -> u64 {
        let per_page = match self.wire_bytes_per_page {
            0 => PAGE_SIZE,
            n => n.min(2 * PAGE_SIZE),
        };
        let bytes =
            u128::from(self.dirty_pages) * u128::from(per_page) + u128::from(self.state_bytes);
        if bytes == 0 {
            return self.round_trip_us;
        }
        if self.throughput_bytes_per_sec == 0 {
            return u64::MAX;
        }
        let us = bytes * 1_000_000 / u128::from(self.throughput_bytes_per_sec);
        u64::try_from(us)
            .unwrap_or(u64::MAX)
            .saturating_add(self.round_trip_us)
    }
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
            Self::NotShrinking => "not converging with the strongest brake",
        }
    }
}

/// How a guest that outruns the link is slowed (`migrate_set_parameter convergence`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvergenceMode {
    /// Take slices away from the vCPU (QEMU's auto-converge).
    #[default]
    AutoConverge,
    /// Limit the pages the vCPU may dirty per second (QEMU's dirty-limit).
    DirtyLimit,
}

impl ConvergenceMode {
    /// The console name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AutoConverge => "auto-converge",
            Self::DirtyLimit => "dirty-limit",
        }
    }

    /// From the console name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::AutoConverge, Self::DirtyLimit]
            .into_iter()
            .find(|m| m.name() == text)
    }
}

/// Lowest dirty-rate limit, pages per second: below it the brake is at its strongest.
pub const DIRTY_LIMIT_FLOOR: u64 = 8;

/// What slows the vCPU during the next round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Brake {
    /// Percent of the vCPU's slices taken away.
    pub throttle_percent: u8,
    /// Most pages the vCPU may dirty per second (`None`: no limit).
    pub dirty_limit: Option<u64>,
}

/// The decision after a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Pause the VM and send the rest.
    SwitchOver(SwitchReason),
    /// Another round, with this brake.
    Continue(Brake),
}

/// The convergence state carried across rounds.
#[derive(Clone, Debug, Default)]
pub struct ConvergencePolicy {
    mode: ConvergenceMode,
    previous_dirty: Option<u64>,
    brake: Brake,
}

impl ConvergencePolicy {
    /// A policy braking with `mode`.
    pub fn new(mode: ConvergenceMode) -> Self {
        ConvergencePolicy {
            mode,
            ..ConvergencePolicy::default()
        }
    }

    /// Current throttle, percent.
    pub fn throttle(&self) -> u8 {
        self.brake.throttle_percent
    }

    /// Current brake.
    pub fn brake(&self) -> Brake {
        self.brake
    }

    /// Decides after round `m.round` with the given limits.
    pub fn decide(
        &mut self,
        m: RoundMeasurement,
        downtime_limit_ms: u64,
        max_rounds: u32,
    ) -> Decision {
        let expected = m.expected_downtime_us;
        let previous = self.previous_dirty.replace(m.dirty_pages);
        // Switch over with a quarter of the limit to spare: what the estimate leaves out
        // (the last frames' per-frame latency, delayed ACKs, the destination's last decode
        // and hash, the poll loop) measured 20-140 ms in Bochs (docs/bench/migration.md).
        let budget_us = downtime_limit_ms.saturating_mul(1000) / 4 * 3;
        if expected <= budget_us {
            return Decision::SwitchOver(SwitchReason::Converged);
        }
        if m.round + 1 >= max_rounds {
            return Decision::SwitchOver(SwitchReason::MaxRounds);
        }
        // Shrinking means at least 10 % fewer dirty pages than the previous round.
        let shrinking =
            previous.is_none_or(|p| m.dirty_pages.saturating_mul(10) <= p.saturating_mul(9));
        if !shrinking {
            match self.mode {
                ConvergenceMode::AutoConverge => {
                    let throttle = self.brake.throttle_percent;
                    if throttle >= THROTTLE_MAX {
                        return Decision::SwitchOver(SwitchReason::NotShrinking);
                    }
                    self.brake.throttle_percent = match throttle {
                        0 => THROTTLE_INITIAL,
                        t => t.saturating_add(THROTTLE_STEP).min(THROTTLE_MAX),
                    };
                }
                ConvergenceMode::DirtyLimit => {
                    let link_pages = m.throughput_bytes_per_sec / PAGE_SIZE;
                    self.brake.dirty_limit = Some(match self.brake.dirty_limit {
                        Some(limit) if limit <= DIRTY_LIMIT_FLOOR => {
                            return Decision::SwitchOver(SwitchReason::NotShrinking);
                        }
                        Some(limit) => (limit / 2).max(DIRTY_LIMIT_FLOOR),
                        None => (link_pages / 2).max(DIRTY_LIMIT_FLOOR),
                    });
                }
            }
        }
        Decision::Continue(self.brake)
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
            expected_downtime_us: DowntimeEstimate {
                dirty_pages,
                throughput_bytes_per_sec: 4096 * 1000,
                ..DowntimeEstimate::default()
            }
            .micros(),
        }
    }

    #[test]
    fn downtime_estimate() {
        let e = |dirty_pages, wire_bytes_per_page, state_bytes, throughput, rtt| {
            DowntimeEstimate {
                dirty_pages,
                wire_bytes_per_page,
                state_bytes,
                throughput_bytes_per_sec: throughput,
                round_trip_us: rtt,
            }
            .micros()
        };
        assert_eq!(e(0, 0, 0, 0, 0), 0);
        assert_eq!(e(0, 0, 0, 0, 700), 700, "the commit round trip always");
        assert_eq!(e(1, 0, 0, 0, 0), u64::MAX);
        assert_eq!(e(1000, 0, 0, 4096 * 1000, 0), 1_000_000, "raw pages");
        assert_eq!(
            e(1000, 1024, 0, 4096 * 1000, 0),
            250_000,
            "compressed pages"
        );
        assert_eq!(e(0, 0, 8192, 4096 * 1000, 500), 2_500, "state + round trip");
        assert_eq!(
            e(10, 1 << 20, 0, 8192, 0),
            10_000_000,
            "per page capped at 2 pages"
        );
    }

    #[test]
    fn converges_when_within_limit() {
        let mut p = ConvergencePolicy::default();
        assert_eq!(
            p.decide(round(0, 500), 100, 30),
            Decision::Continue(Brake::default())
        );
        assert_eq!(
            p.decide(round(1, 200), 100, 30),
            Decision::Continue(Brake::default())
        );
        // 100 ms expected against a 100 ms limit: a quarter of the limit is kept in reserve.
        assert_eq!(
            p.decide(round(2, 100), 100, 30),
            Decision::Continue(Brake::default())
        );
        assert_eq!(
            p.decide(round(3, 75), 100, 30),
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
                Decision::Continue(brake) => throttles.push(brake.throttle_percent),
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
            Decision::Continue(_)
        ));
        assert_eq!(
            p.decide(round(1, 100), 10, 2),
            Decision::SwitchOver(SwitchReason::MaxRounds)
        );
    }

    #[test]
    fn dirty_limit_halves_from_half_the_link_rate_then_gives_up() {
        let mut p = ConvergencePolicy::new(ConvergenceMode::DirtyLimit);
        let mut limits = alloc::vec::Vec::new();
        let mut r = 0;
        let last = loop {
            match p.decide(round(r, 5000), 10, 1000) {
                Decision::Continue(brake) => {
                    assert_eq!(brake.throttle_percent, 0, "no throttle in this mode");
                    limits.push(brake.dirty_limit);
                }
                d => break d,
            }
            r += 1;
        };
        // Round 0 is the baseline; then 1000 pages/s link -> 500, 250, 125, 62, 31, 15, 8.
        assert_eq!(
            limits,
            [
                None,
                Some(500),
                Some(250),
                Some(125),
                Some(62),
                Some(31),
                Some(15),
                Some(8)
            ]
        );
        assert_eq!(last, Decision::SwitchOver(SwitchReason::NotShrinking));
        assert_eq!(
            ConvergenceMode::parse("dirty-limit"),
            Some(ConvergenceMode::DirtyLimit)
        );
        assert_eq!(ConvergenceMode::parse("fast"), None);
    }
}
