//! The guest powering its VM off: Linux's `poweroff` ends in ACPI S5, a write of PM1_CNT
//! with `\_S5_`'s SLP_TYP and SLP_EN (`vm::acpi_pm`). On hardware the machine loses power
//! right after that write; here the slice ends at the exit that made it and the VM goes to
//! the stopped state, exactly as if the operator had typed `vm stop` (so `vm start` boots
//! it afresh, and migration and `vm list` see an ordinary stopped VM).

use alloc::format;

use super::Machine;
use crate::vm::acpi_pm::SleepAction;
use crate::vm::console_out::LineOutput;
use crate::vm::state::VmState;

impl<O: LineOutput> Machine<O> {
    /// After an exit: whether the guest has just asked for power-off. Other sleep types
    /// are reported and ignored (the guest continues as after a failed sleep).
    pub(super) fn guest_powered_off(&mut self) -> bool {
        match self.board.acpi_pm.take_sleep_action() {
            None => false,
            Some(SleepAction::PowerOff) => true,
            Some(SleepAction::Unsupported(slp_typ)) => {
                self.say(&format!(
                    "guest asked for ACPI sleep type {slp_typ}; tern implements only S5 \
                     (power-off): ignored"
                ));
                false
            }
        }
    }

    /// The VM stops after the guest's power-off.
    pub(super) fn on_power_off(&mut self) {
        self.state = VmState::Stopped;
        self.uart.sink_mut().flush();
        self.say("powered off by the guest (ACPI S5): stopped; `vm start` boots it again");
    }
}
