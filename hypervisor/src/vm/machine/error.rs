//! Errors of VM creation and commands.

use core::fmt;

use crate::vm::guest_ram::GuestRamError;
use crate::vm::pvh::PvhError;
use crate::vm::state::InvalidTransition;
use crate::vmx::ept::EptError;
use crate::vmx::error::VmxError;

/// Why a VM could not be created or commanded.
#[derive(Debug)]
pub enum MachineError {
    /// The guest image is not a valid PVH ELF for this RAM size.
    Image(PvhError),
    /// The Linux kernel, initrd or command line cannot boot in this VM.
    Linux(crate::vm::linux_boot::LinuxBootError),
    /// Guest RAM could not be allocated or written.
    Ram(GuestRamError),
    /// Building the EPT failed.
    Ept(EptError),
    /// A VMX instruction failed.
    Vmx(VmxError),
    /// The command does not apply in the current state.
    Transition(InvalidTransition),
    /// Migration bookkeeping (dirty tracking) failed.
    Migration(crate::migration::dirty::TrackingError),
    /// No heap memory for the vCPU's XSAVE area.
    Xsave(crate::vm::xsave::XsaveAllocError),
    /// The VM's disk could not be attached (the message says why).
    Disk(alloc::string::String),
}

impl fmt::Display for MachineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image(e) => write!(f, "{e}"),
            Self::Linux(e) => write!(f, "{e}"),
            Self::Ram(e) => write!(f, "{e}"),
            Self::Ept(e) => write!(f, "{e}"),
            Self::Vmx(e) => write!(f, "{e}"),
            Self::Transition(e) => write!(f, "{e}"),
            Self::Migration(e) => write!(f, "{e}"),
            Self::Xsave(e) => write!(f, "{e}"),
            Self::Disk(e) => write!(f, "disk: {e}"),
        }
    }
}

impl From<VmxError> for MachineError {
    fn from(e: VmxError) -> Self {
        Self::Vmx(e)
    }
}
