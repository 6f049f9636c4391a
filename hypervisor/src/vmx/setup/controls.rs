//! Which VMX controls tern uses and how they are reconciled with the CPU's capability MSRs
//! (SDM Vol. 3C §25.6-25.8 for the meaning of each bit, Appendix A.3-A.5 for the allowed
//! settings).

use crate::vmx::caps::{CapsError, ControlKind, EptCapabilities, VmxBasic, adjust_controls, msr};
use crate::vmx::error::VmxError;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::{VPID, control, guest};

/// Control bits (SDM Tables 25-5 to 25-7, 25-13, 25-15).
pub mod bits {
    #![allow(missing_docs)]
    pub const PIN_EXTERNAL_INTERRUPT_EXITING: u32 = 1 << 0;
    pub const PIN_NMI_EXITING: u32 = 1 << 3;
    pub const PIN_VIRTUAL_NMIS: u32 = 1 << 5;
    pub const PIN_PREEMPTION_TIMER: u32 = 1 << 6;

    pub const PROC_USE_TSC_OFFSETTING: u32 = 1 << 3;
    pub const PROC_HLT_EXITING: u32 = 1 << 7;
    pub const PROC_INVLPG_EXITING: u32 = 1 << 9;
    pub const PROC_MWAIT_EXITING: u32 = 1 << 10;
    pub const PROC_RDPMC_EXITING: u32 = 1 << 11;
    pub const PROC_RDTSC_EXITING: u32 = 1 << 12;
    pub const PROC_CR3_LOAD_EXITING: u32 = 1 << 15;
    pub const PROC_CR3_STORE_EXITING: u32 = 1 << 16;
    pub const PROC_MOV_DR_EXITING: u32 = 1 << 23;
    pub const PROC_UNCONDITIONAL_IO_EXITING: u32 = 1 << 24;
    pub const PROC_USE_IO_BITMAPS: u32 = 1 << 25;
    pub const PROC_USE_MSR_BITMAPS: u32 = 1 << 28;
    pub const PROC_MONITOR_EXITING: u32 = 1 << 29;
    pub const PROC_ACTIVATE_SECONDARY: u32 = 1 << 31;

    pub const PROC2_ENABLE_EPT: u32 = 1 << 1;
    pub const PROC2_ENABLE_RDTSCP: u32 = 1 << 3;
    pub const PROC2_ENABLE_VPID: u32 = 1 << 5;
    pub const PROC2_UNRESTRICTED_GUEST: u32 = 1 << 7;
    pub const PROC2_ENABLE_INVPCID: u32 = 1 << 12;
    pub const PROC2_ENABLE_PML: u32 = 1 << 17;
    pub const PROC2_ENABLE_XSAVES: u32 = 1 << 20;

    pub const EXIT_SAVE_DEBUG_CONTROLS: u32 = 1 << 2;
    pub const EXIT_HOST_ADDRESS_SPACE_SIZE: u32 = 1 << 9;
    pub const EXIT_ACK_INTERRUPT_ON_EXIT: u32 = 1 << 15;
    pub const EXIT_SAVE_PAT: u32 = 1 << 18;
    pub const EXIT_LOAD_PAT: u32 = 1 << 19;
    pub const EXIT_SAVE_EFER: u32 = 1 << 20;
    pub const EXIT_LOAD_EFER: u32 = 1 << 21;

    pub const ENTRY_LOAD_DEBUG_CONTROLS: u32 = 1 << 2;
    pub const ENTRY_IA32E_MODE_GUEST: u32 = 1 << 9;
    pub const ENTRY_LOAD_PAT: u32 = 1 << 14;
    pub const ENTRY_LOAD_EFER: u32 = 1 << 15;
}

use bits::*;

/// The raw capability MSR values VMX configuration depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapabilityMsrs {
    /// IA32_VMX_BASIC.
    pub basic: u64,
    /// Pin-based controls (TRUE_ variant when available).
    pub pin: u64,
    /// Primary processor-based controls (TRUE_ variant when available).
    pub primary: u64,
    /// IA32_VMX_PROCBASED_CTLS2.
    pub secondary: u64,
    /// VM-exit controls (TRUE_ variant when available).
    pub exit: u64,
    /// VM-entry controls (TRUE_ variant when available).
    pub entry: u64,
    /// IA32_VMX_MISC.
    pub misc: u64,
    /// IA32_VMX_CR0_FIXED0.
    pub cr0_fixed0: u64,
    /// IA32_VMX_CR0_FIXED1.
    pub cr0_fixed1: u64,
    /// IA32_VMX_CR4_FIXED0.
    pub cr4_fixed0: u64,
    /// IA32_VMX_CR4_FIXED1.
    pub cr4_fixed1: u64,
    /// IA32_VMX_EPT_VPID_CAP.
    pub ept_vpid: u64,
}

