//! Fixed-point formatting of sizes, durations and rates for operator messages (the
//! hypervisor target is soft-float; integers keep the output exact and cheap).

use core::fmt;

/// Bytes as MiB with two decimals, e.g. `5.00 MiB`.
pub struct Mib(pub u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hundredths = u128::from(self.0) * 100 / (1 << 20);
        write!(f, "{}.{:02} MiB", hundredths / 100, hundredths % 100)
    }
}

/// Microseconds as seconds with three decimals, e.g. `1.250 s`.
pub struct Seconds(pub u64);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 / 1000;
        write!(f, "{}.{:03} s", ms / 1000, ms % 1000)
    }
}

/// A rate in MiB/s with two decimals from bytes and microseconds.
pub struct MibPerSec {
    /// Bytes moved.
    pub bytes: u64,
    /// Over this many microseconds (zero is treated as one).
    pub micros: u64,
}

impl fmt::Display for MibPerSec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = u128::from(self.micros.max(1));
        let hundredths = u128::from(self.bytes) * 100 * 1_000_000 / (micros * (1 << 20));
        write!(f, "{}.{:02} MiB/s", hundredths / 100, hundredths % 100)
    }
}

/// Milliseconds with three decimals from microseconds, e.g. `0.412 ms`.
pub struct Millis(pub u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03} ms", self.0 / 1000, self.0 % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn formats() {
        assert_eq!(format!("{}", Mib(5 << 20)), "5.00 MiB");
        assert_eq!(format!("{}", Mib(1 << 19)), "0.50 MiB");
        assert_eq!(format!("{}", Seconds(1_250_000)), "1.250 s");
        assert_eq!(
            format!(
                "{}",
                MibPerSec {
                    bytes: 10 << 20,
                    micros: 4_000_000
                }
            ),
            "2.50 MiB/s"
        );
        assert_eq!(
            format!(
                "{}",
                MibPerSec {
                    bytes: 0,
                    micros: 0
                }
            ),
            "0.00 MiB/s"
        );
        assert_eq!(format!("{}", Millis(412)), "0.412 ms");
        assert_eq!(format!("{}", Millis(12_345)), "12.345 ms");
    }
}
