//! A vCPU's state in the one format tern has for it: the migration protocol's
//! [`VcpuState`] (docs/migration-protocol.md, "vCPU state"), converted to and from the VMCS
//! and the software state the hypervisor keeps beside it, here and nowhere else.
//!
//! Why one format: the protocol's message used to travel half-filled and be ignored while
//! the real state went as an undocumented device blob. Now what the source sends *is* the
//! state the destination loads, and the checks on incoming state
//! ([`entry_checks`]) run on exactly what will be loaded.
//!
//! Where each field comes from (SDM Vol. 3C §25.4, "Guest-State Area"):
//! * GPRs from the entry/exit assembly's save area, RSP/RIP/RFLAGS, segments (selector,
//!   base, limit, access rights in VMCS format), GDTR/IDTR, CR3, DR7, IA32_EFER,
//!   interruptibility, activity and pending debug exceptions from the VMCS.
//! * CR0/CR4 are what the **guest** sees: bits the hypervisor owns through the guest/host
//!   mask come from the read shadow, the rest from the real register (§25.6.6). The
//!   destination runs them with its own fixed bits ([`vmcs_cr0`], [`vmcs_cr4`]), as a guest
//!   MOV to CR0/CR4 would (`vmx::setup::cr`).
//! * The pending event is an exception the exit handler queued for the next entry
//!   (VM-entry interruption information, §25.8.3); tern injects nothing else.
//! * MSRs: the [`CARRIED_MSRS`] list, from the VMCS (SYSENTER_*, DEBUGCTL, PAT), the
//!   emulated MSR file (MTRR_DEF_TYPE, MISC_ENABLE), the vCPU switch (SYSCALL family,
//!   KERNEL_GS_BASE, TSC_AUX) and the guest TSC (IA32_TSC); then the MTRR ranges
//!   ([`MTRR_RANGE_MSRS`]: fixed and variable). XCR0 from the emulation state.
//!
//! **Versions of the MSR list.** Version 1 is exactly [`CARRIED_MSRS`]; version 2 (this
//! tern) adds all of [`MTRR_RANGE_MSRS`]. A destination loads either: a version-1 state's
//! MTRR ranges are the reset values (zero), as the sender never stored any. A state with
//! some but not all of the range MSRs is refused. An older destination refuses a version-2
//! state by name ("an MSR tern does not carry"), while the source still owns the VM.
//! Version 3 adds IA32_TSC_ADJUST ([`OPTIONAL_MSRS`]): this tern always sends it and loads
//! a state without it with its reset value 0; an older destination refuses it by name as
//! above.
//! * CR2 from the machine's switch (VMX leaves it alone, `machine::guest_fpu`). The XSAVE
//!   area is not read here: the machine adds its own (`vm::xsave`), and the checks
//!   ([`entry_checks`]) validate an incoming one against this host's XRSTOR rules.
//! * Not saved by tern today, so sent as 0 and refused when a peer sends anything else
//!   (loading them is not built): CR8, DR0-DR3, DR6, the PAE PDPTEs, a pending NMI.

use migration_proto::message::{
    DescriptorTable, EventKind, MsrValue, PendingEvent, SegmentRegister, VcpuState,
};

use super::exit_handler::VcpuEmulation;
use super::msr::mtrr::{self, Mtrrs, RANGE_MSR_COUNT};
use super::msr::{MsrFile, SWITCHED_ON_VCPU_CHANGE, index};
use crate::vmx::error::VmxError;
use crate::vmx::regs::GuestRegisters;
use crate::vmx::setup::controls::bits::ENTRY_IA32E_MODE_GUEST;
use crate::vmx::setup::cr::{EFER_LMA, real_cr0};
use crate::vmx::vmcs::fields::{control, guest};
use crate::vmx::vmcs::{Field16, Field32, FieldNatural, VmcsAccess};

pub mod entry_checks;

use entry_checks::{GuestStateError, GuestStateLimits, check_guest_state};

/// What the hypervisor keeps for a vCPU outside the VMCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuSoftware {
    /// GPRs but RSP.
    pub regs: GuestRegisters,
    /// Emulated MSRs, XCR0, APIC ID.
    pub emulation: VcpuEmulation,
    /// STAR, LSTAR, CSTAR, FMASK, KERNEL_GS_BASE, TSC_AUX (`SWITCHED_ON_VCPU_CHANGE`).
    pub switched_msrs: [u64; SWITCHED_ON_VCPU_CHANGE.len()],
    /// The guest's TSC at the capture.
    pub guest_tsc: u64,
    /// The guest's CR2 (VMX does not switch it; the machine does, `machine::guest_fpu`).
    pub cr2: u64,
}

