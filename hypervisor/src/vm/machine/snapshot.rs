//! Saving and restoring a paused VM's vCPU (for migration): the protocol's [`VcpuState`]
//! read from and written to the hardware vCPU by `vm::vcpu_state` (the one conversion),
//! with the guest TSC carried
//! across hosts through the VMCS TSC offset (SDM Vol. 3C §26.3 "Changes to instruction
//! behavior": RDTSC returns TSC + offset when "use TSC offsetting" is set).

use migration_proto::message::VcpuState;

use super::{Machine, MachineError};
use crate::vm::console_out::LineOutput;
use crate::vm::cpuid::arriving_tsc_khz;
use crate::vm::exit_handler::HostCpu;
use crate::vm::state::VmState;
use crate::vm::vcpu_state::entry_checks::{GuestStateError, GuestStateLimits};
use crate::vm::vcpu_state::{self, ApplyError, VcpuSoftware};
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
            Self::Entry(e) => write!(f, "{e}"),
            Self::NoTscOffsetting => write!(f, "this CPU cannot offset the guest TSC"),
            Self::Machine(e) => write!(f, "{e}"),
        }
    }
}

impl<O: LineOutput> Machine<O> {
    /// The TSC rate (kHz) this VM shows its guest through CPUID 0x4000_0010.
    pub fn tsc_khz(&self) -> u32 {
        self.emu.tsc_khz
    }

    /// An arriving VM keeps the TSC rate it was shown on its first host (`tsc-rate` device
    /// state; 0 = unknown: this host's rate).
    pub fn set_arriving_tsc_khz(&mut self, incoming_khz: u32) {
        self.emu.tsc_khz = vm_tsc_khz(&self.name, incoming_khz, super::migration::host_tsc_khz());
    }

    /// The feature bits of the VM's CPU model (`vm::cpu_model`), as its guest sees them.
    pub fn cpu_features(&self) -> crate::vm::cpu_model::FeatureMasks {
        self.emu.features
    }

    /// Sets the VM's CPU model: at creation from `cpu =`, or on arrival from the
    /// `cpu-model` device state. It survives reboots and vCPU-state loads.
    pub fn set_cpu_features(&mut self, features: crate::vm::cpu_model::FeatureMasks) {
        self.emu.features = features;
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

    /// The vCPU state of a paused VM.
    pub fn save_vcpu_state(&mut self, vmx: &mut VmxOn) -> Result<VcpuState, SnapshotError> {
        if self.state == VmState::Running || self.state == VmState::Created {
            return Err(SnapshotError::NotPaused(self.state));
        }
        let guest_tsc = self.host().guest_tsc();
        let (emulation, switched_msrs) = (self.emu, self.syscall_msrs);
        let vcpu = self
            .vcpu
            .as_mut()
            .ok_or(SnapshotError::NotPaused(self.state))?;
        vcpu.with_vmcs(vmx, |vmcs, regs| {
            let soft = VcpuSoftware {
                regs: *regs,
                emulation,
                switched_msrs,
                guest_tsc,
            };
            vcpu_state::capture(vmcs, &soft, 0)
        })
        .map_err(|e| SnapshotError::Machine(e.into()))
    }

    /// Load a vCPU state into this (paused, booted) VM; the guest TSC continues from the
    /// saved value. Refused unless it passes the VM-entry checks
    /// (`vcpu_state::entry_checks`).
    pub fn restore_vcpu_state(
        &mut self,
        vmx: &mut VmxOn,
        state: &VcpuState,
    ) -> Result<(), SnapshotError> {
        if self.state != VmState::Paused {
            return Err(SnapshotError::NotPaused(self.state));
        }
        if vmx.config.primary & PROC_USE_TSC_OFFSETTING == 0 {
            return Err(SnapshotError::NoTscOffsetting);
        }
        // The state may come from a peer: `apply` refuses what would fail the entry or
        // make the host's WRMSR of the SYSCALL MSRs #GP, before writing anything (the
        // migration checks this before the commit; this is the last line of defence for
        // every other caller).
        let limits = GuestStateLimits::of_host(&vmx.config);
        let host_tsc = HwHost {
            xsave: false,
            tsc_offset: 0,
        }
        .guest_tsc();
        let vcpu = self
            .vcpu
            .as_mut()
            .ok_or(SnapshotError::NotPaused(self.state))?;
        let soft = vcpu
            .with_vmcs(vmx, |vmcs, regs| {
                let applied = vcpu_state::apply(state, vmcs, &limits);
                if let Ok(soft) = &applied {
                    *regs = soft.regs;
                    let offset = soft.guest_tsc.wrapping_sub(host_tsc);
                    vmcs.write64(control::TSC_OFFSET, offset)?;
                }
                Ok(applied)
            })
            .map_err(|e| SnapshotError::Machine(e.into()))?
            .map_err(|e| match e {
                ApplyError::Refused(e) => SnapshotError::Entry(e),
                ApplyError::Vmcs(e) => SnapshotError::Machine(e.into()),
            })?;
        let offset = soft.guest_tsc.wrapping_sub(host_tsc);
        // The TSC rate the guest is shown is the VM's, not part of the vCPU state: it came
        // with the machine (created here) or with the `tsc-rate` device state.
        let (tsc_khz, features) = (self.emu.tsc_khz, self.emu.features);
        self.emu = soft.emulation;
        self.emu.tsc_khz = tsc_khz;
        self.emu.features = features;
        self.syscall_msrs = soft.switched_msrs;
        self.tsc_offset = offset;
        Ok(())
    }
}
