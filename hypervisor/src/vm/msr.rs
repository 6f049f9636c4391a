//! Which MSRs a guest may touch, and how: the MSR allow-list.
//!
//! Three classes:
//! * **Pass-through** MSRs that VM entry/exit load and save through the VMCS (EFER, PAT,
//!   FS/GS base, SYSENTER_*; SDM Vol. 3C §27.3.2.1 loading, §28.3.3 saving) or that the
//!   vCPU switch saves and restores (the SYSCALL MSRs, KERNEL_GS_BASE, TSC_AUX: the VMCS
//!   does not hold them, see [`SWITCHED_ON_VCPU_CHANGE`]). The MSR bitmap lets the guest
//!   access them without an exit.
//! * **Emulated** MSRs the guest reads (and sometimes writes) through an exit: fixed
//!   values that describe the virtual CPU, plus a few stored settings ([`MsrFile`]).
//! * Everything else: RDMSR/WRMSR injects #GP, exactly what a CPU without the MSR does.
//!
//! Pure logic over a small state struct, tested on the host. The MTRRs are their own
//! concept ([`mtrr`]).
//!
//! Emulated, and why each value (SDM Vol. 4 for the MSRs, Vol. 3A for the features):
//! * IA32_FEATURE_CONTROL reads locked with VMX off (no nested VMX; a guest that tries to
//!   enable it gets #GP as on a locked CPU, §23.7).
//! * IA32_MISC_ENABLE: fast strings, and "BTS unavailable" / "PEBS unavailable" (bits 11,
//!   12) so a guest does not look for the debug store; writes may only toggle fast strings.
//! * MSR_PLATFORM_INFO (0xCE) reads 0: no ratio to report, no CPUID faulting (bit 31).
//! * The MTRRs ([`mtrr`], §11.11) are stored and validated.
//! * IA32_TSC_ADJUST (0x3b, SDM Vol. 3B §18.17.3): reads what was last written (0 at
//!   reset); a write of X moves the guest's TSC by X minus the old value, which the exit
//!   handler applies to the VMCS TSC offset ([`MsrFile::write_tsc_adjust`]). Offered (CPUID
//!   7.0:EBX[1]) together with the invariant TSC because Linux trusts a TSC that is
//!   constant, non-stop and has TSC_ADJUST and then runs no clocksource watchdog against
//!   the (interrupt-driven, so late under emulation) jiffies. A WRMSR of IA32_TSC itself
//!   still #GPs (tern does not emulate it; Linux does not write it).
//! * IA32_SPEC_CTRL, IA32_PRED_CMD, IA32_ARCH_CAPABILITIES and the performance counters
//!   #GP: no CPU model shows them (CPUID.7.0:EDX bits 26, 27, 29 are never set).

/// MSR numbers (SDM Vol. 4).
pub mod index {
    #![allow(missing_docs)]
    pub const IA32_TSC: u32 = 0x10;
    pub const IA32_PLATFORM_ID: u32 = 0x17;
    pub const IA32_APIC_BASE: u32 = 0x1b;
    pub const IA32_FEATURE_CONTROL: u32 = 0x3a;
    pub const IA32_TSC_ADJUST: u32 = 0x3b;
    pub const IA32_BIOS_SIGN_ID: u32 = 0x8b;
    pub const MSR_PLATFORM_INFO: u32 = 0xce;
    pub const IA32_MTRRCAP: u32 = 0xfe;
    pub const IA32_SYSENTER_CS: u32 = 0x174;
    pub const IA32_SYSENTER_ESP: u32 = 0x175;
    pub const IA32_SYSENTER_EIP: u32 = 0x176;
    pub const IA32_MCG_CAP: u32 = 0x179;
    pub const IA32_DEBUGCTL: u32 = 0x1d9;
    pub const IA32_MCG_STATUS: u32 = 0x17a;
    pub const IA32_MISC_ENABLE: u32 = 0x1a0;
    pub const IA32_PAT: u32 = 0x277;
    pub const IA32_MTRR_DEF_TYPE: u32 = 0x2ff;
    pub const IA32_EFER: u32 = 0xc000_0080;
    pub const IA32_STAR: u32 = 0xc000_0081;
    pub const IA32_LSTAR: u32 = 0xc000_0082;
    pub const IA32_CSTAR: u32 = 0xc000_0083;
    pub const IA32_FMASK: u32 = 0xc000_0084;
    pub const IA32_FS_BASE: u32 = 0xc000_0100;
    pub const IA32_GS_BASE: u32 = 0xc000_0101;
    pub const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;
    pub const IA32_TSC_AUX: u32 = 0xc000_0103;
}

