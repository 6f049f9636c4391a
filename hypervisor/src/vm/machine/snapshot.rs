//! Saving and restoring a paused VM's vCPU (for migration): the portable
//! [`VcpuState`] read from and written to the hardware vCPU, with the guest TSC carried
//! across hosts through the VMCS TSC offset (SDM Vol. 3C §26.3 "Changes to instruction
//! behavior": RDTSC returns TSC + offset when "use TSC offsetting" is set).

use alloc::vec::Vec;

use super::{Machine, MachineError};
use crate::vm::console_out::LineOutput;
use crate::vm::cpuid::arriving_tsc_khz;
use crate::vm::exit_handler::HostCpu;
use crate::vm::state::VmState;
use crate::vm::vcpu_state::entry_checks::{GuestStateError, GuestStateLimits, check_guest_state};
use crate::vm::vcpu_state::{VcpuState, VcpuStateError};
use crate::vmx::hw::VmxOn;
use crate::vmx::setup::controls::bits::PROC_USE_TSC_OFFSETTING;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::control;

use super::devices::HwHost;

/// Why a vCPU state could not be saved or restored.
#[derive(Debug)]
pub enum SnapshotError {
    /// The VM must be paused (or stopped/crashed) with a vCPU that has booted.
    NotPaused(VmState),
    /// The bytes were refused.
    State(VcpuStateError),
    /// The state would fail VM entry, or a host WRMSR of its MSRs would #GP.
    Entry(GuestStateError),
    /// The CPU cannot offset the TSC, so the guest's TSC cannot be carried over.
    NoTscOffsetting,
    /// VMCS access failed.
    Machine(MachineError),
}

impl core::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotPaused(s) => write!(f, "vCPU state needs a paused VM (it is {})", s.name()),
            Self::State(e) => write!(f, "{e}"),
            Self::Entry(e) => write!(f, "{e}"),
            Self::NoTscOffsetting => write!(f, "this CPU cannot offset the guest TSC"),
            Self::Machine(e) => write!(f, "{e}"),
        }
    }
}

/// The TSC rate an arriving VM keeps showing its guest (see [`arriving_tsc_khz`]); a
/// mismatch with this host's rate is logged, as tern does not scale the TSC.
fn vm_tsc_khz(vm: &str, incoming_khz: u32, host_khz: u32) -> u32 {
    let arrival = arriving_tsc_khz(incoming_khz, host_khz);
    if let Some(permille) = arrival.guest_clock_permille {
        log::warn!(
            "vm {vm}: it was shown a TSC rate of {incoming_khz} kHz, this host's TSC runs at \
             {host_khz} kHz: its clock now runs at {}.{}% of real time (tern does not scale \
             the TSC)",
            permille / 10,
            permille % 10
        );
    }
    arrival.khz
}

impl<O: LineOutput> Machine<O> {
    fn host(&self) -> HwHost {
        HwHost {
            xsave: false,
            tsc_offset: self.tsc_offset,
        }
    }

    /// Encode the vCPU state of a paused VM.
    pub fn save_vcpu_state(&mut self, vmx: &mut VmxOn) -> Result<Vec<u8>, SnapshotError> {
        if self.state == VmState::Running || self.state == VmState::Created {
            return Err(SnapshotError::NotPaused(self.state));
        }
        let guest_tsc = self.host().guest_tsc();
        let (emu, switched) = (self.emu, self.syscall_msrs);
        let vcpu = self
            .vcpu
            .as_mut()
            .ok_or(SnapshotError::NotPaused(self.state))?;
        let state = vcpu
            .with_vmcs(vmx, |vmcs, regs| {
                VcpuState::capture(vmcs, regs, &emu, switched, guest_tsc)
            })
            .map_err(|e| SnapshotError::Machine(e.into()))?;
        Ok(state.encode())
    }

    /// Load an encoded vCPU state into this (paused, booted) VM; the guest TSC continues
    /// from the saved value. Refused unless it passes the VM-entry checks
    /// (`vcpu_state::entry_checks`).
    pub fn restore_vcpu_state(
        &mut self,
        vmx: &mut VmxOn,
        bytes: &[u8],
    ) -> Result<(), SnapshotError> {
        if self.state != VmState::Paused {
            return Err(SnapshotError::NotPaused(self.state));
        }
        if vmx.config.primary & PROC_USE_TSC_OFFSETTING == 0 {
            return Err(SnapshotError::NoTscOffsetting);
        }
        let state = VcpuState::decode(bytes).map_err(SnapshotError::State)?;
        // The bytes may come from a peer: never load what would fail the entry or make the
        // host's WRMSR of the SYSCALL MSRs #GP (the migration checks this before the commit;
        // this is the last line of defence for every other caller).
        check_guest_state(&state, &GuestStateLimits::of_host(&vmx.config))
            .map_err(SnapshotError::Entry)?;
        let host_tsc = HwHost {
            xsave: false,
            tsc_offset: 0,
        }
        .guest_tsc();
        let offset = state.guest_tsc.wrapping_sub(host_tsc);
        let vcpu = self
            .vcpu
            .as_mut()
            .ok_or(SnapshotError::NotPaused(self.state))?;
        vcpu.with_vmcs(vmx, |vmcs, regs| {
            state.apply_to_vmcs(vmcs)?;
            vmcs.write64(control::TSC_OFFSET, offset)?;
            *regs = state.regs;
            Ok(())
        })
        .map_err(|e| SnapshotError::Machine(e.into()))?;
        let host_khz = super::migration::host_tsc_khz();
        self.emu = state.emulation;
        self.emu.tsc_khz = vm_tsc_khz(&self.name, state.emulation.tsc_khz, host_khz);
        self.syscall_msrs = state.switched_msrs;
        self.tsc_offset = offset;
        Ok(())
    }
}
