//! What VT-x features this CPU offers, decoded from the VMX capability MSRs.
//!
//! Decoding is portable and pure: [`VmxCapabilities::probe`] takes an MSR-reading closure and
//! reads only the MSRs the architecture guarantees to exist given what it has read so far
//! (reading an absent MSR raises #GP), so both the decoding and that ordering are tested on
//! the host with fake MSR values. The bare-metal reader lives in `arch::cpu`.
//!
//! References: Intel SDM Vol. 3D, Appendix A ("VMX Capability Reporting Facility").

use core::fmt::Write;

/// IA32_FEATURE_CONTROL (SDM Vol. 3C §24.7 "Enabling and Entering VMX Operation").
pub const IA32_FEATURE_CONTROL: u32 = 0x3a;
/// IA32_VMX_BASIC (SDM App. A.1).
pub const IA32_VMX_BASIC: u32 = 0x480;
/// IA32_VMX_PINBASED_CTLS (SDM App. A.3.1).
pub const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
/// IA32_VMX_PROCBASED_CTLS (SDM App. A.3.2).
pub const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
/// IA32_VMX_MISC (SDM App. A.6).
pub const IA32_VMX_MISC: u32 = 0x485;
/// IA32_VMX_PROCBASED_CTLS2 (SDM App. A.3.3).
pub const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48b;
/// IA32_VMX_EPT_VPID_CAP (SDM App. A.10).
pub const IA32_VMX_EPT_VPID_CAP: u32 = 0x48c;
/// IA32_VMX_TRUE_PINBASED_CTLS (SDM App. A.3.1).
pub const IA32_VMX_TRUE_PINBASED_CTLS: u32 = 0x48d;
/// IA32_VMX_TRUE_PROCBASED_CTLS (SDM App. A.3.2).
pub const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48e;

const fn bit(v: u64, n: u32) -> bool {
    (v >> n) & 1 == 1
}

/// The allowed-1 settings of a control MSR are its high dword (SDM App. A.3).
const fn allowed1(v: u64, n: u32) -> bool {
    bit(v, 32 + n)
}

/// IA32_FEATURE_CONTROL as far as VMX is concerned (SDM Vol. 3C §24.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureControl {
    /// Bit 0: the MSR is locked until reset; VMXON needs it set.
    pub locked: bool,
    /// Bit 2: VMXON allowed outside SMX operation.
    pub vmx_outside_smx: bool,
}

impl FeatureControl {
    pub const fn decode(raw: u64) -> FeatureControl {
        FeatureControl {
            locked: bit(raw, 0),
            vmx_outside_smx: bit(raw, 2),
        }
    }

    /// Firmware locked the MSR without enabling VMX: VMXON would #GP until the next reset.
    pub const fn forbids_vmx(&self) -> bool {
        self.locked && !self.vmx_outside_smx
    }
}

/// Decoded VT-x capabilities (only what tern uses or reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmxCapabilities {
    /// VMCS revision identifier, IA32_VMX_BASIC bits 30:0 (SDM App. A.1).
    pub vmcs_revision: u32,
    /// VMXON/VMCS region size in bytes, IA32_VMX_BASIC bits 44:32 (SDM App. A.1).
    pub vmcs_size: u32,
    /// IA32_VMX_BASIC bit 55: the TRUE_*_CTLS MSRs exist and are authoritative (SDM App. A.1).
    pub true_controls: bool,
    /// Primary processor-based allowed-1 bit 31 (SDM App. A.3.2).
    pub secondary_controls: bool,
    /// Secondary allowed-1 bit 1 (SDM App. A.3.3).
    pub ept: bool,
    /// Secondary allowed-1 bit 5 (SDM App. A.3.3).
    pub vpid: bool,
    /// Secondary allowed-1 bit 7 (SDM App. A.3.3).
    pub unrestricted_guest: bool,
    /// Secondary allowed-1 bit 17: page-modification logging (SDM App. A.3.3).
    pub pml: bool,
    /// IA32_VMX_EPT_VPID_CAP bit 6: 4-level EPT page walks (SDM App. A.10).
    pub ept_4_level: bool,
    /// IA32_VMX_EPT_VPID_CAP bit 14: write-back EPT paging structures (SDM App. A.10).
    pub ept_write_back: bool,
    /// IA32_VMX_EPT_VPID_CAP bit 16: 2 MiB EPT pages (SDM App. A.10).
    pub ept_2m_pages: bool,
    /// IA32_VMX_EPT_VPID_CAP bit 20: INVEPT supported (SDM App. A.10).
    pub invept: bool,
    /// IA32_VMX_EPT_VPID_CAP bit 21: EPT accessed and dirty flags (SDM App. A.10).
    pub ept_accessed_dirty: bool,
    /// IA32_VMX_EPT_VPID_CAP bit 32: INVVPID supported (SDM App. A.10).
    pub invvpid: bool,
    /// Pin-based allowed-1 bit 6: VMX-preemption timer (SDM App. A.3.1).
    pub preemption_timer: bool,
    /// IA32_VMX_MISC bits 4:0: the timer counts down once per 2^rate TSC ticks (SDM App. A.6).
    pub preemption_timer_rate: u8,
}