pub mod mtrr;

use index::*;
use mtrr::Mtrrs;

/// MSRs the guest accesses without exits because the VMCS loads/saves them.
pub const PASSTHROUGH_VMCS: [u32; 7] = [
    IA32_EFER,
    IA32_PAT,
    IA32_FS_BASE,
    IA32_GS_BASE,
    IA32_SYSENTER_CS,
    IA32_SYSENTER_ESP,
    IA32_SYSENTER_EIP,
];

/// MSRs the guest accesses without exits that the VMCS does not switch: the vCPU run loop
/// must save them after the last exit of one vCPU and restore them before the next vCPU
/// enters (the hypervisor itself does not use SYSCALL or SWAPGS, so it needs no values of
/// its own in between).
pub const SWITCHED_ON_VCPU_CHANGE: [u32; 6] = [
    IA32_STAR,
    IA32_LSTAR,
    IA32_CSTAR,
    IA32_FMASK,
    IA32_KERNEL_GS_BASE,
    IA32_TSC_AUX,
];

/// What the exit handler does for an intercepted RDMSR/WRMSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrOutcome {
    /// RDMSR: put this value in EDX:EAX. WRMSR: the write was accepted.
    Value(u64),
    /// Inject #GP(0).
    InjectGp,
}

/// Guest APIC base: the architectural default, BSP flag (bit 8) and global enable (bit 11).
/// CPUID hides the APIC for now, so a guest that reads this anyway sees the default.
const APIC_BASE_DEFAULT: u64 = 0xfee0_0000 | (1 << 8) | (1 << 11);
/// IA32_FEATURE_CONTROL as the guest sees it: locked, VMX disabled (no nested VMX).
const FEATURE_CONTROL_LOCKED: u64 = 1;
/// IA32_MISC_ENABLE: fast strings (bit 0), BTS unavailable (11), PEBS unavailable (12).
const MISC_ENABLE_DEFAULT: u64 = 1 | (1 << 11) | (1 << 12);
/// The IA32_MISC_ENABLE bit a guest may change: fast strings.
const MISC_ENABLE_WRITABLE: u64 = 1;
/// IA32_PAT power-on value (SDM Vol. 3A §13.12.4).
pub const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;

/// Emulated MSR state of one vCPU (what migration must carry besides the VMCS fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsrFile {
    /// The MTRRs as last written (not enforced: EPT memory types decide).
    pub mtrrs: Mtrrs,
    /// IA32_MISC_ENABLE as seen by the guest.
    pub misc_enable: u64,
    /// IA32_TSC_ADJUST: the sum of the guest's own moves of its TSC (SDM Vol. 3B §18.17.3).
    pub tsc_adjust: u64,
}

impl Default for MsrFile {
    fn default() -> Self {
        Self {
            mtrrs: Mtrrs::default(),
            misc_enable: MISC_ENABLE_DEFAULT,
            tsc_adjust: 0,
        }
    }
}

/// Whether `value` is a valid IA32_PAT: every byte one of the memory types 0, 1, 4, 5, 6,
/// 7 (SDM Vol. 3A §13.12.2; other encodings #GP).
pub fn pat_valid(value: u64) -> bool {
    value
        .to_le_bytes()
        .iter()
        .all(|t| matches!(t, 0 | 1 | 4 | 5 | 6 | 7))
}