impl CapabilityMsrs {
    /// Read the MSRs through `rdmsr`, only reading MSRs whose existence the ones read
    /// before guarantee (an absent MSR #GPs): the TRUE_ MSRs need IA32_VMX_BASIC bit 55,
    /// PROCBASED_CTLS2 needs allowed-1 bit 31 of the primary controls, EPT_VPID_CAP needs
    /// allowed-1 "enable EPT" or "enable VPID" in the secondary controls (SDM A.3.3, A.10).
    pub fn read(mut rdmsr: impl FnMut(u32) -> u64) -> Result<Self, CapsError> {
        let basic_raw = rdmsr(msr::VMX_BASIC);
        let basic = VmxBasic::decode(basic_raw)?;
        let primary = rdmsr(ControlKind::PrimaryProcBased.capability_msr(basic));
        if (primary >> 32) & u64::from(PROC_ACTIVATE_SECONDARY) == 0 {
            return Err(CapsError::UnsupportedControls {
                kind: ControlKind::PrimaryProcBased,
                missing: PROC_ACTIVATE_SECONDARY,
            });
        }
        let secondary = rdmsr(msr::PROCBASED_CTLS2);
        if (secondary >> 32) & u64::from(PROC2_ENABLE_EPT) == 0 {
            return Err(CapsError::UnsupportedControls {
                kind: ControlKind::SecondaryProcBased,
                missing: PROC2_ENABLE_EPT,
            });
        }
        Ok(Self {
            basic: basic_raw,
            pin: rdmsr(ControlKind::PinBased.capability_msr(basic)),
            primary,
            secondary,
            exit: rdmsr(ControlKind::Exit.capability_msr(basic)),
            entry: rdmsr(ControlKind::Entry.capability_msr(basic)),
            misc: rdmsr(msr::VMX_MISC),
            cr0_fixed0: rdmsr(msr::CR0_FIXED0),
            cr0_fixed1: rdmsr(msr::CR0_FIXED1),
            cr4_fixed0: rdmsr(msr::CR4_FIXED0),
            cr4_fixed1: rdmsr(msr::CR4_FIXED1),
            ept_vpid: rdmsr(msr::EPT_VPID_CAP),
        })
    }
}

/// The control values tern runs guests with on this CPU, plus the facts derived from the
/// capability MSRs that other code needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxConfig {
    /// Decoded IA32_VMX_BASIC.
    pub basic: VmxBasic,
    /// Pin-based controls.
    pub pin: u32,
    /// Primary processor-based controls.
    pub primary: u32,
    /// Secondary processor-based controls.
    pub secondary: u32,
    /// VM-exit controls.
    pub exit: u32,
    /// VM-entry controls (without "IA-32e mode guest": that follows the guest's EFER.LMA).
    pub entry: u32,
    /// EPT and VPID capabilities.
    pub ept: EptCapabilities,
    /// VPIDs are enabled.
    pub vpid: bool,
    /// Preemption timer rate: the timer ticks every 2^rate TSC ticks (IA32_VMX_MISC bits 4:0).
    pub preemption_timer_rate: u32,
    /// CR0/CR4 fixed bits.
    pub cr0_fixed0: u64,
    /// See `cr0_fixed0`.
    pub cr0_fixed1: u64,
    /// See `cr0_fixed0`.
    pub cr4_fixed0: u64,
    /// See `cr0_fixed0`.
    pub cr4_fixed1: u64,
}

