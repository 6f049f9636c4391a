//! Pure functions over the VMX capability MSRs: which control values the CPU allows, which
//! CR0/CR4 bits VMX operation fixes, what the EPT/VPID and miscellaneous MSRs offer.
//!
//! Why pure: these rules decide whether VMX can be enabled at all and are easy to get subtly
//! wrong; as functions of the MSR values they are tested on the host against hand-made
//! capability words, and the bare-metal code only reads the MSRs and calls them.
//!
//! One home for the MSR numbers and bit meanings: [`VmxConfig`](crate::vmx::setup::VmxConfig)
//! (may guests run, and with which controls) and [`report`] (what the banner says) both
//! decode through here.

use core::fmt;

/// Capability and control MSR numbers (SDM Vol. 3C Appendix A; Vol. 4 for the numbers).
pub mod msr {
    /// IA32_FEATURE_CONTROL.
    pub const FEATURE_CONTROL: u32 = 0x3a;
    /// IA32_VMX_BASIC (SDM A.1).
    pub const VMX_BASIC: u32 = 0x480;
    /// IA32_VMX_PINBASED_CTLS (A.3.1).
    pub const PINBASED_CTLS: u32 = 0x481;
    /// IA32_VMX_PROCBASED_CTLS (A.3.2).
    pub const PROCBASED_CTLS: u32 = 0x482;
    /// IA32_VMX_EXIT_CTLS (A.4).
    pub const EXIT_CTLS: u32 = 0x483;
    /// IA32_VMX_ENTRY_CTLS (A.5).
    pub const ENTRY_CTLS: u32 = 0x484;
    /// IA32_VMX_MISC (A.6).
    pub const VMX_MISC: u32 = 0x485;
    /// IA32_VMX_CR0_FIXED0 (A.7).
    pub const CR0_FIXED0: u32 = 0x486;
    /// IA32_VMX_CR0_FIXED1 (A.7).
    pub const CR0_FIXED1: u32 = 0x487;
    /// IA32_VMX_CR4_FIXED0 (A.8).
    pub const CR4_FIXED0: u32 = 0x488;
    /// IA32_VMX_CR4_FIXED1 (A.8).
    pub const CR4_FIXED1: u32 = 0x489;
    /// IA32_VMX_PROCBASED_CTLS2 (A.3.3).
    pub const PROCBASED_CTLS2: u32 = 0x48b;
    /// IA32_VMX_EPT_VPID_CAP (A.10).
    pub const EPT_VPID_CAP: u32 = 0x48c;
    /// IA32_VMX_TRUE_PINBASED_CTLS (A.3.1).
    pub const TRUE_PINBASED_CTLS: u32 = 0x48d;
    /// IA32_VMX_TRUE_PROCBASED_CTLS (A.3.2).
    pub const TRUE_PROCBASED_CTLS: u32 = 0x48e;
    /// IA32_VMX_TRUE_EXIT_CTLS (A.4).
    pub const TRUE_EXIT_CTLS: u32 = 0x48f;
    /// IA32_VMX_TRUE_ENTRY_CTLS (A.5).
    pub const TRUE_ENTRY_CTLS: u32 = 0x490;
}

/// The five VMX control words whose settings a capability MSR constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// Pin-based VM-execution controls.
    PinBased,
    /// Primary processor-based VM-execution controls.
    PrimaryProcBased,
    /// Secondary processor-based VM-execution controls.
    SecondaryProcBased,
    /// VM-exit controls.
    Exit,
    /// VM-entry controls.
    Entry,
}