impl VmxCapabilities {
    /// Reads and decodes the capability MSRs through `rdmsr`. Only call on a CPU with
    /// CPUID.1:ECX.VMX[bit 5] = 1 (the MSRs do not exist otherwise). The secondary controls MSR
    /// is read only if primary allowed-1 bit 31 is set, and IA32_VMX_EPT_VPID_CAP only if EPT or
    /// VPID can be enabled (SDM App. A.3.3, A.10).
    pub fn probe(mut rdmsr: impl FnMut(u32) -> u64) -> VmxCapabilities {
        let basic = rdmsr(IA32_VMX_BASIC);
        let true_controls = bit(basic, 55);
        let (pin_msr, proc_msr) = if true_controls {
            (IA32_VMX_TRUE_PINBASED_CTLS, IA32_VMX_TRUE_PROCBASED_CTLS)
        } else {
            (IA32_VMX_PINBASED_CTLS, IA32_VMX_PROCBASED_CTLS)
        };
        let pin = rdmsr(pin_msr);
        let primary = rdmsr(proc_msr);
        let misc = rdmsr(IA32_VMX_MISC);
        let secondary_controls = allowed1(primary, 31);
        let secondary = if secondary_controls {
            rdmsr(IA32_VMX_PROCBASED_CTLS2)
        } else {
            0
        };
        let ept = allowed1(secondary, 1);
        let vpid = allowed1(secondary, 5);
        let ept_vpid = if ept || vpid {
            rdmsr(IA32_VMX_EPT_VPID_CAP)
        } else {
            0
        };
        VmxCapabilities {
            vmcs_revision: (basic & 0x7fff_ffff) as u32,
            vmcs_size: ((basic >> 32) & 0x1fff) as u32,
            true_controls,
            secondary_controls,
            ept,
            vpid,
            unrestricted_guest: allowed1(secondary, 7),
            pml: allowed1(secondary, 17),
            ept_4_level: ept && bit(ept_vpid, 6),
            ept_write_back: ept && bit(ept_vpid, 14),
            ept_2m_pages: ept && bit(ept_vpid, 16),
            invept: ept && bit(ept_vpid, 20),
            ept_accessed_dirty: ept && bit(ept_vpid, 21),
            invvpid: vpid && bit(ept_vpid, 32),
            preemption_timer: allowed1(pin, 6),
            preemption_timer_rate: (misc & 0x1f) as u8,
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// What the boot banner and `info` say about VT-x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmxStatus {
    /// CPUID.1:ECX.VMX[bit 5] = 0.
    NotPresent,
    /// The CPU has VMX but firmware locked IA32_FEATURE_CONTROL with it disabled.
    DisabledByFirmware,
    /// Usable (IA32_FEATURE_CONTROL is either unlocked, and we will lock it, or enables VMX).
    Available {
        caps: VmxCapabilities,
        feature_control: FeatureControl,
    },
}

impl VmxStatus {
    pub fn is_available(&self) -> bool {
        matches!(self, VmxStatus::Available { .. })
    }

    /// Writes the one-line VT-x summary (no trailing newline). System tests match the
    /// substrings `VT-x: available` and `VT-x: not available`.
    pub fn write_summary(&self, out: &mut dyn Write) -> core::fmt::Result {
        match self {
            VmxStatus::NotPresent => out.write_str(
                "VT-x: not available (CPUID.1:ECX.VMX=0): guests cannot run; console and network keep working",
            ),
            VmxStatus::DisabledByFirmware => out.write_str(
                "VT-x: not available (disabled by firmware: IA32_FEATURE_CONTROL locked with VMX off): guests cannot run; console and network keep working",
            ),
            VmxStatus::Available { caps, .. } => {
                write!(
                    out,
                    "VT-x: available: EPT {}, unrestricted-guest {}, VPID {}, PML {}, EPT-A/D {}, preemption-timer {}",
                    yes_no(caps.ept),
                    yes_no(caps.unrestricted_guest),
                    yes_no(caps.vpid),
                    yes_no(caps.pml),
                    yes_no(caps.ept_accessed_dirty),
                    yes_no(caps.preemption_timer),
                )?;
                if caps.preemption_timer {
                    write!(out, " (rate 2^{})", caps.preemption_timer_rate)?;
                }
                Ok(())
            }
        }
    }

    /// Writes the detail lines for `info` (after the summary).
    pub fn write_details(&self, out: &mut dyn Write) -> core::fmt::Result {
        let VmxStatus::Available {
            caps,
            feature_control,
        } = self
        else {
            return Ok(());
        };
        writeln!(
            out,
            "  VMCS revision {:#x}, region {} bytes, TRUE controls {}, secondary controls {}",
            caps.vmcs_revision,
            caps.vmcs_size,
            yes_no(caps.true_controls),
            yes_no(caps.secondary_controls)
        )?;
        writeln!(
            out,
            "  EPT 4-level {}, write-back {}, 2M pages {}, INVEPT {}, INVVPID {}",
            yes_no(caps.ept_4_level),
            yes_no(caps.ept_write_back),
            yes_no(caps.ept_2m_pages),
            yes_no(caps.invept),
            yes_no(caps.invvpid)
        )?;
        writeln!(
            out,
            "  IA32_FEATURE_CONTROL: {}, VMX outside SMX {}",
            if feature_control.locked {
                "locked"
            } else {
                "unlocked (VMXON setup may enable and lock it)"
            },
            if feature_control.vmx_outside_smx {
                "enabled"
            } else {
                "not yet enabled"
            }
        )
    }
}

#[cfg(test)]
#[path = "vmx_capabilities_tests.rs"]
mod tests;
