//! The guest state of the Linux 64-bit boot protocol's entry (Linux
//! `Documentation/arch/x86/boot.rst`, "64-bit BOOT PROTOCOL"): long mode with paging on
//! (CR0.PE|PG, CR4.PAE, EFER.LME|LMA, "IA-32e mode guest" set, SDM Vol. 3C §27.3.1.1),
//! CR3 at identity-mapping page tables, a GDT holding `__BOOT_CS` (0x10, 64-bit code) and
//! `__BOOT_DS` (0x18, flat data) whose selectors CS and DS/ES/SS carry, interrupts off, RSI
//! the physical address of `boot_params`. Built on the PVH state (flat segments, TR, LDTR,
//! activity, debug state are the same) with the long-mode differences written over it.

use super::controls::VmxConfig;
use super::cr::{CR0_ET, CR4_PAE, EFER_LMA, EFER_LME, real_cr0};
use super::guest::write_pvh_guest_state;
use crate::vm::linux_boot::Entry64;
use crate::vm::linux_boot::long_mode::{BOOT_CS, BOOT_DS};
use crate::vmx::caps::{CR0_PE, CR0_PG};
use crate::vmx::error::VmxError;
use crate::vmx::regs::GuestRegisters;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::{control, guest};

/// CS access rights in 64-bit mode (SDM §25.4.1, Table 25-2): type 0xb, S, P, L = 1,
/// D/B = 0 (required with L, §27.3.1.2), G.
pub const CODE64_ACCESS: u32 = 0xa09b;

/// Write the 64-bit Linux entry state `entry`; resets `regs` (RSI = boot_params).
pub fn write_linux64_guest_state(
    vmcs: &mut impl VmcsAccess,
    cfg: &VmxConfig,
    entry: &Entry64,
    regs: &mut GuestRegisters,
) -> Result<(), VmxError> {
    use guest::*;
    // The PVH state first (its entry and EBX are placeholders: RIP and the registers are
    // written below).
    write_pvh_guest_state(vmcs, cfg, 0, 0, regs)?;
    vmcs.write16(CS_SELECTOR, BOOT_CS)?;
    vmcs.write32(CS_ACCESS_RIGHTS, CODE64_ACCESS)?;
    for selector in [
        ES_SELECTOR,
        SS_SELECTOR,
        DS_SELECTOR,
        FS_SELECTOR,
        GS_SELECTOR,
    ] {
        vmcs.write16(selector, BOOT_DS)?;
    }
    vmcs.write_natural(GDTR_BASE, entry.gdt_base)?;
    vmcs.write32(GDTR_LIMIT, u32::from(entry.gdt_limit))?;
    let guest_cr0 = CR0_PE | CR0_PG | CR0_ET;
    vmcs.write_natural(CR0, real_cr0(guest_cr0, cfg.cr0_fixed0, cfg.cr0_fixed1))?;
    vmcs.write_natural(control::CR0_READ_SHADOW, guest_cr0)?;
    vmcs.write_natural(CR3, entry.cr3)?;
    vmcs.write_natural(CR4, cfg.cr4_fixed0 | CR4_PAE)?;
    vmcs.write_natural(control::CR4_READ_SHADOW, CR4_PAE)?;
    vmcs.write64(IA32_EFER, EFER_LME | EFER_LMA)?;
    vmcs.write_natural(RIP, entry.rip)?;
    let entry_controls = vmcs.read32(control::ENTRY_CONTROLS)?;
    vmcs.write32(
        control::ENTRY_CONTROLS,
        entry_controls | super::controls::bits::ENTRY_IA32E_MODE_GUEST,
    )?;
    *regs = GuestRegisters {
        rsi: entry.rsi,
        ..GuestRegisters::default()
    };
    Ok(())
}