/// The MSRs a [`VcpuState`] carries, each exactly once, and their names for messages.
pub const CARRIED_MSRS: [(u32, &str); 14] = [
    (index::IA32_TSC, "IA32_TSC"),
    (index::IA32_SYSENTER_CS, "IA32_SYSENTER_CS"),
    (index::IA32_SYSENTER_ESP, "IA32_SYSENTER_ESP"),
    (index::IA32_SYSENTER_EIP, "IA32_SYSENTER_EIP"),
    (index::IA32_MISC_ENABLE, "IA32_MISC_ENABLE"),
    (index::IA32_DEBUGCTL, "IA32_DEBUGCTL"),
    (index::IA32_PAT, "IA32_PAT"),
    (index::IA32_MTRR_DEF_TYPE, "IA32_MTRR_DEF_TYPE"),
    (index::IA32_STAR, "IA32_STAR"),
    (index::IA32_LSTAR, "IA32_LSTAR"),
    (index::IA32_CSTAR, "IA32_CSTAR"),
    (index::IA32_FMASK, "IA32_FMASK"),
    (index::IA32_KERNEL_GS_BASE, "IA32_KERNEL_GS_BASE"),
    (index::IA32_TSC_AUX, "IA32_TSC_AUX"),
];

/// MSRs a state may leave out (then their reset value, 0): those added after version 2.
pub const OPTIONAL_MSRS: [u32; 1] = [index::IA32_TSC_ADJUST];

/// The MTRR range MSRs (fixed, then PHYSBASEn/PHYSMASKn) of the version-2 MSR list.
pub const MTRR_RANGE_MSRS: [u32; RANGE_MSR_COUNT] = {
    let mut out = [0; RANGE_MSR_COUNT];
    let mut i = 0;
    while i < mtrr::FIXED.len() {
        out[i] = mtrr::FIXED[i];
        i += 1;
    }
    while i < RANGE_MSR_COUNT {
        out[i] = mtrr::PHYSBASE0 + (i - mtrr::FIXED.len()) as u32;
        i += 1;
    }
    out
};

/// The VMCS fields of one segment register, in the protocol's order ES, CS, SS, DS, FS,
/// GS, LDTR, TR.
const SEGMENTS: [(Field16, FieldNatural, Field32, Field32); 8] = {
    use guest::*;
    [
        (ES_SELECTOR, ES_BASE, ES_LIMIT, ES_ACCESS_RIGHTS),
        (CS_SELECTOR, CS_BASE, CS_LIMIT, CS_ACCESS_RIGHTS),
        (SS_SELECTOR, SS_BASE, SS_LIMIT, SS_ACCESS_RIGHTS),
        (DS_SELECTOR, DS_BASE, DS_LIMIT, DS_ACCESS_RIGHTS),
        (FS_SELECTOR, FS_BASE, FS_LIMIT, FS_ACCESS_RIGHTS),
        (GS_SELECTOR, GS_BASE, GS_LIMIT, GS_ACCESS_RIGHTS),
        (LDTR_SELECTOR, LDTR_BASE, LDTR_LIMIT, LDTR_ACCESS_RIGHTS),
        (TR_SELECTOR, TR_BASE, TR_LIMIT, TR_ACCESS_RIGHTS),
    ]
};

/// Index of RSP in [`VcpuState::gprs`] (instruction-encoding order).
const RSP: usize = 4;
/// VM-entry interruption information (SDM §25.8.3, Table 25-17): valid bit, "deliver error
/// code" bit, type in bits 10:8, vector in 7:0.
const EVENT_VALID: u32 = 1 << 31;
const EVENT_HAS_ERROR_CODE: u32 = 1 << 11;

/// The value of MSR `msr` in `state`, if it carries it.
pub fn msr_value(state: &VcpuState, msr: u32) -> Option<u64> {
    state.msrs.iter().find(|m| m.index == msr).map(|m| m.value)
}

