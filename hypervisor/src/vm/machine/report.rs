//! What a VM tells the operator: `vm info` text and the register dump of a crash.

use alloc::format;
use alloc::string::String;
use core::fmt;

use super::Machine;
use crate::vm::console_out::LineOutput;
use crate::vmx::hw::VmxOn;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::{control, exit_info, guest};

impl<O: LineOutput> Machine<O> {
    /// A one-line register dump of the vCPU for crash reports.
    pub fn state_dump(&mut self, vmx: &mut VmxOn) -> String {
        let Some(vcpu) = self.vcpu.as_mut() else {
            return String::from("(no vCPU)");
        };
        let dump = vcpu.with_vmcs(vmx, |vmcs, regs| {
            Ok(format!(
                "rip={:#x} rsp={:#x} rflags={:#x} cr0={:#x} cr3={:#x} cr4={:#x} efer={:#x} \
                 exit_reason={:#x} qualification={:#x} {regs:?}",
                vmcs.read_natural(guest::RIP)?,
                vmcs.read_natural(guest::RSP)?,
                vmcs.read_natural(guest::RFLAGS)?,
                vmcs.read_natural(control::CR0_READ_SHADOW)?,
                vmcs.read_natural(guest::CR3)?,
                vmcs.read_natural(control::CR4_READ_SHADOW)?,
                vmcs.read64(guest::IA32_EFER)?,
                vmcs.read32(exit_info::EXIT_REASON)?,
                vmcs.read_natural(exit_info::QUALIFICATION)?,
            ))
        });
        dump.unwrap_or_else(|e| format!("(state unreadable: {e})"))
    }

    /// `vm info` text.
    pub fn write_info(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        writeln!(
            out,
            "{}: {} ram={} MiB vpid={} exits={} slices={}",
            self.name,
            self.state.name(),
            self.ram.size() >> 20,
            self.vpid,
            self.counters.total(),
            self.slices
        )?;
        if let Some(reason) = self.crash {
            writeln!(out, "  crashed: {reason}")?;
        }
        writeln!(
            out,
            "  halt: {} skipped={} irq0={}",
            if self.halted.is_some() {
                "asleep"
            } else {
                "awake"
            },
            self.halt_skips,
            self.board.irq0_pulses
        )?;
        let offer = super::devices::host_offer();
        writeln!(
            out,
            "  cpu model: {}",
            crate::vm::cpu_model::model_name(&self.emu.features, &offer)
        )?;
        for (reason, name, count) in self.counters.nonzero() {
            writeln!(out, "  exit {reason:>2} {name:<24} {count}")?;
        }
        Ok(())
    }
}
