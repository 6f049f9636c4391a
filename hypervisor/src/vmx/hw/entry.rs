//! VM entry and exit: the only code that switches between hypervisor and guest registers.
//!
//! `vmx_enter` saves the host's callee-saved registers and RFLAGS on the stack, stores the
//! stack pointer into HOST_RSP (so the exit lands on this very frame), loads the guest GPRs
//! from a [`GuestRegisters`] and executes VMLAUNCH or VMRESUME. If the instruction fails
//! (SDM §31.2: CF = VMfailInvalid, ZF = VMfailValid) it falls through and returns 1 or 2.
//! A VM exit continues at `vmx_exit_landing` (HOST_RIP) with RSP = HOST_RSP and all GPRs
//! still holding guest values (SDM §28.5: exits load RSP/RIP, not GPRs): it stores them into
//! the same `GuestRegisters`, restores the host registers and returns 0 from `vmx_enter`.
//! RFLAGS is restored with POPFQ because a VM exit clears it (§28.5.3), including IF.

use core::mem::offset_of;

use crate::vmx::error::{InstructionError, VmxError, VmxInstruction};
use crate::vmx::exit::RawExit;
use crate::vmx::regs::GuestRegisters;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::exit_info;

use super::LoadedVmcs;

/// Enter the guest. Returns 0 after a VM exit, 1 on VMfailInvalid, 2 on VMfailValid.
#[unsafe(naked)]
unsafe extern "C" fn vmx_enter(regs: *mut GuestRegisters, launched: u64) -> u64 {
    core::arch::naked_asm!(
        "pushfq",
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rdi",
        "mov rax, {host_rsp}",
        "vmwrite rax, rsp",
        "jbe 3f",
        "test rsi, rsi",
        // MOV does not change flags: ZF from the TEST survives the register loads.
        "mov rax, [rdi + {rax}]",
        "mov rbx, [rdi + {rbx}]",
        "mov rcx, [rdi + {rcx}]",
        "mov rdx, [rdi + {rdx}]",
        "mov rsi, [rdi + {rsi}]",
        "mov rbp, [rdi + {rbp}]",
        "mov r8, [rdi + {r8}]",
        "mov r9, [rdi + {r9}]",
        "mov r10, [rdi + {r10}]",
        "mov r11, [rdi + {r11}]",
        "mov r12, [rdi + {r12}]",
        "mov r13, [rdi + {r13}]",
        "mov r14, [rdi + {r14}]",
        "mov r15, [rdi + {r15}]",
        "mov rdi, [rdi + {rdi}]",
        "jnz 2f",
        "vmlaunch",
        "jmp 3f",
        "2:",
        "vmresume",
        "3:",
        // Failure: CF -> 1 (VMfailInvalid), else ZF -> 2 (VMfailValid).
        "mov eax, 2",
        "mov ecx, 1",
        "cmovc eax, ecx",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "popfq",
        "ret",
        host_rsp = const 0x6c14,
        rax = const offset_of!(GuestRegisters, rax),
        rbx = const offset_of!(GuestRegisters, rbx),
        rcx = const offset_of!(GuestRegisters, rcx),
        rdx = const offset_of!(GuestRegisters, rdx),
        rsi = const offset_of!(GuestRegisters, rsi),
        rdi = const offset_of!(GuestRegisters, rdi),
        rbp = const offset_of!(GuestRegisters, rbp),
        r8 = const offset_of!(GuestRegisters, r8),
        r9 = const offset_of!(GuestRegisters, r9),
        r10 = const offset_of!(GuestRegisters, r10),
        r11 = const offset_of!(GuestRegisters, r11),
        r12 = const offset_of!(GuestRegisters, r12),
        r13 = const offset_of!(GuestRegisters, r13),
        r14 = const offset_of!(GuestRegisters, r14),
        r15 = const offset_of!(GuestRegisters, r15),
    )
}

