//! The host's own storage: a driver for a disk controller and the backends carved from it.
//!
//! Why here and not under `vm`: the disk belongs to the host, not to any VM. One physical
//! disk is shared by several VMs, each owning a region of it (`host_disk`); a VM's
//! virtio-blk device sees its region through the same `BlockBackend` trait as a RAM disk,
//! so that its writes survive a host reboot. The controller is ATA in PIO mode (`ata`):
//! the one Bochs, our VT-x platform, offers; docs/ARCHITECTURE.md ("Host disk") says what
//! real servers need instead (AHCI, NVMe) and why.

pub mod ata;
pub mod host_disk;
pub mod mirror;
#[cfg(test)]
mod mirror_tests;
pub mod region;
pub mod vm_disk;

pub use vm_disk::{DynAtaPorts, HostDisk, VmDisk};
