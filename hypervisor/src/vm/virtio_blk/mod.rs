//! virtio-blk: the guest's disks (VIRTIO 1.2 5.2), on the virtio-mmio transport.
//!
//! Why a pure state machine: a disk is where a guest hands the hypervisor the most
//! pointers (every request is a descriptor chain into guest RAM) and where a migrating VM
//! has the most state in motion (requests in flight). Here all of it is host-tested: a
//! fake guest driver sets up queues in a fake RAM and drives the real transport registers,
//! malformed chains of every kind end in DEVICE_NEEDS_RESET with one log line, and the
//! state saves and restores mid-request. Wiring to VM exits (an EPT-unmapped MMIO window)
//! and to the migration stream: `vm::machine::disk`, `migration::source::disks`.
//!
//! Map: `config` (feature bits, limits, config space 5.2.4), `request` (framing a chain
//! into header/data/status, 5.2.6), `in_flight` (which requests reach the backend, and
//! what one looks like while it is there), `blk_device` (the `VirtioDevice`: notify,
//! complete, reset) + `guest_io` (data in and out of guest buffers), `backend` +
//! `ram_disk` (storage behind a submit/poll trait), `dirty_blocks` (blocks written since
//! the last harvest, for storage migration), `state` (save/restore and its encoding).

pub mod backend;
pub mod blk_device;
pub mod config;
pub mod dirty_blocks;
pub mod guest_io;
pub mod in_flight;
pub mod info;
pub mod placement;
pub mod ram_disk;
pub mod request;
pub mod state;

#[cfg(test)]
mod tests;

pub use backend::{BackendError, BlockBackend, BlockCompletion, BlockOp, SECTOR_SIZE};
pub use blk_device::{BlkError, VirtioBlk};
pub use ram_disk::{RamDisk, RamDiskError};
pub use state::{BlkState, RestoreError};

/// A virtio-blk device on the virtio-mmio transport.
pub type VirtioBlkMmio<B> = crate::vm::virtio::mmio::VirtioMmio<VirtioBlk<B>>;