/// HOST_RIP: where the CPU continues after every VM exit. Never called directly.
#[unsafe(naked)]
unsafe extern "C" fn vmx_exit_landing() {
    core::arch::naked_asm!(
        "push rdi",
        "mov rdi, [rsp + 8]",
        "mov [rdi + {rax}], rax",
        "mov [rdi + {rbx}], rbx",
        "mov [rdi + {rcx}], rcx",
        "mov [rdi + {rdx}], rdx",
        "mov [rdi + {rsi}], rsi",
        "mov [rdi + {rbp}], rbp",
        "mov [rdi + {r8}], r8",
        "mov [rdi + {r9}], r9",
        "mov [rdi + {r10}], r10",
        "mov [rdi + {r11}], r11",
        "mov [rdi + {r12}], r12",
        "mov [rdi + {r13}], r13",
        "mov [rdi + {r14}], r14",
        "mov [rdi + {r15}], r15",
        "pop rax",
        "mov [rdi + {rdi}], rax",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "popfq",
        "xor eax, eax",
        "ret",
        rax = const offset_of!(GuestRegisters, rax),
        rbx = const offset_of!(GuestRegisters, rbx),
        rcx = const offset_of!(GuestRegisters, rcx),
        rdx = const offset_of!(GuestRegisters, rdx),
        rsi = const offset_of!(GuestRegisters, rsi),
        rdi = const offset_of!(GuestRegisters, rdi),
        rbp = const offset_of!(GuestRegisters, rbp),
        r8 = const offset_of!(GuestRegisters, r8),
        r9 = const offset_of!(GuestRegisters, r9),
        r10 = const offset_of!(GuestRegisters, r10),
        r11 = const offset_of!(GuestRegisters, r11),
        r12 = const offset_of!(GuestRegisters, r12),
        r13 = const offset_of!(GuestRegisters, r13),
        r14 = const offset_of!(GuestRegisters, r14),
        r15 = const offset_of!(GuestRegisters, r15),
    )
}

/// The value for HOST_RIP.
pub fn exit_landing_address() -> u64 {
    vmx_exit_landing as *const () as usize as u64
}

/// Read the exit-information fields into a [`RawExit`].
pub fn read_exit(vmcs: &impl VmcsAccess) -> Result<RawExit, VmxError> {
    Ok(RawExit {
        reason: vmcs.read32(exit_info::EXIT_REASON)?,
        qualification: vmcs.read_natural(exit_info::QUALIFICATION)?,
        guest_physical: vmcs.read64(exit_info::GUEST_PHYSICAL_ADDRESS)?,
        guest_linear: vmcs.read_natural(exit_info::GUEST_LINEAR_ADDRESS)?,
        interruption_info: vmcs.read32(exit_info::INTERRUPTION_INFO)?,
        interruption_error: vmcs.read32(exit_info::INTERRUPTION_ERROR_CODE)?,
        instruction_len: vmcs.read32(exit_info::INSTRUCTION_LENGTH)?,
    })
}

/// Run the guest of the current VMCS until the next VM exit.
///
/// # Safety
/// The VMCS must be completely set up by `vmx::setup` (controls, host state with HOST_RIP =
/// [`exit_landing_address`], guest state, EPT and bitmaps in frames that outlive the run),
/// and `regs` must be this vCPU's registers.
pub unsafe fn run(
    vmcs: &mut LoadedVmcs<'_>,
    regs: &mut GuestRegisters,
) -> Result<RawExit, VmxError> {
    let launched = vmcs.launched();
    // SAFETY: per the function contract; `regs` is a valid, exclusively borrowed
    // GuestRegisters for the whole call (the assembly reads and writes it).
    let code = unsafe { vmx_enter(regs, u64::from(launched)) };
    let instruction = if launched {
        VmxInstruction::Vmresume
    } else {
        VmxInstruction::Vmlaunch
    };
    match code {
        0 => {
            let exit = read_exit(vmcs)?;
            // A VM-entry failure after the checks (exit reason bit 31) leaves the VMCS
            // unlaunched (SDM §27.8).
            if !exit.is_entry_failure() {
                vmcs.set_launched();
            }
            Ok(exit)
        }
        1 => Err(VmxError::FailInvalid(instruction)),
        _ => Err(match vmcs.read32(exit_info::VM_INSTRUCTION_ERROR) {
            Ok(n) => VmxError::FailValid(instruction, InstructionError(n)),
            Err(_) => VmxError::FailValidUnreadable(instruction),
        }),
    }
}