/// Whether `value` is a valid XCR0 for XSETBV given the components we offer: x87 (bit 0)
/// must be set, AVX (bit 2) requires SSE (bit 1), nothing outside `offered` (SDM Vol. 1
/// §13.3; anything else makes XSETBV #GP).
pub fn xcr0_valid(value: u64, offered: u64) -> bool {
    value & 1 != 0 && value & !offered == 0 && (value & 0b100 == 0 || value & 0b010 != 0)
}

impl MsrFile {
    /// An intercepted RDMSR. `tsc` is the guest's current TSC (host TSC plus offset).
    pub fn read(&self, msr: u32, tsc: u64) -> MsrOutcome {
        if let Some(v) = self.mtrrs.read(msr) {
            return MsrOutcome::Value(v);
        }
        MsrOutcome::Value(match msr {
            IA32_TSC => tsc,
            IA32_PLATFORM_ID | IA32_BIOS_SIGN_ID | IA32_MCG_CAP | IA32_MCG_STATUS => 0,
            MSR_PLATFORM_INFO => 0,
            IA32_APIC_BASE => APIC_BASE_DEFAULT,
            IA32_FEATURE_CONTROL => FEATURE_CONTROL_LOCKED,
            IA32_MISC_ENABLE => self.misc_enable,
            IA32_TSC_ADJUST => self.tsc_adjust,
            _ => return MsrOutcome::InjectGp,
        })
    }

    /// A WRMSR of IA32_TSC_ADJUST with `value`: returns how far the guest's TSC moves (to add,
    /// wrapping, to the TSC offset). "If an execution of WRMSR to the IA32_TSC_ADJUST MSR adds
    /// (or subtracts) value X from that MSR, logical processor also adds (or subtracts) value
    /// X from the TSC" (SDM Vol. 3B §18.17.3).
    pub fn write_tsc_adjust(&mut self, value: u64) -> u64 {
        let delta = value.wrapping_sub(self.tsc_adjust);
        self.tsc_adjust = value;
        delta
    }

