//! The board's side of every VM exit and entry, on the VMCS: IDT-vectoring information
//! in, the injector's [`EntryPlan`] out.
//!
//! After an exit, an event whose delivery the exit interrupted (IDT-vectoring information
//! valid, SDM Vol. 3C §28.2.4) must be delivered again on the next entry, with its error
//! code and, for software events, its instruction length ([`record_vectoring`]). Before an
//! entry ([`program_entry`]) the injector picks at most one event for the VM-entry
//! interruption-information field (§25.8.3; delivered as §27.6 describes) and whether the
//! guest must exit as soon as it can take an interrupt ("interrupt-window exiting",
//! primary control bit 2, §25.6.2; the exit is §27.2.3's interrupt-window exit) or an NMI
//! ("NMI-window exiting", bit 22, which needs "virtual NMIs").
//!
//! An exception a handler already injected (e.g. #GP for a bad WRMSR) owns the field for
//! this entry: nothing else is taken from the controllers then, and interrupt-window
//! exiting is requested so that a waiting interrupt is considered at the next exit.

use super::Board;
use crate::vm::interrupts::injector::{
    GuestInterruptibility, VectoringError, uses_instruction_length,
};
use crate::vmx::error::VmxError;
use crate::vmx::setup::controls::bits::PIN_VIRTUAL_NMIS;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::{control, exit_info, guest};

/// Primary processor-based control: interrupt-window exiting (SDM Table 25-6).
pub const PROC_INTERRUPT_WINDOW_EXITING: u32 = 1 << 2;
/// Primary processor-based control: NMI-window exiting (needs virtual NMIs).
pub const PROC_NMI_WINDOW_EXITING: u32 = 1 << 22;

const VALID: u32 = 1 << 31;

/// Take the IDT-vectoring information of the exit just taken.
pub fn record_vectoring(
    board: &mut Board,
    vmcs: &impl VmcsAccess,
) -> Result<Result<(), VectoringError>, VmxError> {
    let info = vmcs.read32(exit_info::IDT_VECTORING_INFO)?;
    if info & VALID == 0 {
        return Ok(Ok(()));
    }
    let error = vmcs.read32(exit_info::IDT_VECTORING_ERROR_CODE)?;
    let len = vmcs.read32(exit_info::INSTRUCTION_LENGTH)?;
    Ok(board.irq.injector.record_exit(info, error, len))
}

/// What [`program_entry`] wrote (for tests and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryProgrammed {
    /// The interruption-information value injected by the board, if any.
    pub injected: Option<u32>,
    /// Interrupt-window exiting is on for this entry.
    pub interrupt_window: bool,
}

/// Write the next entry's event and window controls.
pub fn program_entry(
    board: &mut Board,
    vmcs: &mut impl VmcsAccess,
) -> Result<EntryProgrammed, VmxError> {
    let pending_by_handler = vmcs.read32(control::ENTRY_INTERRUPTION_INFO)? & VALID != 0;
    let (injected, interrupt_window, nmi_window) = if pending_by_handler {
        (None, true, false)
    } else {
        let rflags = vmcs.read_natural(guest::RFLAGS)?;
        let state = vmcs.read32(guest::INTERRUPTIBILITY_STATE)?;
        let plan = board.plan_entry(GuestInterruptibility::from_vmcs(rflags, state));
        let injected = match plan.inject {
            Some(event) => {
                let info = event.entry_interruption_info();
                if let Some(code) = event.error_code {
                    vmcs.write32(control::ENTRY_EXCEPTION_ERROR_CODE, code)?;
                }
                if uses_instruction_length(event.kind) {
                    vmcs.write32(control::ENTRY_INSTRUCTION_LENGTH, event.instruction_len)?;
                }
                vmcs.write32(control::ENTRY_INTERRUPTION_INFO, info)?;
                Some(info)
            }
            None => None,
        };
        (
            injected,
            plan.interrupt_window_exiting,
            plan.nmi_window_exiting,
        )
    };
    let virtual_nmis = vmcs.read32(control::PIN_BASED)? & PIN_VIRTUAL_NMIS != 0;
    let primary = vmcs.read32(control::PRIMARY_PROC_BASED)?;
    let mut wanted = primary & !(PROC_INTERRUPT_WINDOW_EXITING | PROC_NMI_WINDOW_EXITING);
    if interrupt_window {
        wanted |= PROC_INTERRUPT_WINDOW_EXITING;
    }
    if nmi_window && virtual_nmis {
        wanted |= PROC_NMI_WINDOW_EXITING;
    }
    if wanted != primary {
        vmcs.write32(control::PRIMARY_PROC_BASED, wanted)?;
    }
    Ok(EntryProgrammed {
        injected,
        interrupt_window,
    })
}
