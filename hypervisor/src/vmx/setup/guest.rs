//! The guest state of a PVH entry (Xen `docs/misc/pvh.pandoc`): 32-bit protected mode,
//! paging off, flat 4 GiB code and data segments, `ebx` = physical address of
//! `hvm_start_info`, interrupts off. Written with "unrestricted guest" so that CR0.PG = 0 is
//! legal (SDM Vol. 3C §27.3.1.1), and satisfying the guest-state checks of §27.3.1.2
//! (segment registers: TR usable busy TSS, LDTR unusable), §27.3.1.3 (GDTR/IDTR), §27.3.1.4
//! (RIP/RFLAGS), §27.3.1.5 (activity and interruptibility state, VMCS link pointer).

use super::controls::VmxConfig;
use super::cr::{CR0_ET, cr0_host_mask, cr4_host_mask, real_cr0};
use crate::vm::msr::PAT_DEFAULT;
use crate::vmx::caps::CR0_PE;
use crate::vmx::error::VmxError;
use crate::vmx::regs::GuestRegisters;
use crate::vmx::vmcs::fields::{control, guest};
use crate::vmx::vmcs::{Field16, Field32, FieldNatural, VmcsAccess};

/// Access rights (SDM §25.4.1, Table 25-2): type 0xb (code, execute/read, accessed), S, P,
/// D/B = 32-bit, G = 4 KiB granularity.
pub const CODE32_ACCESS: u32 = 0xc09b;
/// Data segment: type 0x3 (read/write, accessed), S, P, D/B, G.
pub const DATA32_ACCESS: u32 = 0xc093;
/// TR: type 0xb (busy 32/64-bit TSS), P; limit 0x67.
pub const TSS_BUSY_ACCESS: u32 = 0x008b;
/// Bit 16: segment unusable.
pub const UNUSABLE: u32 = 1 << 16;
/// Selectors used for the flat segments (the guest loads its own GDT before it reloads a
/// segment register, so only the hidden parts matter).
pub const CODE_SELECTOR: u16 = 0x08;
/// See [`CODE_SELECTOR`].
pub const DATA_SELECTOR: u16 = 0x10;

struct Segment {
    selector: Field16,
    base: FieldNatural,
    limit: Field32,
    access: Field32,
}

const fn seg(selector: Field16, base: FieldNatural, limit: Field32, access: Field32) -> Segment {
    Segment {
        selector,
        base,
        limit,
        access,
    }
}

/// Write the guest state for a PVH entry at `entry` with `start_info` in EBX; resets
/// `regs` to that state too.
pub fn write_pvh_guest_state(
    vmcs: &mut impl VmcsAccess,
    cfg: &VmxConfig,
    entry: u32,
    start_info: u32,
    regs: &mut GuestRegisters,
) -> Result<(), VmxError> {
    use guest::*;
    let data_segments = [
        seg(ES_SELECTOR, ES_BASE, ES_LIMIT, ES_ACCESS_RIGHTS),
        seg(SS_SELECTOR, SS_BASE, SS_LIMIT, SS_ACCESS_RIGHTS),
        seg(DS_SELECTOR, DS_BASE, DS_LIMIT, DS_ACCESS_RIGHTS),
        seg(FS_SELECTOR, FS_BASE, FS_LIMIT, FS_ACCESS_RIGHTS),
        seg(GS_SELECTOR, GS_BASE, GS_LIMIT, GS_ACCESS_RIGHTS),
    ];
    let flat = |vmcs: &mut _, s: &Segment, sel: u16, access: u32| -> Result<(), VmxError> {
        write_segment(vmcs, s, sel, 0, 0xffff_ffff, access)
    };
    flat(
        vmcs,
        &seg(CS_SELECTOR, CS_BASE, CS_LIMIT, CS_ACCESS_RIGHTS),
        CODE_SELECTOR,
        CODE32_ACCESS,
    )?;
    for s in &data_segments {
        flat(vmcs, s, DATA_SELECTOR, DATA32_ACCESS)?;
    }
    write_segment(
        vmcs,
        &seg(TR_SELECTOR, TR_BASE, TR_LIMIT, TR_ACCESS_RIGHTS),
        0,
        0,
        0x67,
        TSS_BUSY_ACCESS,
    )?;
    write_segment(
        vmcs,
        &seg(LDTR_SELECTOR, LDTR_BASE, LDTR_LIMIT, LDTR_ACCESS_RIGHTS),
        0,
        0,
        0,
        UNUSABLE,
    )?;
    vmcs.write_natural(GDTR_BASE, 0)?;
    vmcs.write32(GDTR_LIMIT, 0)?;
    vmcs.write_natural(IDTR_BASE, 0)?;
    vmcs.write32(IDTR_LIMIT, 0)?;

    // CR0 = PE (+ ET, + forced NE); the shadow shows the guest what it expects.
    vmcs.write_natural(CR0, real_cr0(CR0_PE, cfg.cr0_fixed0, cfg.cr0_fixed1))?;
    vmcs.write_natural(control::CR0_READ_SHADOW, CR0_PE | CR0_ET)?;
    vmcs.write_natural(
        control::CR0_GUEST_HOST_MASK,
        cr0_host_mask(cfg.cr0_fixed0, cfg.cr0_fixed1),
    )?;
    vmcs.write_natural(CR3, 0)?;
    vmcs.write_natural(CR4, cfg.cr4_fixed0)?;
    vmcs.write_natural(control::CR4_READ_SHADOW, 0)?;
    vmcs.write_natural(
        control::CR4_GUEST_HOST_MASK,
        cr4_host_mask(cfg.cr4_fixed0, cfg.cr4_fixed1),
    )?;
    vmcs.write64(IA32_EFER, 0)?;
    vmcs.write64(IA32_PAT, PAT_DEFAULT)?;
    vmcs.write64(IA32_DEBUGCTL, 0)?;
    vmcs.write_natural(DR7, 0x400)?;
    vmcs.write32(IA32_SYSENTER_CS, 0)?;
    vmcs.write_natural(IA32_SYSENTER_ESP, 0)?;
    vmcs.write_natural(IA32_SYSENTER_EIP, 0)?;

    vmcs.write_natural(RIP, entry.into())?;
    vmcs.write_natural(RSP, 0)?;
    // Bit 1 is reserved and must be 1; IF = 0 (SDM §27.3.1.4).
    vmcs.write_natural(RFLAGS, 0x2)?;
    vmcs.write_natural(PENDING_DEBUG_EXCEPTIONS, 0)?;
    vmcs.write32(ACTIVITY_STATE, 0)?;
    vmcs.write32(INTERRUPTIBILITY_STATE, 0)?;
    // Entering 32-bit protected mode: "IA-32e mode guest" must be clear (§27.3.1.1).
    let entry_controls = vmcs.read32(control::ENTRY_CONTROLS)?;
    vmcs.write32(
        control::ENTRY_CONTROLS,
        entry_controls & !super::controls::bits::ENTRY_IA32E_MODE_GUEST,
    )?;

    *regs = GuestRegisters {
        rbx: start_info.into(),
        ..GuestRegisters::default()
    };
    Ok(())
}

fn write_segment(
    vmcs: &mut impl VmcsAccess,
    s: &Segment,
    selector: u16,
    base: u64,
    limit: u32,
    access: u32,
) -> Result<(), VmxError> {
    vmcs.write16(s.selector, selector)?;
    vmcs.write_natural(s.base, base)?;
    vmcs.write32(s.limit, limit)?;
    vmcs.write32(s.access, access)
}
