//! What can go wrong when a migration engine asks a VM for something: the error of
//! [`MigratableVm`](super::source::MigratableVm), [`IncomingVm`](super::destination::IncomingVm)
//! and [`IncomingVmFactory`](super::destination::IncomingVmFactory).
//!
//! Why an enum whose `Display` is the whole sentence: the text travels to the operator
//! unchanged (the source's `migrate: failed: ...` line, or the destination's `Abort` reason,
//! which the source's operator reads), while code and tests can match on what failed.
//! Causes from portable layers (guest RAM, the UART model, the VM-entry checks) keep their
//! types; causes from the bare-metal machine (`vm::machine`, which does not exist on the
//! host where these traits are tested) arrive as their message.

use alloc::string::String;
use core::fmt;

use crate::vm::device_state_codec::StateError;
use crate::vm::guest_ram::GuestRamError;
use crate::vm::uart16550::state::RestoreError as UartRestoreError;
use crate::vm::vcpu_state::entry_checks::GuestStateError;

/// A VM operation a migration engine asked for failed; `Display` says which and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmError {
    /// Guest RAM could not be read.
    ReadMemory(GuestRamError),
    /// Dirty tracking could not be started (the machine's message).
    StartDirtyTracking(String),
    /// The dirty pages could not be harvested (the machine's message).
    HarvestDirty(String),
    /// The paused vCPU's state could not be saved (the machine's message).
    SaveVcpu(String),
    /// An incoming vCPU state for a vCPU other than 0, or a second one: tern's VMs have
    /// one vCPU.
    UnexpectedVcpu {
        /// The vCPU index the state names.
        index: u32,
    },
    /// The incoming vCPU state would fail VM entry (SDM Vol. 3C §27.3.1): the field and rule.
    VcpuCannotEnter(GuestStateError),
    /// The incoming COM1 UART state was refused.
    UartState(UartRestoreError),
    /// The incoming TSC-rate state is not a 4-byte kHz value.
    TscRateLength {
        /// Bytes received.
        bytes: usize,
    },
    /// An incoming interrupt-controller or timer state (`lapic0`, `ioapic`, `pic`, `pit`,
    /// `rtc`, `events0`) was refused by its model.
    DeviceState(StateError),
    /// The incoming `cpu-model` state is not the feature masks of `vm::cpu_model`.
    CpuModelLength {
        /// Bytes received.
        bytes: usize,
    },
    /// The incoming VM's CPU model shows features this host cannot offer (their names).
    CpuFeaturesMissing(alloc::vec::Vec<&'static str>),
    /// A device state this VM has no model for (or not in this version).
    UnknownDevice {
        /// The device-state id.
        id: String,
        /// Its version.
        version: u32,
    },
    /// The incoming VM's name is taken by a VM of this host.
    NameTaken(String),
    /// The incoming VM has more vCPUs than tern supports (one).
    TooManyVcpus(u32),
    /// The incoming VM could not be built (the machine's message: memory, EPT, VMCS).
    Build(String),
    /// This host cannot run VMs at all (why: e.g. no VT-x).
    NoVirtualization(String),
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmError::ReadMemory(e) => write!(f, "reading guest RAM: {e}"),
            VmError::StartDirtyTracking(e) => write!(f, "starting dirty tracking: {e}"),
            VmError::HarvestDirty(e) => write!(f, "harvesting dirty pages: {e}"),
            VmError::SaveVcpu(e) => write!(f, "saving the vCPU: {e}"),
            VmError::UnexpectedVcpu { index } => write!(
                f,
                "vCPU state for vCPU {index} (this VM has one vCPU, 0, sent once)"
            ),
            VmError::VcpuCannotEnter(e) => write!(f, "incoming vCPU state: {e}"),
            VmError::UartState(e) => write!(f, "incoming UART state: {e}"),
            VmError::TscRateLength { bytes } => {
                write!(f, "incoming TSC rate: {bytes} bytes, expected 4")
            }
            VmError::DeviceState(e) => write!(f, "incoming device state: {e}"),
            VmError::CpuModelLength { bytes } => write!(
                f,
                "incoming CPU model: {bytes} bytes, expected {}",
                crate::vm::cpu_model::MASKED_REGISTERS.len() * 4
            ),
            VmError::CpuFeaturesMissing(names) => {
                write!(f, "the VM's CPU model needs features this host lacks:")?;
                for name in names {
                    write!(f, " {name}")?;
                }
                Ok(())
            }
            VmError::UnknownDevice { id, version } => {
                write!(f, "unknown device state '{id}' version {version}")
            }
            VmError::NameTaken(name) => write!(f, "a VM named '{name}' exists here"),
            VmError::TooManyVcpus(count) => write!(f, "{count} vCPUs (1 supported)"),
            VmError::Build(e) => write!(f, "building the VM: {e}"),
            VmError::NoVirtualization(why) => write!(f, "this host cannot run VMs: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn messages_name_the_operation_and_the_cause() {
        let read = VmError::ReadMemory(GuestRamError::OutOfRange {
            gpa: 0x1000,
            len: 0x2000,
        });
        assert_eq!(
            read.to_string(),
            "reading guest RAM: guest access 0x1000+0x2000 is outside guest RAM"
        );
        let entry = VmError::VcpuCannotEnter(GuestStateError {
            field: "RIP",
            rule: "not canonical",
        });
        assert_eq!(
            entry.to_string(),
            "incoming vCPU state: vCPU state cannot enter: RIP: not canonical (SDM Vol. 3C §27.3.1)"
        );
        assert_eq!(
            VmError::UnknownDevice {
                id: "lapic0".into(),
                version: 2
            }
            .to_string(),
            "unknown device state 'lapic0' version 2"
        );
        assert_eq!(
            VmError::NoVirtualization("VT-x: not available".into()).to_string(),
            "this host cannot run VMs: VT-x: not available"
        );
    }
}