    /// An intercepted WRMSR of `value`; `phys_bits` is the guest's MAXPHYADDR (CPUID
    /// 0x8000_0008 EAX[7:0]), the limit of MTRR base and mask fields.
    pub fn write(&mut self, msr: u32, value: u64, phys_bits: u32) -> MsrOutcome {
        if mtrr::is_mtrr(msr) {
            return if self.mtrrs.write(msr, value, phys_bits) {
                MsrOutcome::Value(value)
            } else {
                MsrOutcome::InjectGp
            };
        }
        match msr {
            // Microcode update trigger reads: guests write 0 before reading the signature.
            IA32_BIOS_SIGN_ID => {}
            IA32_MISC_ENABLE if (value ^ self.misc_enable) & !MISC_ENABLE_WRITABLE == 0 => {
                self.misc_enable = value;
            }
            IA32_MCG_STATUS if value == 0 => {}
            _ => return MsrOutcome::InjectGp,
        }
        MsrOutcome::Value(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_emulated_and_unknown_msrs() {
        let f = MsrFile::default();
        assert_eq!(f.read(IA32_TSC, 1234), MsrOutcome::Value(1234));
        assert_eq!(f.read(IA32_FEATURE_CONTROL, 0), MsrOutcome::Value(1));
        assert_eq!(f.read(IA32_APIC_BASE, 0), MsrOutcome::Value(0xfee0_0900));
        assert_eq!(f.read(0x1234, 0), MsrOutcome::InjectGp);
        assert_eq!(f.read(0x48, 0), MsrOutcome::InjectGp, "SPEC_CTRL is hidden");
        assert_eq!(
            f.read(0x10a, 0),
            MsrOutcome::InjectGp,
            "ARCH_CAPABILITIES too"
        );
        assert_eq!(f.read(IA32_MTRRCAP, 0), MsrOutcome::Value(0x508));
        assert_eq!(f.read(MSR_PLATFORM_INFO, 0), MsrOutcome::Value(0));
        assert_eq!(f.read(IA32_MISC_ENABLE, 0), MsrOutcome::Value(0x1801));
    }

    #[test]
    fn tsc_adjust_reports_the_move_of_each_write() {
        let mut f = MsrFile::default();
        assert_eq!(f.read(IA32_TSC_ADJUST, 0), MsrOutcome::Value(0));
        assert_eq!(f.write_tsc_adjust(10), 10);
        assert_eq!(f.write_tsc_adjust(10), 0, "same value: no move");
        assert_eq!(f.write_tsc_adjust(4), 6u64.wrapping_neg());
        assert_eq!(f.read(IA32_TSC_ADJUST, 0), MsrOutcome::Value(4));
    }

    #[test]
    fn writes_are_validated() {
        let mut f = MsrFile::default();
        assert_eq!(
            f.write(IA32_MTRR_DEF_TYPE, 0xc06, 39),
            MsrOutcome::Value(0xc06)
        );
        assert_eq!(f.read(IA32_MTRR_DEF_TYPE, 0), MsrOutcome::Value(0xc06));
        assert_eq!(f.write(IA32_MTRR_DEF_TYPE, 0x2, 39), MsrOutcome::InjectGp);
        assert_eq!(f.write(IA32_MTRR_DEF_TYPE, 0x7, 39), MsrOutcome::InjectGp);
        assert_eq!(
            f.write(IA32_MTRR_DEF_TYPE, 0x1006, 39),
            MsrOutcome::InjectGp
        );
        assert_eq!(
            f.write(0x201, 0x7f_c000_0800, 39),
            MsrOutcome::Value(0x7f_c000_0800)
        );
        assert_eq!(f.read(0x201, 0), MsrOutcome::Value(0x7f_c000_0800));
        assert_eq!(f.write(IA32_MTRRCAP, 0x508, 39), MsrOutcome::InjectGp);
        assert_eq!(f.write(IA32_FEATURE_CONTROL, 5, 39), MsrOutcome::InjectGp);
        assert_eq!(
            f.write(IA32_MISC_ENABLE, 0x1801, 39),
            MsrOutcome::Value(0x1801)
        );
        assert_eq!(
            f.write(IA32_MISC_ENABLE, 0x1800, 39),
            MsrOutcome::Value(0x1800)
        );
        assert_eq!(f.read(IA32_MISC_ENABLE, 0), MsrOutcome::Value(0x1800));
        assert_eq!(f.write(IA32_MISC_ENABLE, 0, 39), MsrOutcome::InjectGp);
        assert_eq!(f.write(MSR_PLATFORM_INFO, 0, 39), MsrOutcome::InjectGp);
        assert_eq!(f.write(0x48, 0, 39), MsrOutcome::InjectGp, "SPEC_CTRL");
        assert_eq!(f.write(0x1234, 0, 39), MsrOutcome::InjectGp);
    }

    #[test]
    fn pat_and_xcr0_rules() {
        assert!(pat_valid(PAT_DEFAULT));
        assert!(!pat_valid((PAT_DEFAULT & !0xff) | 0x02));
        assert!(xcr0_valid(0b001, 0b111));
        assert!(xcr0_valid(0b111, 0b111));
        assert!(!xcr0_valid(0b000, 0b111), "x87 is mandatory");
        assert!(!xcr0_valid(0b101, 0b111), "AVX needs SSE");
        assert!(!xcr0_valid(0b1011, 0b111), "not offered");
    }

    #[test]
    fn passthrough_sets_do_not_overlap_emulated() {
        let f = MsrFile::default();
        for msr in PASSTHROUGH_VMCS.iter().chain(&SWITCHED_ON_VCPU_CHANGE) {
            assert_eq!(
                f.read(*msr, 0),
                MsrOutcome::InjectGp,
                "{msr:#x} is not emulated"
            );
        }
    }
}