/// The CR0 the CPU runs the guest with when the guest sees `visible`: the VMX fixed bits of
/// this host applied (SDM App. A.7; PE/PG exempt under unrestricted guest, §27.3.1.1).
pub fn vmcs_cr0(visible: u64, limits: &GuestStateLimits) -> u64 {
    real_cr0(visible, limits.cr0_fixed0, limits.cr0_fixed1)
}

/// The CR4 the CPU runs the guest with when the guest sees `visible` (SDM App. A.8).
pub fn vmcs_cr4(visible: u64, limits: &GuestStateLimits) -> u64 {
    (visible | limits.cr4_fixed0) & limits.cr4_fixed1
}

fn guest_view(real: u64, shadow: u64, mask: u64) -> u64 {
    (real & !mask) | (shadow & mask)
}

/// Reads the current VMCS and the software state into the one format. `vcpu_index` is the
/// vCPU's number in its VM (its APIC ID too).
pub fn capture(
    vmcs: &impl VmcsAccess,
    soft: &VcpuSoftware,
    vcpu_index: u32,
) -> Result<VcpuState, VmxError> {
    let r = &soft.regs;
    let mut segments = [SegmentRegister::default(); 8];
    for (seg, (selector, base, limit, ar)) in segments.iter_mut().zip(SEGMENTS) {
        *seg = SegmentRegister {
            selector: vmcs.read16(selector)?,
            base: vmcs.read_natural(base)?,
            limit: vmcs.read32(limit)?,
            access_rights: vmcs.read32(ar)?,
        };
    }
    // VM entry refuses limits above 0xffff (§27.3.1.3), so a VMCS that ran fits u16.
    let table = |base, limit| -> Result<DescriptorTable, VmxError> {
        Ok(DescriptorTable {
            base: vmcs.read_natural(base)?,
            limit: u16::try_from(vmcs.read32(limit)?).unwrap_or(u16::MAX),
        })
    };
    let info = vmcs.read32(control::ENTRY_INTERRUPTION_INFO)?;
    let pending_event = if info & EVENT_VALID != 0 {
        let error_code = if info & EVENT_HAS_ERROR_CODE != 0 {
            Some(vmcs.read32(control::ENTRY_EXCEPTION_ERROR_CODE)?)
        } else {
            None
        };
        // Types 1 and 7 (reserved, "other event") are never written by tern.
        let kind = EventKind::from_code(((info >> 8) & 7) as u8).ok();
        kind.map(|kind| PendingEvent {
            vector: (info & 0xff) as u8,
            kind,
            error_code,
            instruction_len: 0,
        })
    } else {
        None
    };
    let e = &soft.emulation;
    let mut msrs = alloc::vec![
        MsrValue {
            index: index::IA32_TSC,
            value: soft.guest_tsc
        },
        MsrValue {
            index: index::IA32_SYSENTER_CS,
            value: u64::from(vmcs.read32(guest::IA32_SYSENTER_CS)?)
        },
        MsrValue {
            index: index::IA32_SYSENTER_ESP,
            value: vmcs.read_natural(guest::IA32_SYSENTER_ESP)?
        },
        MsrValue {
            index: index::IA32_SYSENTER_EIP,
            value: vmcs.read_natural(guest::IA32_SYSENTER_EIP)?
        },
        MsrValue {
            index: index::IA32_MISC_ENABLE,
            value: e.msrs.misc_enable
        },
        MsrValue {
            index: index::IA32_TSC_ADJUST,
            value: e.msrs.tsc_adjust
        },
        MsrValue {
            index: index::IA32_DEBUGCTL,
            value: vmcs.read64(guest::IA32_DEBUGCTL)?
        },
        MsrValue {
            index: index::IA32_PAT,
            value: vmcs.read64(guest::IA32_PAT)?
        },
        MsrValue {
            index: index::IA32_MTRR_DEF_TYPE,
            value: e.msrs.mtrrs.def_type
        },
    ];
    msrs.extend(
        SWITCHED_ON_VCPU_CHANGE
            .iter()
            .zip(soft.switched_msrs)
            .map(|(&index, value)| MsrValue { index, value }),
    );
    msrs.extend(
        e.msrs
            .mtrrs
            .ranges()
            .map(|(index, value)| MsrValue { index, value }),
    );
    Ok(VcpuState {
        vcpu_index,
        gprs: [
            r.rax,
            r.rcx,
            r.rdx,
            r.rbx,
            vmcs.read_natural(guest::RSP)?,
            r.rbp,
            r.rsi,
            r.rdi,
            r.r8,
            r.r9,
            r.r10,
            r.r11,
            r.r12,
            r.r13,
            r.r14,
            r.r15,
        ],
        rip: vmcs.read_natural(guest::RIP)?,
        rflags: vmcs.read_natural(guest::RFLAGS)?,
        segments,
        gdtr: table(guest::GDTR_BASE, guest::GDTR_LIMIT)?,
        idtr: table(guest::IDTR_BASE, guest::IDTR_LIMIT)?,
        cr0: guest_view(
            vmcs.read_natural(guest::CR0)?,
            vmcs.read_natural(control::CR0_READ_SHADOW)?,
            vmcs.read_natural(control::CR0_GUEST_HOST_MASK)?,
        ),
        cr2: soft.cr2,
        cr3: vmcs.read_natural(guest::CR3)?,
        cr4: guest_view(
            vmcs.read_natural(guest::CR4)?,
            vmcs.read_natural(control::CR4_READ_SHADOW)?,
            vmcs.read_natural(control::CR4_GUEST_HOST_MASK)?,
        ),
        cr8: 0,
        efer: vmcs.read64(guest::IA32_EFER)?,
        xcr0: e.xcr0,
        pdptes: [0; 4],
        dr0_3: [0; 4],
        dr6: 0,
        dr7: vmcs.read_natural(guest::DR7)?,
        interruptibility: vmcs.read32(guest::INTERRUPTIBILITY_STATE)?,
        activity_state: vmcs.read32(guest::ACTIVITY_STATE)?,
        pending_debug_exceptions: vmcs.read_natural(guest::PENDING_DEBUG_EXCEPTIONS)?,
        pending_event,
        nmi_pending: false,
        msrs,
        xsave: alloc::vec::Vec::new(),
    })
}