impl VmxConfig {
    /// Reconcile tern's required and optional controls with the CPU's.
    ///
    /// Required: external-interrupt and NMI exiting (the host keeps its interrupts), the
    /// preemption timer (bounds every slice), HLT/MWAIT/MONITOR/RDPMC exiting, I/O and MSR
    /// bitmaps, EPT, unrestricted guest (the PVH entry runs with paging off), a 64-bit host,
    /// EFER and PAT switched by entry/exit. Optional: VPID, RDTSCP, TSC offsetting.
    pub fn from_msrs(m: &CapabilityMsrs) -> Result<Self, CapsError> {
        let basic = VmxBasic::decode(m.basic)?;
        let ept = EptCapabilities::decode(m.ept_vpid)?;
        let pin = adjust_controls(
            ControlKind::PinBased,
            m.pin,
            PIN_EXTERNAL_INTERRUPT_EXITING | PIN_NMI_EXITING | PIN_PREEMPTION_TIMER,
            0,
            0,
        )?;
        let primary = adjust_controls(
            ControlKind::PrimaryProcBased,
            m.primary,
            PROC_HLT_EXITING
                | PROC_MWAIT_EXITING
                | PROC_RDPMC_EXITING
                | PROC_USE_IO_BITMAPS
                | PROC_USE_MSR_BITMAPS
                | PROC_MONITOR_EXITING
                | PROC_ACTIVATE_SECONDARY,
            PROC_USE_TSC_OFFSETTING,
            // With I/O bitmaps, unconditional I/O exiting is ignored; keep it clear anyway.
            PROC_UNCONDITIONAL_IO_EXITING,
        )?;
        let secondary = adjust_controls(
            ControlKind::SecondaryProcBased,
            m.secondary,
            PROC2_ENABLE_EPT | PROC2_UNRESTRICTED_GUEST,
            PROC2_ENABLE_RDTSCP | if ept.invvpid { PROC2_ENABLE_VPID } else { 0 },
            PROC2_ENABLE_XSAVES | PROC2_ENABLE_PML,
        )?;
        let exit = adjust_controls(
            ControlKind::Exit,
            m.exit,
            EXIT_HOST_ADDRESS_SPACE_SIZE
                | EXIT_SAVE_PAT
                | EXIT_LOAD_PAT
                | EXIT_SAVE_EFER
                | EXIT_LOAD_EFER,
            EXIT_SAVE_DEBUG_CONTROLS,
            EXIT_ACK_INTERRUPT_ON_EXIT,
        )?;
        let entry = adjust_controls(
            ControlKind::Entry,
            m.entry,
            ENTRY_LOAD_PAT | ENTRY_LOAD_EFER,
            ENTRY_LOAD_DEBUG_CONTROLS,
            ENTRY_IA32E_MODE_GUEST,
        )?;
        // VPID is usable only with INVVPID single- or all-context (to flush on reuse).
        let vpid = secondary & PROC2_ENABLE_VPID != 0
            && (ept.invvpid_single_context || ept.invvpid_all_context);
        let secondary = if vpid {
            secondary
        } else {
            secondary & !PROC2_ENABLE_VPID
        };
        Ok(Self {
            basic,
            pin,
            primary,
            secondary,
            exit,
            entry,
            ept,
            vpid,
            preemption_timer_rate: (m.misc & 0x1f) as u32,
            cr0_fixed0: m.cr0_fixed0,
            cr0_fixed1: m.cr0_fixed1,
            cr4_fixed0: m.cr4_fixed0,
            cr4_fixed1: m.cr4_fixed1,
        })
    }
}

/// Physical addresses and identifiers a vCPU's controls point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlAddresses {
    /// I/O bitmap A (ports 0-0x7fff).
    pub io_bitmap_a: u64,
    /// I/O bitmap B (ports 0x8000-0xffff).
    pub io_bitmap_b: u64,
    /// MSR bitmap.
    pub msr_bitmap: u64,
    /// EPT pointer.
    pub eptp: u64,
    /// VPID (1..=0xffff; 0 is the host's and not allowed, SDM §27.2.1.1).
    pub vpid: u16,
}

/// Write the execution, exit and entry controls and their addresses.
pub fn write_controls(
    vmcs: &mut impl VmcsAccess,
    cfg: &VmxConfig,
    addrs: &ControlAddresses,
) -> Result<(), VmxError> {
    vmcs.write32(control::PIN_BASED, cfg.pin)?;
    vmcs.write32(control::PRIMARY_PROC_BASED, cfg.primary)?;
    vmcs.write32(control::SECONDARY_PROC_BASED, cfg.secondary)?;
    vmcs.write32(control::EXIT_CONTROLS, cfg.exit)?;
    vmcs.write32(control::ENTRY_CONTROLS, cfg.entry)?;
    // No exceptions intercepted: the guest handles its own faults; a triple fault exits
    // unconditionally (SDM §26.2).
    vmcs.write32(control::EXCEPTION_BITMAP, 0)?;
    vmcs.write32(control::PAGE_FAULT_ERROR_MASK, 0)?;
    vmcs.write32(control::PAGE_FAULT_ERROR_MATCH, 0)?;
    vmcs.write32(control::CR3_TARGET_COUNT, 0)?;
    vmcs.write32(control::EXIT_MSR_STORE_COUNT, 0)?;
    vmcs.write32(control::EXIT_MSR_LOAD_COUNT, 0)?;
    vmcs.write32(control::ENTRY_MSR_LOAD_COUNT, 0)?;
    vmcs.write32(control::ENTRY_INTERRUPTION_INFO, 0)?;
    vmcs.write64(control::IO_BITMAP_A, addrs.io_bitmap_a)?;
    vmcs.write64(control::IO_BITMAP_B, addrs.io_bitmap_b)?;
    vmcs.write64(control::MSR_BITMAP, addrs.msr_bitmap)?;
    vmcs.write64(control::EPT_POINTER, addrs.eptp)?;
    if cfg.primary & PROC_USE_TSC_OFFSETTING != 0 {
        vmcs.write64(control::TSC_OFFSET, 0)?;
    }
    if cfg.vpid {
        vmcs.write16(VPID, addrs.vpid)?;
    }
    // No VMCS shadowing: the link pointer must be all ones (SDM §27.3.1.5).
    vmcs.write64(guest::VMCS_LINK_POINTER, u64::MAX)?;
    Ok(())
}
