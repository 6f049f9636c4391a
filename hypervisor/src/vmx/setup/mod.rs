//! Filling a VMCS: control settings computed from the capability MSRs, the guest state of a
//! PVH entry, and the host state — all written through [`VmcsAccess`](super::vmcs::VmcsAccess)
//! so that the bare-metal code only gathers register values and the rules themselves are
//! tested on the host against a fake VMCS.

pub mod controls;
pub mod cr;
pub mod guest;
pub mod guest_long_mode;
pub mod host;

pub use controls::{CapabilityMsrs, ControlAddresses, VmxConfig, write_controls};
pub use guest::write_pvh_guest_state;
pub use guest_long_mode::write_linux64_guest_state;

use crate::vm::linux_boot::Entry64;
use crate::vmx::error::VmxError;
use crate::vmx::regs::GuestRegisters;
use crate::vmx::vmcs::VmcsAccess;

/// How a fresh vCPU enters its guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestEntry {
    /// PVH: 32-bit protected mode at `entry`, EBX = `start_info`.
    Pvh {
        /// Entry point.
        entry: u32,
        /// `hvm_start_info` address.
        start_info: u32,
    },
    /// The Linux boot protocol's 64-bit entry.
    Linux64(Entry64),
}

/// Write the guest state of `entry` (and the matching registers into `regs`).
pub fn write_guest_entry_state(
    vmcs: &mut impl VmcsAccess,
    cfg: &VmxConfig,
    entry: &GuestEntry,
    regs: &mut GuestRegisters,
) -> Result<(), VmxError> {
    match entry {
        GuestEntry::Pvh { entry, start_info } => {
            write_pvh_guest_state(vmcs, cfg, *entry, *start_info, regs)
        }
        GuestEntry::Linux64(e) => write_linux64_guest_state(vmcs, cfg, e, regs),
    }
}
pub use host::{HostState, tss_base, write_host_state};

#[cfg(test)]
mod tests;

/// Capability values for host tests, shaped like Bochs' `tigerlake` model: default1 bits
/// forced, everything else allowed, TRUE_ MSRs present.
#[cfg(test)]
pub(crate) mod testing {
    use super::CapabilityMsrs;

    pub(crate) fn bochs_like_msrs() -> CapabilityMsrs {
        CapabilityMsrs {
            basic: 1 | (4096 << 32) | (6 << 50) | (1 << 55),
            pin: (0xffff_ffff << 32) | 0x16,
            primary: (0xffff_ffff << 32) | 0x0401_e172,
            secondary: 0xffff_ffff << 32,
            exit: (0xffff_ffff << 32) | 0x0003_6dff,
            entry: (0xffff_ffff << 32) | 0x0000_11ff,
            misc: 5,
            cr0_fixed0: 0x8000_0021,
            cr0_fixed1: 0xffff_ffff,
            cr4_fixed0: 0x2000,
            cr4_fixed1: 0x37_27ff,
            ept_vpid: (1 << 6)
                | (1 << 14)
                | (1 << 20)
                | (1 << 21)
                | (1 << 25)
                | (1 << 32)
                | (1 << 41),
        }
    }
}