impl ControlKind {
    /// The capability MSR to read: the "true" MSRs when IA32_VMX_BASIC bit 55 says they
    /// exist (SDM A.2: they report the real allowed-0 settings of the default1 class).
    pub fn capability_msr(self, basic: VmxBasic) -> u32 {
        match (self, basic.true_controls) {
            (Self::PinBased, true) => msr::TRUE_PINBASED_CTLS,
            (Self::PinBased, false) => msr::PINBASED_CTLS,
            (Self::PrimaryProcBased, true) => msr::TRUE_PROCBASED_CTLS,
            (Self::PrimaryProcBased, false) => msr::PROCBASED_CTLS,
            (Self::SecondaryProcBased, _) => msr::PROCBASED_CTLS2,
            (Self::Exit, true) => msr::TRUE_EXIT_CTLS,
            (Self::Exit, false) => msr::EXIT_CTLS,
            (Self::Entry, true) => msr::TRUE_ENTRY_CTLS,
            (Self::Entry, false) => msr::ENTRY_CTLS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::PinBased => "pin-based",
            Self::PrimaryProcBased => "primary processor-based",
            Self::SecondaryProcBased => "secondary processor-based",
            Self::Exit => "VM-exit",
            Self::Entry => "VM-entry",
        }
    }
}

/// Why VMX cannot be used as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapsError {
    /// CPUID.1:ECX.VMX[bit 5] is clear.
    NoVmx,
    /// IA32_FEATURE_CONTROL is locked with VMX-outside-SMX disabled (firmware setting).
    DisabledByFirmware,
    /// Required controls the CPU cannot set to 1.
    UnsupportedControls {
        /// Which control word.
        kind: ControlKind,
        /// Required bits that are not allowed to be 1.
        missing: u32,
    },
    /// Controls we must keep 0 that the CPU forces to 1.
    ForcedControls {
        /// Which control word.
        kind: ControlKind,
        /// Bits forced to 1 that we cannot accept.
        forced: u32,
    },
    /// A CR0/CR4 value violates the VMX fixed bits.
    FixedBits {
        /// 0 or 4.
        cr: u8,
        /// Bits that must be 1 but are 0.
        must_set: u64,
        /// Bits that must be 0 but are 1.
        must_clear: u64,
    },
    /// VMCS memory type is not write-back (IA32_VMX_BASIC bits 53:50).
    VmcsMemoryType(u8),
    /// The EPT capability word lacks something we need (4-level walk, WB, INVEPT...).
    MissingEptFeature(&'static str),
}

impl fmt::Display for CapsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoVmx => write!(f, "CPU does not support VMX (CPUID.1:ECX[5] = 0)"),
            Self::DisabledByFirmware => write!(
                f,
                "VMX disabled by firmware: IA32_FEATURE_CONTROL locked without VMX outside SMX"
            ),
            Self::UnsupportedControls { kind, missing } => write!(
                f,
                "CPU cannot enable required {} controls {missing:#010x}",
                kind.name()
            ),
            Self::ForcedControls { kind, forced } => write!(
                f,
                "CPU forces {} controls {forced:#010x} that must stay 0",
                kind.name()
            ),
            Self::FixedBits {
                cr,
                must_set,
                must_clear,
            } => write!(
                f,
                "CR{cr} violates VMX fixed bits: must set {must_set:#x}, must clear {must_clear:#x}"
            ),
            Self::VmcsMemoryType(t) => write!(f, "VMCS memory type {t} is not write-back"),
            Self::MissingEptFeature(what) => write!(f, "EPT/VPID capability missing: {what}"),
        }
    }
}

/// Compute a control word from its capability MSR (SDM A.3-A.5): bits 31:0 are the
/// allowed-0 settings (a 1 there means the control must be 1), bits 63:32 the allowed-1
/// settings (a 0 there means the control must be 0). `required` must end up 1, `optional`
/// is set where allowed, `forbidden` must end up 0; everything else takes its forced value.
pub fn adjust_controls(
    kind: ControlKind,
    capability: u64,
    required: u32,
    optional: u32,
    forbidden: u32,
) -> Result<u32, CapsError> {
    let must_be_one = (capability & 0xffff_ffff) as u32;
    let may_be_one = (capability >> 32) as u32;
    let missing = required & !may_be_one;
    if missing != 0 {
        return Err(CapsError::UnsupportedControls { kind, missing });
    }
    let forced = forbidden & must_be_one;
    if forced != 0 {
        return Err(CapsError::ForcedControls { kind, forced });
    }
    Ok((required | (optional & may_be_one) | must_be_one) & may_be_one)
}