/// Why a state could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyError {
    /// The state fails a VM-entry check (or one of tern's limits); nothing was written.
    Refused(GuestStateError),
    /// VMREAD/VMWRITE failed.
    Vmcs(VmxError),
}

impl core::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Refused(e) => write!(f, "{e}"),
            Self::Vmcs(e) => write!(f, "{e}"),
        }
    }
}

impl From<VmxError> for ApplyError {
    fn from(e: VmxError) -> Self {
        Self::Vmcs(e)
    }
}

/// Checks `state` ([`check_guest_state`]) and writes it into the current VMCS (with the
/// "IA-32e mode guest" entry control equal to EFER.LMA, SDM §27.3.1.1); returns the
/// software part for the machine to keep. A refused state writes nothing.
pub fn apply(
    state: &VcpuState,
    vmcs: &mut impl VmcsAccess,
    limits: &GuestStateLimits,
) -> Result<VcpuSoftware, ApplyError> {
    check_guest_state(state, limits).map_err(ApplyError::Refused)?;
    // Every carried MSR is present: `check_guest_state` refuses a state that lacks one.
    let msr = |index| msr_value(state, index).unwrap_or(0);
    let g = &state.gprs;
    for (seg, (selector, base, limit, ar)) in state.segments.iter().zip(SEGMENTS) {
        vmcs.write16(selector, seg.selector)?;
        vmcs.write_natural(base, seg.base)?;
        vmcs.write32(limit, seg.limit)?;
        vmcs.write32(ar, seg.access_rights)?;
    }
    vmcs.write_natural(guest::GDTR_BASE, state.gdtr.base)?;
    vmcs.write32(guest::GDTR_LIMIT, u32::from(state.gdtr.limit))?;
    vmcs.write_natural(guest::IDTR_BASE, state.idtr.base)?;
    vmcs.write32(guest::IDTR_LIMIT, u32::from(state.idtr.limit))?;
    vmcs.write_natural(guest::RSP, g[RSP])?;
    vmcs.write_natural(guest::RIP, state.rip)?;
    vmcs.write_natural(guest::RFLAGS, state.rflags)?;
    vmcs.write_natural(guest::CR0, vmcs_cr0(state.cr0, limits))?;
    vmcs.write_natural(control::CR0_READ_SHADOW, state.cr0)?;
    vmcs.write_natural(guest::CR3, state.cr3)?;
    vmcs.write_natural(guest::CR4, vmcs_cr4(state.cr4, limits))?;
    vmcs.write_natural(control::CR4_READ_SHADOW, state.cr4)?;
    vmcs.write64(guest::IA32_EFER, state.efer)?;
    vmcs.write_natural(guest::DR7, state.dr7)?;
    vmcs.write32(guest::INTERRUPTIBILITY_STATE, state.interruptibility)?;
    vmcs.write32(guest::ACTIVITY_STATE, state.activity_state)?;
    vmcs.write_natural(
        guest::PENDING_DEBUG_EXCEPTIONS,
        state.pending_debug_exceptions,
    )?;
    // The checks bound SYSENTER_CS to 32 bits.
    vmcs.write32(
        guest::IA32_SYSENTER_CS,
        u32::try_from(msr(index::IA32_SYSENTER_CS)).unwrap_or(0),
    )?;
    vmcs.write_natural(guest::IA32_SYSENTER_ESP, msr(index::IA32_SYSENTER_ESP))?;
    vmcs.write_natural(guest::IA32_SYSENTER_EIP, msr(index::IA32_SYSENTER_EIP))?;
    vmcs.write64(guest::IA32_DEBUGCTL, msr(index::IA32_DEBUGCTL))?;
    vmcs.write64(guest::IA32_PAT, msr(index::IA32_PAT))?;
    let info = match state.pending_event {
        None => 0,
        Some(e) => {
            let mut info = EVENT_VALID | ((e.kind as u32) << 8) | u32::from(e.vector);
            if let Some(code) = e.error_code {
                info |= EVENT_HAS_ERROR_CODE;
                vmcs.write32(control::ENTRY_EXCEPTION_ERROR_CODE, code)?;
            }
            info
        }
    };
    vmcs.write32(control::ENTRY_INTERRUPTION_INFO, info)?;
    let entry = vmcs.read32(control::ENTRY_CONTROLS)?;
    let entry = if state.efer & EFER_LMA != 0 {
        entry | ENTRY_IA32E_MODE_GUEST
    } else {
        entry & !ENTRY_IA32E_MODE_GUEST
    };
    vmcs.write32(control::ENTRY_CONTROLS, entry)?;
    let mut switched_msrs = [0u64; SWITCHED_ON_VCPU_CHANGE.len()];
    for (slot, &index) in switched_msrs.iter_mut().zip(&SWITCHED_ON_VCPU_CHANGE) {
        *slot = msr(index);
    }
    Ok(VcpuSoftware {
        regs: GuestRegisters {
            rax: g[0],
            rcx: g[1],
            rdx: g[2],
            rbx: g[3],
            rbp: g[5],
            rsi: g[6],
            rdi: g[7],
            r8: g[8],
            r9: g[9],
            r10: g[10],
            r11: g[11],
            r12: g[12],
            r13: g[13],
            r14: g[14],
            r15: g[15],
        },
        emulation: VcpuEmulation {
            msrs: MsrFile {
                mtrrs: mtrrs_of(state),
                misc_enable: msr(index::IA32_MISC_ENABLE),
                // Absent in states from before TSC_ADJUST was emulated: 0, its reset value.
                tsc_adjust: msr(index::IA32_TSC_ADJUST),
            },
            xcr0: state.xcr0,
            // The checks bound the index to one APIC ID byte.
            apic_id: u8::try_from(state.vcpu_index).unwrap_or(0),
            // The VM's TSC rate and CPU model are not vCPU state: the machine keeps its own
            // (`tsc-rate` and `cpu-model` device states).
            tsc_khz: 0,
            features: crate::vm::cpu_model::FeatureMasks::all(),
        },
        switched_msrs,
        guest_tsc: msr(index::IA32_TSC),
        cr2: state.cr2,
    })
}

/// The MTRRs a (checked) state carries: DEF_TYPE always, the ranges when the MSR list is
/// version 2 (module doc), else their reset values.
fn mtrrs_of(state: &VcpuState) -> Mtrrs {
    let mut m = Mtrrs {
        def_type: msr_value(state, index::IA32_MTRR_DEF_TYPE).unwrap_or(0),
        ..Mtrrs::default()
    };
    for msr in MTRR_RANGE_MSRS {
        if let Some(v) = msr_value(state, msr) {
            // The checks held every value to the WRMSR rules with the host's MAXPHYADDR;
            // 64 here only skips repeating that bound.
            m.write(msr, v, 64);
        }
    }
    m
}

#[cfg(test)]
mod tests;
