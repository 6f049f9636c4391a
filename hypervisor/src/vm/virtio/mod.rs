//! Transport-neutral virtio machinery (VIRTIO 1.2) and the virtio-mmio transport.
//!
//! Why it is separate from any device type: the split virtqueue (2.7), device status and
//! feature negotiation (2.1, 2.2, 3.1) are the same for block and network devices, and they
//! are where a hostile guest has the most room to lie (descriptor chains, ring indices).
//! Everything here is a pure state machine over a [`guest_memory::GuestMemory`] trait, so
//! it is host-tested with a fake RAM, compiles `no_std`, and knows nothing of VMX.
//!
//! Map: `guest_memory` (the RAM seam) + `guest_ram_memory` (it over a VM's `GuestRam`), `split_queue` (ring indices, available/used rings),
//! `descriptor_chain` (chain walking with every check), `queue_error` (one variant per
//! driver mistake), `device` (what a transport needs from a device type; status, feature
//! and interrupt bits), `mmio` + `mmio_layout` + `mmio_state` (the virtio-mmio v2 register front-end and
//! its migration encoding). The block device is `vm::virtio_blk`.

pub mod descriptor_chain;
pub mod device;
pub mod guest_memory;
pub mod guest_ram_memory;
pub mod mmio;
pub mod mmio_layout;
pub mod mmio_state;
pub mod mmio_window;
pub mod queue_error;
pub mod split_queue;
