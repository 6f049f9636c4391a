//! The allowed range of every numeric migration parameter, used by both places an operator
//! can set one: `tern.cfg`'s `[migration]` section (parsed here, in the loader and again in
//! the hypervisor) and the console's `migrate_set_parameter` (`hypervisor::migration::params`).
//!
//! Why one table: the two used to accept different ranges for the same parameter (a
//! downtime limit of 4294967295 ms in the file, at most 600000 at the console), so a value
//! the file accepted could not be typed again at the console. A parameter's range, its
//! parser and the text of what is expected now exist once.

use super::value::decimal;

/// The inclusive range of a numeric parameter and the text an error shows for a value
/// outside it (or not a plain decimal number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// What is expected, for "`VALUE` is not EXPECTED" messages.
    pub expected: &'static str,
}

impl Bounds {
    /// Parses plain decimal digits (no sign, no `0x`, no `_`) inside the range.
    pub fn parse(&self, text: &str) -> Result<u64, &'static str> {
        decimal(text)
            .filter(|v| (self.min..=self.max).contains(v))
            .ok_or(self.expected)
    }

    /// [`Bounds::parse`] for a parameter stored as `u32` (its `max` fits, checked below).
    pub fn parse_u32(&self, text: &str) -> Result<u32, &'static str> {
        self.parse(text)
            .and_then(|v| u32::try_from(v).map_err(|_| self.expected))
    }
}

/// `[migration] downtime_limit_ms` / `migrate_set_parameter downtime-limit`: 1 ms to 10 min.
pub const DOWNTIME_LIMIT_MS: Bounds = Bounds {
    min: 1,
    max: 600_000,
    expected: "milliseconds from 1 to 600000",
};

/// `[migration] max_bandwidth_mib` / `migrate_set_parameter max-bandwidth`: 0 (unlimited)
/// to 1 TiB/s.
pub const MAX_BANDWIDTH_MIB: Bounds = Bounds {
    min: 0,
    max: 1 << 20,
    expected: "MiB/s from 0 (unlimited) to 1048576",
};

/// `migrate_set_parameter max-rounds` (console only).
pub const MAX_ROUNDS: Bounds = Bounds {
    min: 1,
    max: 10_000,
    expected: "a round count from 1 to 10000",
};

/// `migrate_set_parameter delta-cache` (console only).
pub const DELTA_CACHE_MIB: Bounds = Bounds {
    min: 0,
    max: 1024,
    expected: "MiB from 0 (off) to 1024",
};

/// `migrate_set_parameter cpu-budget` (console only): percent of the core the migration may
/// use while the guest runs.
pub const CPU_BUDGET_PERCENT: Bounds = Bounds {
    min: 1,
    max: 100,
    expected: "a percentage from 1 to 100 (100: no limit)",
};

// The config stores these as `u32`, the console's `max-rounds` as `u32` too.
const _: () = assert!(DOWNTIME_LIMIT_MS.max <= u32::MAX as u64);
const _: () = assert!(MAX_BANDWIDTH_MIB.max <= u32::MAX as u64);
const _: () = assert!(MAX_ROUNDS.max <= u32::MAX as u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_inclusive_and_outside_is_refused_with_the_expected_text() {
        for b in [
            DOWNTIME_LIMIT_MS,
            MAX_BANDWIDTH_MIB,
            MAX_ROUNDS,
            DELTA_CACHE_MIB,
        ] {
            assert_eq!(b.parse(&alloc::format!("{}", b.min)), Ok(b.min));
            assert_eq!(b.parse(&alloc::format!("{}", b.max)), Ok(b.max));
            assert_eq!(b.parse(&alloc::format!("{}", b.max + 1)), Err(b.expected));
            if b.min > 0 {
                assert_eq!(b.parse(&alloc::format!("{}", b.min - 1)), Err(b.expected));
            }
            for bad in [
                "",
                "+1",
                "-1",
                "0x10",
                "1_0",
                " 1",
                "99999999999999999999999",
            ] {
                assert_eq!(b.parse(bad), Err(b.expected), "{bad:?}");
            }
        }
        assert_eq!(DOWNTIME_LIMIT_MS.parse_u32("600000"), Ok(600_000));
        assert_eq!(
            DOWNTIME_LIMIT_MS.parse_u32("4294967295"),
            Err(DOWNTIME_LIMIT_MS.expected)
        );
    }
}
