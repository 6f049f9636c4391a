//! The board on real VT-x: timers and interrupt lines brought up to date and the next
//! event programmed before every VM entry, IDT-vectoring information taken after every
//! exit, and HLT as a sleep.
//!
//! Why HLT sleeps here: a halted vCPU has nothing to execute until an interrupt wakes it
//! (SDM Vol. 2A, HLT: execution resumes on an enabled interrupt, NMI, SMI, INIT or
//! reset), so entering it only to exit again would burn a host core. [`Machine::run_slice`] asks
//! [`Machine::sleeps`] first: the board is synced to the guest TSC and, unless
//! `wakes_from_halt`, the slice ends at once without a VM entry (counted in `vm info` as
//! `halt: skipped`). A VM thus costs only this check per poll while idle.

use super::Machine;
use crate::vm::board::DeviceLines;
use crate::vm::board::entry::{program_entry, record_vectoring};
use crate::vm::board::state::SavedDevice;
use crate::vm::console_out::LineOutput;
use crate::vm::device_state_codec::StateError;
use crate::vm::exit_handler::CrashReason;
use crate::vm::interrupts::injector::GuestInterruptibility;
use crate::vmx::error::VmxError;
use crate::vmx::exit::reason;
use crate::vmx::hw::VmxOn;
use crate::vmx::hw::vcpu::HwVcpu;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::guest;

impl<O: LineOutput> Machine<O> {
    /// The device lines the board samples: COM1's INTR and the disk's level (low without
    /// a disk).
    pub(super) fn device_lines(&self) -> DeviceLines {
        DeviceLines {
            com1: self.uart.pc_irq_line(),
            disk: self
                .disk
                .as_ref()
                .is_some_and(|disk| disk.interrupt_level()),
        }
    }

    /// Whether the vCPU stays asleep in HLT at guest TSC `now` (false when it is not
    /// halted or an event wakes it; it then runs).
    pub(super) fn sleeps(&mut self, now: u64) -> bool {
        let Some(cpu) = self.halted else {
            return false;
        };
        self.board.sync(now, self.device_lines());
        if self.board.wakes_from_halt(cpu) {
            self.halted = None;
            false
        } else {
            self.halt_skips = self.halt_skips.saturating_add(1);
            true
        }
    }

    /// The vCPU executed HLT (RIP is already past it): remember what gates its wake-up.
    pub(super) fn enter_halt(
        &mut self,
        vmx: &mut VmxOn,
        vcpu: &mut HwVcpu,
    ) -> Result<(), VmxError> {
        let cpu = vcpu.with_vmcs(vmx, |vmcs, _| {
            Ok(GuestInterruptibility::from_vmcs(
                vmcs.read_natural(guest::RFLAGS)?,
                vmcs.read32(guest::INTERRUPTIBILITY_STATE)?,
            ))
        })?;
        self.halted = Some(cpu);
        Ok(())
    }

    /// Before a VM entry at guest TSC `now`: timers and lines, then the event and window
    /// controls. Returns the TSC budget for this entry: at most `budget`, and no later than
    /// the board's next timer deadline, so that a timer interrupt is not late by a slice.
    pub(super) fn before_entry(
        &mut self,
        vmx: &mut VmxOn,
        vcpu: &mut HwVcpu,
        now: u64,
        budget: u64,
    ) -> Result<u64, VmxError> {
        self.board.sync(now, self.device_lines());
        let board = &mut self.board;
        vcpu.with_vmcs(vmx, |vmcs, _| program_entry(board, vmcs).map(|_| ()))?;
        Ok(match self.board.next_deadline() {
            Some(deadline) => budget.min(deadline.saturating_sub(now).max(1)),
            None => budget,
        })
    }

    /// After an exit: an event whose delivery the exit interrupted is queued again. A
    /// malformed IDT-vectoring field stops the VM (it cannot be re-delivered faithfully).
    pub(super) fn after_exit(
        &mut self,
        vmx: &mut VmxOn,
        vcpu: &mut HwVcpu,
        qualification: u64,
    ) -> Result<Result<(), CrashReason>, VmxError> {
        let board = &mut self.board;
        let recorded = vcpu.with_vmcs(vmx, |vmcs, _| record_vectoring(board, vmcs))?;
        Ok(recorded.map_err(|_| CrashReason::Unhandled {
            reason: reason::EXCEPTION_OR_NMI,
            qualification,
        }))
    }
}

impl<O: LineOutput> Machine<O> {
    /// The board's seven device states for migration (`vm/board/state.rs`).
    pub fn board_devices(&self) -> [SavedDevice; 7] {
        self.board.save_devices()
    }

    /// Load one incoming board state (an id `Board::owns_device` accepts), on the clock of
    /// the TSC rate the VM was shown (`tsc-rate` arrives before these).
    pub fn load_board_device(&mut self, id: &str, data: &[u8]) -> Result<(), StateError> {
        self.board.set_tsc_khz(self.emu.tsc_khz);
        self.board.load_device(id, data)
    }
}
