//! The last instructions the loader executes: switch to the hypervisor's page tables and jump.
//!
//! Runs after ExitBootServices, from loader code that stays reachable because the new tables
//! identity-map all physical memory (the loader image included). The hypervisor's entry
//! contract: `rdi` = physical address of the [`boot_proto::BootInfo`], interrupts off,
//! EFER.NXE on (the image's non-executable pages use bit 63), a valid temporary stack.

use core::arch::asm;

/// IA32_EFER (SDM Vol. 4, table 2-2): bit 11 = NXE.
const IA32_EFER: u32 = 0xc000_0080;
const EFER_NXE: u32 = 1 << 11;

/// Loads `pml4` into CR3, switches to `stack_top` and jumps to `entry(boot_info)`.
///
/// # Safety
/// `pml4` must be a valid 4-level hierarchy that identity-maps the currently executing code
/// and `stack_top`, and maps `entry`; `boot_info` must point at an initialised `BootInfo`
/// in memory the hypervisor will not reuse. Boot services must have been exited.
pub unsafe fn jump_to_hypervisor(pml4: u64, stack_top: u64, entry: u64, boot_info: u64) -> ! {
    // SAFETY: the caller guarantees the tables and addresses; interrupts are disabled first so
    // no firmware handler runs on the new tables; EFER.NXE is set before any NX entry is used.
    unsafe {
        asm!(
            "cli",
            "mov ecx, {efer}",
            "rdmsr",
            "or eax, {nxe}",
            "wrmsr",
            "mov cr3, r8",
            "mov rsp, r9",
            "xor ebp, ebp",
            "jmp r10",
            efer = const IA32_EFER,
            nxe = const EFER_NXE,
            in("r8") pml4,
            in("r9") stack_top,
            in("r10") entry,
            in("rdi") boot_info,
            options(noreturn),
        )
    }
}