/// Decoded IA32_VMX_BASIC (SDM A.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxBasic {
    /// VMCS revision identifier (bits 30:0), written to the first dword of VMXON/VMCS regions.
    pub revision_id: u32,
    /// Bytes to allocate for VMXON region and VMCS (bits 44:32), at most 4096.
    pub region_size: u16,
    /// Physical addresses of VMX regions limited to 32 bits (bit 48).
    pub addresses_32bit: bool,
    /// Memory type for the VMCS (bits 53:50; 6 = WB).
    pub memory_type: u8,
    /// INS/OUTS instruction information reported on exits (bit 54).
    pub ins_outs_info: bool,
    /// The TRUE_* capability MSRs exist (bit 55).
    pub true_controls: bool,
}

impl VmxBasic {
    /// Decode the MSR value; refuses a VMCS memory type other than write-back.
    pub fn decode(value: u64) -> Result<Self, CapsError> {
        let basic = Self::from_raw(value);
        if basic.memory_type != 6 {
            return Err(CapsError::VmcsMemoryType(basic.memory_type));
        }
        Ok(basic)
    }

    /// Decode every field without judging them (for the capability report).
    pub fn from_raw(value: u64) -> Self {
        Self {
            revision_id: (value & 0x7fff_ffff) as u32,
            region_size: ((value >> 32) & 0x1fff) as u16,
            addresses_32bit: value & (1 << 48) != 0,
            memory_type: ((value >> 50) & 0xf) as u8,
            ins_outs_info: value & (1 << 54) != 0,
            true_controls: value & (1 << 55) != 0,
        }
    }
}

/// IA32_FEATURE_CONTROL bit 0: lock.
const FEATURE_CONTROL_LOCK: u64 = 1 << 0;
/// IA32_FEATURE_CONTROL bit 2: VMXON allowed outside SMX.
const FEATURE_CONTROL_VMX_OUTSIDE_SMX: u64 = 1 << 2;

/// IA32_VMX_EPT_VPID_CAP bits (SDM A.10).
pub mod ept_vpid {
    /// Bit 6: 4-level EPT page walk.
    pub const WALK_4_LEVEL: u64 = 1 << 6;
    /// Bit 14: write-back EPT paging structures.
    pub const WRITE_BACK: u64 = 1 << 14;
    /// Bit 16: 2 MiB EPT pages.
    pub const PAGES_2M: u64 = 1 << 16;
    /// Bit 20: INVEPT.
    pub const INVEPT: u64 = 1 << 20;
    /// Bit 21: EPT accessed and dirty flags.
    pub const ACCESSED_DIRTY: u64 = 1 << 21;
    /// Bit 25: single-context INVEPT.
    pub const INVEPT_SINGLE_CONTEXT: u64 = 1 << 25;
    /// Bit 26: all-context INVEPT.
    pub const INVEPT_ALL_CONTEXT: u64 = 1 << 26;
    /// Bit 32: INVVPID.
    pub const INVVPID: u64 = 1 << 32;
    /// Bit 41: single-context INVVPID.
    pub const INVVPID_SINGLE_CONTEXT: u64 = 1 << 41;
    /// Bit 42: all-context INVVPID.
    pub const INVVPID_ALL_CONTEXT: u64 = 1 << 42;
}

/// What to do with IA32_FEATURE_CONTROL before VMXON (SDM Vol. 3C §24.7: VMXON #GPs unless
/// the lock bit and the "enable VMX outside SMX" bit are both set). Returns the value to
/// write, or `None` when it is already locked with VMX enabled.
pub fn feature_control_update(current: u64) -> Result<Option<u64>, CapsError> {
    let locked = current & FEATURE_CONTROL_LOCK != 0;
    let enabled = current & FEATURE_CONTROL_VMX_OUTSIDE_SMX != 0;
    match (locked, enabled) {
        (true, true) => Ok(None),
        (true, false) => Err(CapsError::DisabledByFirmware),
        (false, _) => Ok(Some(
            current | FEATURE_CONTROL_LOCK | FEATURE_CONTROL_VMX_OUTSIDE_SMX,
        )),
    }
}

