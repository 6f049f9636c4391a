//! What a transport needs from a virtio device type, and the bits every device shares.
//!
//! Why the split: the transport (virtio-mmio today, virtio-pci later) owns the generic
//! machinery of VIRTIO 1.2 chapter 2 and 3 (device status, feature negotiation, queue
//! configuration, interrupts); the device type (block, later net) owns its config space and
//! what a request in its queues means (chapter 5). A device never sees transport registers
//! and a transport never parses a request.

use core::fmt;

use super::guest_memory::GuestMemory;
use super::split_queue::SplitQueue;

/// Device status bits (VIRTIO 1.2 2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u8 = 2;
    /// The driver is set up and ready to drive the device.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// Set by the device: it hit an error and needs a reset (2.1.2).
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    /// Set by the driver: it gave up on the device.
    pub const FAILED: u8 = 128;
    /// Bits a driver may write.
    pub const DRIVER_BITS: u8 = ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK | FAILED;
}

/// Reserved feature bits shared by all device types (VIRTIO 1.2 6).
pub mod feature {
    /// Indirect descriptors (2.7.5.3).
    pub const INDIRECT_DESC: u64 = 1 << 28;
    /// `used_event` / `avail_event` notification suppression (2.7.10); not offered.
    pub const EVENT_IDX: u64 = 1 << 29;
    /// Compliance with VIRTIO 1.x rather than legacy; mandatory here.
    pub const VERSION_1: u64 = 1 << 32;
}

/// Interrupt status bits (VIRTIO 1.2 4.2.2, InterruptStatus).
pub mod interrupt {
    /// The device used a buffer in at least one queue.
    pub const USED_BUFFER: u32 = 1;
    /// The configuration (or DEVICE_NEEDS_RESET) changed.
    pub const CONFIG_CHANGE: u32 = 2;
}

/// A virtio device type behind a transport.
pub trait VirtioDevice {
    /// A fatal driver error: the transport logs it and sets DEVICE_NEEDS_RESET.
    type Error: fmt::Display;

    /// Virtio device ID (VIRTIO 1.2 5: 2 = block).
    fn device_id(&self) -> u32;

    /// Features the device offers (VERSION_1 among them).
    fn device_features(&self) -> u64;

    /// Number of virtqueues.
    fn queue_count(&self) -> usize;

    /// Largest queue size the device accepts (QueueNumMax), a power of two.
    fn queue_size_max(&self) -> u16;

    /// Read device config space at `offset` into `data` (bytes past the end read as 0).
    fn read_config(&self, offset: u64, data: &mut [u8]);

    /// A driver write to device config space (ignored where read-only).
    fn write_config(&mut self, offset: u64, data: &[u8]);

    /// The driver notified queue `index`: take and start what it made available.
    /// `driver_features` is the negotiated set. Returns whether a buffer was used in a
    /// queue whose driver wants an interrupt for it.
    fn queue_notify(
        &mut self,
        index: usize,
        driver_features: u64,
        queues: &mut [SplitQueue],
        mem: &mut impl GuestMemory,
    ) -> Result<bool, Self::Error>;

    /// Finish whatever completed since the last call (polled completion). Same return
    /// value as [`Self::queue_notify`].
    fn poll(
        &mut self,
        driver_features: u64,
        queues: &mut [SplitQueue],
        mem: &mut impl GuestMemory,
    ) -> Result<bool, Self::Error>;

    /// Device reset: forget every request; nothing may be written to guest memory
    /// afterwards for requests taken before it (2.1: reset of the device status).
    fn reset(&mut self);
}
