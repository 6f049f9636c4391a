//! What VT-x features this CPU offers, for the boot banner and `info`: a report, never a
//! refusal (the refusals are `VmxConfig::from_msrs`, which decides whether guests can run).
//!
//! Why a second reader of the same MSRs: the report must work on CPUs that `VmxConfig`
//! refuses (to say what is missing), so it reads only what exists and fails on nothing. The
//! MSR numbers and bit meanings are the parent module's ([`super::msr`], [`VmxBasic`],
//! [`super::ept_vpid`]), so each is written once.
//!
//! Decoding is portable and pure: [`VmxCapabilities::probe`] takes an MSR-reading closure and
//! reads only the MSRs the architecture guarantees to exist given what it has read so far
//! (reading an absent MSR raises #GP), so both the decoding and that ordering are tested on
//! the host with fake MSR values. The bare-metal reader is `arch::cpu::vmx_status`.
//!
//! References: Intel SDM Vol. 3D, Appendix A ("VMX Capability Reporting Facility").

use core::fmt::Write;

use super::{ControlKind, VmxBasic, ept_vpid, msr};

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
            locked: raw & super::FEATURE_CONTROL_LOCK != 0,
            vmx_outside_smx: raw & super::FEATURE_CONTROL_VMX_OUTSIDE_SMX != 0,
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
    /// Interrupt-virtualization features (reported, not yet used: tern emulates the
    /// APIC behind EPT violations and injects on entry).
    pub apic: ApicVirtualization,
}

/// The APIC-virtualization controls the CPU allows (SDM Vol. 3C §25.6.1-25.6.2, chapter 30
/// "APIC Virtualization and Virtual Interrupts"; App. A.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApicVirtualization {
    /// Primary allowed-1 bit 2: interrupt-window exiting.
    pub interrupt_window_exiting: bool,
    /// Pin allowed-1 bit 5: virtual NMIs (needed for NMI-window exiting).
    pub virtual_nmis: bool,
    /// Primary allowed-1 bit 21: use TPR shadow.
    pub tpr_shadow: bool,
    /// Secondary allowed-1 bit 0: virtualize APIC accesses.
    pub virtualize_apic_accesses: bool,
    /// Secondary allowed-1 bit 4: virtualize x2APIC mode.
    pub virtualize_x2apic: bool,
    /// Secondary allowed-1 bit 8: APIC-register virtualization.
    pub apic_register_virtualization: bool,
    /// Secondary allowed-1 bit 9: virtual-interrupt delivery.
    pub virtual_interrupt_delivery: bool,
    /// Pin allowed-1 bit 7: process posted interrupts.
    pub posted_interrupts: bool,
}

impl VmxCapabilities {
    /// Reads and decodes the capability MSRs through `rdmsr`. Only call on a CPU with
    /// CPUID.1:ECX.VMX[bit 5] = 1 (the MSRs do not exist otherwise). The secondary controls MSR
    /// is read only if primary allowed-1 bit 31 is set, and IA32_VMX_EPT_VPID_CAP only if EPT or
    /// VPID can be enabled (SDM App. A.3.3, A.10).
    pub fn probe(mut rdmsr: impl FnMut(u32) -> u64) -> VmxCapabilities {
        let basic = VmxBasic::from_raw(rdmsr(msr::VMX_BASIC));
        let pin = rdmsr(ControlKind::PinBased.capability_msr(basic));
        let primary = rdmsr(ControlKind::PrimaryProcBased.capability_msr(basic));
        let misc = rdmsr(msr::VMX_MISC);
        let secondary_controls = allowed1(primary, 31);
        let secondary = if secondary_controls {
            rdmsr(msr::PROCBASED_CTLS2)
        } else {
            0
        };
        let ept = allowed1(secondary, 1);
        let vpid = allowed1(secondary, 5);
        let ept_vpid = if ept || vpid {
            rdmsr(msr::EPT_VPID_CAP)
        } else {
            0
        };
        VmxCapabilities {
            vmcs_revision: basic.revision_id,
            vmcs_size: u32::from(basic.region_size),
            true_controls: basic.true_controls,
            secondary_controls,
            ept,
            vpid,
            unrestricted_guest: allowed1(secondary, 7),
            pml: allowed1(secondary, 17),
            ept_4_level: ept && ept_vpid & ept_vpid::WALK_4_LEVEL != 0,
            ept_write_back: ept && ept_vpid & ept_vpid::WRITE_BACK != 0,
            ept_2m_pages: ept && ept_vpid & ept_vpid::PAGES_2M != 0,
            invept: ept && ept_vpid & ept_vpid::INVEPT != 0,
            ept_accessed_dirty: ept && ept_vpid & ept_vpid::ACCESSED_DIRTY != 0,
            invvpid: vpid && ept_vpid & ept_vpid::INVVPID != 0,
            preemption_timer: allowed1(pin, 6),
            preemption_timer_rate: (misc & 0x1f) as u8,
            apic: ApicVirtualization {
                interrupt_window_exiting: allowed1(primary, 2),
                virtual_nmis: allowed1(pin, 5),
                tpr_shadow: allowed1(primary, 21),
                virtualize_apic_accesses: allowed1(secondary, 0),
                virtualize_x2apic: allowed1(secondary, 4),
                apic_register_virtualization: allowed1(secondary, 8),
                virtual_interrupt_delivery: allowed1(secondary, 9),
                posted_interrupts: allowed1(pin, 7),
            },
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
        let apic = caps.apic;
        writeln!(
            out,
            "  interrupts: window exiting {}, virtual NMIs {}, TPR shadow {}, APIC-access virtualization {}, x2APIC virtualization {}, APIC-register virtualization {}, virtual-interrupt delivery {}, posted interrupts {}",
            yes_no(apic.interrupt_window_exiting),
            yes_no(apic.virtual_nmis),
            yes_no(apic.tpr_shadow),
            yes_no(apic.virtualize_apic_accesses),
            yes_no(apic.virtualize_x2apic),
            yes_no(apic.apic_register_virtualization),
            yes_no(apic.virtual_interrupt_delivery),
            yes_no(apic.posted_interrupts)
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
mod tests;
