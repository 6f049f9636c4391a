//! Where the guest's TSC rate comes from: `hb.tsc_khz=N` on the command line if the operator
//! gave it (an explicit override), else the hypervisor's timing leaf, else an assumed 1 GHz.
//!
//! Why CPUID: a guest cannot calibrate its TSC reliably under a hypervisor (its timers are
//! virtual and its time slices are interrupted), so hypervisors tell it the rate. The
//! de-facto convention (VMware, KVM/QEMU's `vmware-cpuid-freq`, tern): CPUID.1:ECX bit 31 says
//! a hypervisor is present, leaf 0x4000_0000 EAX names the highest hypervisor leaf, and leaf
//! 0x4000_0010 EAX is the TSC frequency in kHz. On bare metal the hypervisor bit is clear and
//! the leaves mean nothing (Intel CPUs answer an out-of-range leaf with the highest basic
//! leaf's data), so the bit is checked first.

/// The hypervisor leaf range's first leaf (EAX = highest hypervisor leaf).
pub const HYPERVISOR_BASE_LEAF: u32 = 0x4000_0000;
/// The timing leaf: EAX = TSC kHz, EBX = LAPIC timer kHz.
pub const TIMING_LEAF: u32 = 0x4000_0010;
/// The highest leaf a hypervisor range can have (the next range starts at 0x4000_0100).
const HYPERVISOR_LAST_LEAF: u32 = 0x4000_00ff;
/// CPUID.1:ECX bit 31: running under a hypervisor.
const ECX_HYPERVISOR: u32 = 1 << 31;

/// TSC frequency assumed when neither the command line nor the hypervisor gives one: 1 GHz.
pub const ASSUMED_TSC_KHZ: u64 = 1_000_000;

/// Where a TSC rate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TscSource {
    /// `hb.tsc_khz=N`.
    CommandLine,
    /// CPUID leaf 0x4000_0010.
    Cpuid,
    /// Nobody said: [`ASSUMED_TSC_KHZ`].
    Assumed,
}

impl TscSource {
    /// The spelling in the `HB-START` line (`tsc_from=...`).
    pub fn name(self) -> &'static str {
        match self {
            TscSource::CommandLine => "cmdline",
            TscSource::Cpuid => "cpuid",
            TscSource::Assumed => "assumed",
        }
    }
}

/// The TSC rate the guest uses, and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscRate {
    /// Kilohertz (never 0).
    pub khz: u64,
    /// Where it came from.
    pub source: TscSource,
}

impl TscRate {
    /// The command line's rate if given, else the hypervisor's, else the assumed one.
    pub fn choose(command_line_khz: Option<u64>, hypervisor_khz: Option<u64>) -> Self {
        match (command_line_khz, hypervisor_khz) {
            (Some(khz), _) if khz != 0 => Self {
                khz,
                source: TscSource::CommandLine,
            },
            (_, Some(khz)) if khz != 0 => Self {
                khz,
                source: TscSource::Cpuid,
            },
            _ => Self {
                khz: ASSUMED_TSC_KHZ,
                source: TscSource::Assumed,
            },
        }
    }
}

/// The TSC rate the hypervisor reports, if any; `cpuid(leaf)` returns EAX, EBX, ECX, EDX.
pub fn hypervisor_tsc_khz(cpuid: impl Fn(u32) -> [u32; 4]) -> Option<u64> {
    if cpuid(1)[2] & ECX_HYPERVISOR == 0 {
        return None;
    }
    let max_leaf = cpuid(HYPERVISOR_BASE_LEAF)[0];
    if !(TIMING_LEAF..=HYPERVISOR_LAST_LEAF).contains(&max_leaf) {
        return None;
    }
    match cpuid(TIMING_LEAF)[0] {
        0 => None,
        khz => Some(u64::from(khz)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CPU answering `hv_bit`, a highest hypervisor leaf and a timing leaf EAX; other
    /// leaves return a marker that must never be mistaken for a rate.
    fn cpu(hv_bit: bool, max_leaf: u32, timing_eax: u32) -> impl Fn(u32) -> [u32; 4] {
        move |leaf| match leaf {
            1 => [0, 0, if hv_bit { ECX_HYPERVISOR } else { 0 }, 0],
            HYPERVISOR_BASE_LEAF => [max_leaf, 0x6e72_6574, 0, 0],
            TIMING_LEAF => [timing_eax, 0, 0, 0],
            _ => [0xdead, 0xdead, 0xdead, 0xdead],
        }
    }

    #[test]
    fn the_timing_leaf_is_read_only_under_a_hypervisor_that_has_it() {
        assert_eq!(
            hypervisor_tsc_khz(cpu(true, TIMING_LEAF, 50_002)),
            Some(50_002)
        );
        assert_eq!(hypervisor_tsc_khz(cpu(false, TIMING_LEAF, 50_002)), None);
        // KVM without `vmware-cpuid-freq`: its range ends at 0x4000_0001.
        assert_eq!(hypervisor_tsc_khz(cpu(true, 0x4000_0001, 50_002)), None);
        // Garbage in the base leaf (e.g. basic-leaf data repeated): not a hypervisor range.
        assert_eq!(hypervisor_tsc_khz(cpu(true, 0x16, 50_002)), None);
        assert_eq!(hypervisor_tsc_khz(cpu(true, TIMING_LEAF, 0)), None);
    }

    #[test]
    fn the_command_line_overrides_the_hypervisor_which_beats_the_guess() {
        assert_eq!(
            TscRate::choose(Some(2_000_000), Some(50_002)),
            TscRate {
                khz: 2_000_000,
                source: TscSource::CommandLine
            }
        );
        assert_eq!(
            TscRate::choose(None, Some(50_002)),
            TscRate {
                khz: 50_002,
                source: TscSource::Cpuid
            }
        );
        assert_eq!(
            TscRate::choose(None, None),
            TscRate {
                khz: ASSUMED_TSC_KHZ,
                source: TscSource::Assumed
            }
        );
    }
}
