//! Filling a VMCS: control settings computed from the capability MSRs, the guest state of a
//! PVH entry, and the host state — all written through [`VmcsAccess`](super::vmcs::VmcsAccess)
//! so that the bare-metal code only gathers register values and the rules themselves are
//! tested on the host against a fake VMCS.

pub mod controls;
pub mod cr;
pub mod guest;
pub mod host;

pub use controls::{CapabilityMsrs, ControlAddresses, VmxConfig, write_controls};
pub use guest::write_pvh_guest_state;
pub use host::{HostState, tss_base, write_host_state};

#[cfg(test)]
mod tests;
