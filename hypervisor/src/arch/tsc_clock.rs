//! TSC arithmetic: turning a calibration measurement into a frequency and TSC readings into
//! nanoseconds. Portable; the measuring itself is in `arch::tsc`.
//!
//! Under Bochs the TSC advances exactly once per emulated instruction, so the frequency we
//! measure against the (emulated) PIT is the emulated instruction rate: uptime is then in
//! emulated seconds, which is what matters for timeouts seen by the emulated network.

/// The PIT's input clock (Hz): 105/88 MHz, the NTSC colour-burst crystal divided by 3.
pub const PIT_HZ: u64 = 1_193_182;

/// A calibrated TSC: `hz` ticks per second, counted from `origin` (boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    pub hz: u64,
    pub origin: u64,
}

impl TscClock {
    /// Nanoseconds from `origin` to `tsc` (0 if `tsc` is before it or `hz` is unknown).
    pub fn nanos_at(&self, tsc: u64) -> u64 {
        if self.hz == 0 {
            return 0;
        }
        let ticks = tsc.saturating_sub(self.origin) as u128;
        (ticks * 1_000_000_000 / self.hz as u128).min(u64::MAX as u128) as u64
    }

    /// TSC ticks in `nanos` nanoseconds (for deadlines).
    pub fn ticks_in(&self, nanos: u64) -> u64 {
        ((nanos as u128 * self.hz as u128) / 1_000_000_000).min(u64::MAX as u128) as u64
    }
}

/// Frequency from a PIT-gated measurement: `tsc_delta` TSC ticks elapsed while the PIT counted
/// `pit_ticks`. `None` for a nonsensical measurement.
pub fn hz_from_pit(tsc_delta: u64, pit_ticks: u64) -> Option<u64> {
    if pit_ticks == 0 || tsc_delta == 0 {
        return None;
    }
    let hz = tsc_delta as u128 * PIT_HZ as u128 / pit_ticks as u128;
    u64::try_from(hz).ok()
}

/// Frequency from CPUID leaf 0x15 (TSC/crystal ratio EBX/EAX, crystal ECX Hz) with leaf 0x16
/// EAX (base MHz) as the fallback when the crystal frequency is not enumerated (SDM Vol. 2A,
/// CPUID leaves 15H and 16H).
pub fn hz_from_cpuid(leaf15: Option<(u32, u32, u32)>, leaf16_base_mhz: Option<u32>) -> Option<u64> {
    if let Some((denominator, numerator, crystal_hz)) = leaf15
        && denominator != 0
        && numerator != 0
        && crystal_hz != 0
    {
        return Some(crystal_hz as u64 * numerator as u64 / denominator as u64);
    }
    leaf16_base_mhz
        .filter(|&mhz| mhz != 0)
        .map(|mhz| mhz as u64 * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_and_ticks_convert_both_ways() {
        let c = TscClock {
            hz: 2_000_000_000,
            origin: 1000,
        };
        assert_eq!(c.nanos_at(1000), 0);
        assert_eq!(c.nanos_at(500), 0);
        assert_eq!(c.nanos_at(1000 + 3_000_000_000), 1_500_000_000);
        assert_eq!(c.ticks_in(1_000_000), 2_000_000);
        assert_eq!(TscClock { hz: 0, origin: 0 }.nanos_at(99), 0);
        // No overflow after years of uptime at high rates.
        assert!(TscClock { hz: 1, origin: 0 }.nanos_at(u64::MAX) == u64::MAX);
    }

    #[test]
    fn pit_measurement_gives_frequency() {
        // 20 ms of PIT ticks (23864) during 60,000,000 TSC ticks is ~3 GHz.
        let hz = hz_from_pit(60_000_000, 23_864).unwrap();
        assert!((2_990_000_000..3_010_000_000).contains(&hz), "{hz}");
        assert_eq!(hz_from_pit(0, 10), None);
        assert_eq!(hz_from_pit(10, 0), None);
    }

    #[test]
    fn cpuid_leaves_give_frequency() {
        // 24 MHz crystal, ratio 176/2: 2.112 GHz.
        assert_eq!(
            hz_from_cpuid(Some((2, 176, 24_000_000)), Some(2100)),
            Some(2_112_000_000)
        );
        // Crystal not enumerated: fall back to 0x16.
        assert_eq!(
            hz_from_cpuid(Some((2, 176, 0)), Some(2100)),
            Some(2_100_000_000)
        );
        assert_eq!(hz_from_cpuid(None, Some(0)), None);
        assert_eq!(hz_from_cpuid(None, None), None);
    }
}