/// Check `value` against the VMX fixed bits of CR0 or CR4 (SDM A.7/A.8: a bit that is 1 in
/// FIXED0 must be 1; a bit that is 0 in FIXED1 must be 0).
pub fn check_fixed_bits(cr: u8, value: u64, fixed0: u64, fixed1: u64) -> Result<(), CapsError> {
    let must_set = fixed0 & !value;
    let must_clear = value & !fixed1;
    if must_set == 0 && must_clear == 0 {
        Ok(())
    } else {
        Err(CapsError::FixedBits {
            cr,
            must_set,
            must_clear,
        })
    }
}

/// `value` with the fixed bits applied (for host CR0/CR4 before VMXON).
pub fn apply_fixed_bits(value: u64, fixed0: u64, fixed1: u64) -> u64 {
    (value | fixed0) & fixed1
}

/// CR0.PE.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.PG.
pub const CR0_PG: u64 = 1 << 31;

/// The CR0 FIXED0 mask that applies to a guest: with "unrestricted guest", PE and PG are
/// exempt (SDM §27.3.1.1, first bullet).
pub fn guest_cr0_fixed0(fixed0: u64, unrestricted_guest: bool) -> u64 {
    if unrestricted_guest {
        fixed0 & !(CR0_PE | CR0_PG)
    } else {
        fixed0
    }
}

/// What IA32_VMX_EPT_VPID_CAP offers that we use (SDM A.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EptCapabilities {
    /// EPT accessed/dirty flags (bit 21).
    pub accessed_dirty: bool,
    /// Single-context INVEPT (bit 25); otherwise all-context is used.
    pub invept_single_context: bool,
    /// INVVPID supported (bit 32).
    pub invvpid: bool,
    /// Single-context INVVPID (bit 41).
    pub invvpid_single_context: bool,
    /// All-context INVVPID (bit 42).
    pub invvpid_all_context: bool,
}

impl EptCapabilities {
    /// Decode, requiring a 4-level page walk (bit 6), WB paging structures (bit 14), INVEPT
    /// (bit 20) with single- or all-context (bits 25/26).
    pub fn decode(value: u64) -> Result<Self, CapsError> {
        let has = |bit: u64| value & bit != 0;
        if !has(ept_vpid::WALK_4_LEVEL) {
            return Err(CapsError::MissingEptFeature("4-level page walk"));
        }
        if !has(ept_vpid::WRITE_BACK) {
            return Err(CapsError::MissingEptFeature("write-back EPT structures"));
        }
        if !has(ept_vpid::INVEPT) {
            return Err(CapsError::MissingEptFeature("INVEPT"));
        }
        if !has(ept_vpid::INVEPT_SINGLE_CONTEXT) && !has(ept_vpid::INVEPT_ALL_CONTEXT) {
            return Err(CapsError::MissingEptFeature(
                "single- or all-context INVEPT",
            ));
        }
        Ok(Self {
            accessed_dirty: has(ept_vpid::ACCESSED_DIRTY),
            invept_single_context: has(ept_vpid::INVEPT_SINGLE_CONTEXT),
            invvpid: has(ept_vpid::INVVPID),
            invvpid_single_context: has(ept_vpid::INVVPID_SINGLE_CONTEXT),
            invvpid_all_context: has(ept_vpid::INVVPID_ALL_CONTEXT),
        })
    }
}

/// The VMX-preemption-timer value for a slice of `tsc_ticks`: the timer counts down by one
/// each time TSC bit X changes, X = IA32_VMX_MISC bits 4:0 (SDM A.6, §26.5.1). Saturates
/// at the 32-bit field and never returns 0 (a zero timer exits before any guest
/// instruction, SDM §27.7.4, which would starve the guest).
pub fn preemption_timer_value(tsc_ticks: u64, vmx_misc: u64) -> u32 {
    let rate = (vmx_misc & 0x1f) as u32;
    u32::try_from(tsc_ticks >> rate).unwrap_or(u32::MAX).max(1)
}

pub mod report;

#[cfg(test)]
mod tests;
