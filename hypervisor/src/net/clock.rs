//! Monotonic time for the network stack from the TSC.
//!
//! Why here: smoltcp wants a monotonic timestamp on every poll and the nettest/ping state
//! machines measure RTTs and throughput with it. The invariant TSC is the cheapest
//! monotonic counter we have; `arch` reads it and calibrates its frequency (PIT or CPUID
//! leaf 0x15), this type only turns ticks into microseconds without overflowing.

/// Converts TSC readings into microseconds since a fixed origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscClock {
    hz: u64,
    origin: u64,
}

impl TscClock {
    /// A clock ticking at `hz` (must be non-zero; `None` otherwise) whose zero is `origin`.
    pub fn new(hz: u64, origin: u64) -> Option<Self> {
        (hz != 0).then_some(Self { hz, origin })
    }

    /// Microseconds from the origin to `tsc`; readings before the origin count as zero.
    pub fn micros(&self, tsc: u64) -> u64 {
        let ticks = u128::from(tsc.saturating_sub(self.origin));
        // ticks < 2^64 and 10^6 < 2^20: the product fits u128; the quotient fits u64 for
        // any realistic frequency (>= 1 MHz).
        u64::try_from(ticks * 1_000_000 / u128::from(self.hz)).unwrap_or(u64::MAX)
    }

    /// The frequency implied by `ticks` TSC ticks elapsing over `micros` microseconds of a
    /// reference clock (PIT, HPET, ACPI PM timer); `None` if either is zero.
    pub fn frequency_from_calibration(ticks: u64, micros: u64) -> Option<u64> {
        if micros == 0 {
            return None;
        }
        let hz = u128::from(ticks) * 1_000_000 / u128::from(micros);
        u64::try_from(hz).ok().filter(|&hz| hz != 0)
    }

    /// The TSC frequency.
    pub fn hz(&self) -> u64 {
        self.hz
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_without_overflow() {
        let clock = TscClock::new(2_500_000_000, 1000).unwrap();
        assert_eq!(clock.micros(1000), 0);
        assert_eq!(clock.micros(500), 0);
        assert_eq!(clock.micros(1000 + 2_500_000_000), 1_000_000);
        assert_eq!(clock.micros(1000 + 2_500), 1);
        // Near the top of the TSC range the result is still exact.
        let clock = TscClock::new(1_000_000, 0).unwrap();
        assert_eq!(clock.micros(u64::MAX), u64::MAX);
        assert!(TscClock::new(0, 0).is_none());
        assert_eq!(
            TscClock::frequency_from_calibration(25_000_000, 10_000),
            Some(2_500_000_000)
        );
        assert_eq!(TscClock::frequency_from_calibration(5, 0), None);
    }
}
