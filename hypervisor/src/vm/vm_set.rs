//! All VMs of the host: round-robin scheduling of slices and the `vm` console commands.
//!
//! Generic over [`ManagedVm`] so that the scheduling and the console behaviour are tested
//! on the host with fake VMs; on bare metal `vm::machine::Machine` implements it, with the
//! per-CPU VMX state and the frame source as the [`ManagedVm::Context`].

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use self::hold::VmHold;

use super::console_cmd::{VmConsoleCommand, parse_vm_command};
use super::state::{VmCommand, VmState};

/// What one slice of a VM did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceResult {
    /// The guest ran.
    Ran,
    /// Nothing to run (not running, or halted with nothing to wake it).
    Idle,
    /// The VM crashed in this slice (it reports the details itself).
    Crashed,
}

/// A VM as the scheduler and the console see it.
pub trait ManagedVm {
    /// Shared state the operations need (on bare metal: VMX root state and frames).
    type Context;
    /// Errors of commands and slices.
    type Error: fmt::Display;
    /// The VM's name (unique per host).
    fn name(&self) -> &str;
    /// Its life-cycle state.
    fn state(&self) -> VmState;
    /// Guest RAM in bytes.
    fn ram_bytes(&self) -> u64;
    /// Exits since the last boot.
    fn total_exits(&self) -> u64;
    /// Multi-line `vm info` text.
    fn write_info(&self, out: &mut dyn fmt::Write) -> fmt::Result;
    /// Apply an operator command.
    fn command(&mut self, ctx: &mut Self::Context, cmd: VmCommand) -> Result<(), Self::Error>;
    /// Run one slice of at most `ticks` TSC ticks.
    fn run_slice(
        &mut self,
        ctx: &mut Self::Context,
        ticks: u64,
    ) -> Result<SliceResult, Self::Error>;
}

/// The host's VMs.
pub struct VmSet<V: ManagedVm> {
    vms: Vec<V>,
    next: usize,
    /// VMs migration owns for now (see `hold`).
    holds: Vec<(String, VmHold)>,
}

impl<V: ManagedVm> Default for VmSet<V> {
    fn default() -> Self {
        Self {
            vms: Vec::new(),
            next: 0,
            holds: Vec::new(),
        }
    }
}

impl<V: ManagedVm> VmSet<V> {
    /// No VMs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a VM; refused (returned) if the name is taken.
    pub fn add(&mut self, vm: V) -> Result<(), V> {
        if self.find(vm.name()).is_some() {
            return Err(vm);
        }
        self.vms.push(vm);
        Ok(())
    }

    /// The VMs, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &V> {
        self.vms.iter()
    }

    /// The VMs, mutably (e.g. for migration to reach one `Machine`).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.vms.iter_mut()
    }

    /// The VM named `name`.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        let i = self.find(name)?;
        self.vms.get_mut(i)
    }

    /// Take the VM named `name` out of the set (e.g. after it migrated away).
    pub fn remove(&mut self, name: &str) -> Option<V> {
        let i = self.find(name)?;
        if self.next > i {
            self.next -= 1;
        }
        self.release_hold(name);
        Some(self.vms.remove(i))
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.vms.iter().position(|v| v.name() == name)
    }

    /// Give the next running VM one slice (round-robin over all VMs, skipping those with
    /// nothing to run). Returns what the slice did; a slice error stops that VM and is
    /// reported through `report`.
    pub fn run_next_slice(
        &mut self,
        ctx: &mut V::Context,
        ticks: u64,
        mut report: impl FnMut(&str, &dyn fmt::Display),
    ) -> SliceResult {
        for _ in 0..self.vms.len() {
            let i = self.next % self.vms.len();
            self.next = (i + 1) % self.vms.len();
            let vm = &mut self.vms[i];
            // An in-doubt VM may be running elsewhere; an unrunnable one has no vCPU state.
            let must_not_run = self
                .holds
                .iter()
                .any(|(n, h)| matches!(h, VmHold::InDoubt | VmHold::Unrunnable) && n == vm.name());
            if vm.state() != VmState::Running || must_not_run {
                continue;
            }
            match vm.run_slice(ctx, ticks) {
                Ok(SliceResult::Idle) => continue,
                Ok(result) => return result,
                Err(e) => {
                    report(vm.name(), &e);
                    if let Err(e) = vm.command(ctx, VmCommand::Stop) {
                        report(vm.name(), &e);
                    }
                    return SliceResult::Crashed;
                }
            }
        }
        SliceResult::Idle
    }

    /// Execute the arguments of a `vm` console line, writing the answer (or a one-line
    /// error) to `out`.
    pub fn execute(
        &mut self,
        ctx: &mut V::Context,
        args: &str,
        out: &mut dyn fmt::Write,
    ) -> fmt::Result {
        let command = match parse_vm_command(args) {
            Ok(c) => c,
            Err(e) => return writeln!(out, "{e}"),
        };
        match command {
            VmConsoleCommand::List => {
                if self.vms.is_empty() {
                    return writeln!(out, "no VMs configured");
                }
                writeln!(
                    out,
                    "{:<16} {:<8} {:>8} {:>12}",
                    "NAME", "STATE", "RAM MiB", "EXITS"
                )?;
                for vm in &self.vms {
                    let state = match self.hold_of(vm.name()) {
                        Some(hold) => hold.name(),
                        None => vm.state().name(),
                    };
                    writeln!(
                        out,
                        "{:<16} {:<8} {:>8} {:>12}",
                        vm.name(),
                        state,
                        vm.ram_bytes() >> 20,
                        vm.total_exits()
                    )?;
                }
                Ok(())
            }
            VmConsoleCommand::Info(name) => match self.find(name) {
                Some(i) => self.vms[i].write_info(out),
                None => writeln!(out, "vm: no VM named '{name}'"),
            },
            VmConsoleCommand::Control(_, name) if let Some(hold) = self.hold_of(name) => {
                writeln!(out, "vm {name}: {}", hold.refusal())
            }
            VmConsoleCommand::Control(cmd, name) => match self.find(name) {
                Some(i) => match self.vms[i].command(ctx, cmd) {
                    Ok(()) => writeln!(out, "{name}: {}", self.vms[i].state().name()),
                    Err(e) => writeln!(out, "vm {name}: {e}"),
                },
                None => writeln!(out, "vm: no VM named '{name}'"),
            },
        }
    }
}

mod hold;
#[cfg(test)]
mod tests;
