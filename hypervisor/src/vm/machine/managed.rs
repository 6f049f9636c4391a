//! `Machine` as a [`ManagedVm`], so the host's [`VmSet`](crate::vm::vm_set::VmSet) can
//! schedule it and run console commands on it.

use core::fmt;
use core::marker::PhantomData;

use super::{Machine, MachineError, SliceOutcome};
use crate::vm::console_out::LineOutput;
use crate::vm::state::{VmCommand, VmState};
use crate::vm::vm_set::{ManagedVm, SliceResult};
use crate::vmx::frames::FrameSource;
use crate::vmx::hw::VmxOn;

/// What every VM operation on this CPU needs: VMX root state and a frame source.
pub struct MachineContext<F: FrameSource> {
    /// This CPU's VMX root state.
    pub vmx: VmxOn,
    /// Where guest RAM, VMCSs and EPT tables come from.
    pub frames: F,
}

/// A [`Machine`] bound to the frame-source type of its context.
pub struct ManagedMachine<O: LineOutput, F: FrameSource> {
    /// The VM.
    pub machine: Machine<O>,
    _frames: PhantomData<fn(F)>,
}

impl<O: LineOutput, F: FrameSource> ManagedMachine<O, F> {
    /// Wrap `machine`.
    pub fn new(machine: Machine<O>) -> Self {
        Self {
            machine,
            _frames: PhantomData,
        }
    }
}

impl<O: LineOutput, F: FrameSource> ManagedVm for ManagedMachine<O, F> {
    type Context = MachineContext<F>;
    type Error = MachineError;

    fn name(&self) -> &str {
        self.machine.name()
    }

    fn state(&self) -> VmState {
        self.machine.state()
    }

    fn ram_bytes(&self) -> u64 {
        self.machine.ram_bytes()
    }

    fn total_exits(&self) -> u64 {
        self.machine.counters().total()
    }

    fn write_info(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        self.machine.write_info(out)
    }

    fn command(&mut self, ctx: &mut Self::Context, cmd: VmCommand) -> Result<(), MachineError> {
        self.machine.command(&mut ctx.vmx, &mut ctx.frames, cmd)
    }

    fn run_slice(
        &mut self,
        ctx: &mut Self::Context,
        ticks: u64,
    ) -> Result<SliceResult, MachineError> {
        Ok(
            match self
                .machine
                .run_slice(&mut ctx.vmx, &mut ctx.frames, ticks)?
            {
                SliceOutcome::Ran { .. } => SliceResult::Ran,
                SliceOutcome::Halted | SliceOutcome::NotRunning | SliceOutcome::PoweredOff => {
                    SliceResult::Idle
                }
                SliceOutcome::Crashed(_) => SliceResult::Crashed,
            },
        )
    }
}
