//! Everything a driver can get wrong in a split virtqueue, one variant per rule.
//!
//! Each variant is a driver bug (or a hostile guest): the device stops using the queue and
//! reports DEVICE_NEEDS_RESET (VIRTIO 1.2 2.1.2) with the message below as its one log
//! line. None of them is a hypervisor error.

use core::fmt;

use super::guest_memory::GuestMemoryError;

/// A malformed split virtqueue or descriptor chain (VIRTIO 1.2 2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The queue size is zero, not a power of two or above the device's maximum (2.7).
    BadQueueSize {
        /// The size the driver wrote.
        size: u16,
        /// The device's QueueNumMax.
        max: u16,
    },
    /// A ring or table is not aligned as 2.7 requires (descriptors 16, available 2, used 4).
    Misaligned {
        /// Which part of the queue.
        what: &'static str,
        /// Its guest-physical address.
        gpa: u64,
        /// The alignment it needs.
        align: u64,
    },
    /// Reading or writing a ring, a descriptor or a buffer reached outside guest RAM.
    OutsideRam {
        /// What was being accessed.
        what: &'static str,
        /// The failed access.
        access: GuestMemoryError,
    },
    /// The available index moved ahead of the device by more than the queue size.
    AvailIndexJump {
        /// The device's last seen available index.
        last_seen: u16,
        /// The driver's available index.
        avail_idx: u16,
        /// Queue size.
        size: u16,
    },
    /// A head or `next` index is not below the queue (or indirect table) size.
    IndexOutOfRange {
        /// The index.
        index: u16,
        /// The number of descriptors in the table it indexes.
        size: u32,
    },
    /// A chain visits more descriptors than its table holds: a loop (2.7.5.2).
    ChainLoop {
        /// The chain's head.
        head: u16,
        /// Descriptors visited before giving up.
        limit: u32,
    },
    /// A descriptor of length zero.
    ZeroLength {
        /// The descriptor's index.
        index: u16,
    },
    /// A device-readable descriptor after a device-writable one (2.7.4.2).
    ReadableAfterWritable {
        /// The descriptor's index.
        index: u16,
    },
    /// An indirect descriptor although VIRTIO_F_INDIRECT_DESC was not negotiated (2.7.5.3).
    IndirectNotNegotiated {
        /// The descriptor's index.
        index: u16,
    },
    /// An indirect descriptor with NEXT set, or inside an indirect table (2.7.5.3.1).
    BadIndirect {
        /// The descriptor's index.
        index: u16,
    },
    /// An indirect table whose length is zero, not a multiple of 16 or too long.
    BadIndirectLength {
        /// The length in bytes.
        len: u32,
    },
    /// A buffer's address plus length overflows 64 bits.
    AddressOverflow {
        /// The descriptor's index.
        index: u16,
    },
    /// The device had to use a queue whose size is zero (disabled and emptied by the
    /// driver while requests were in flight).
    NoQueue,
    /// The same head is made available again before the device used it.
    HeadInFlight {
        /// The head index.
        head: u16,
    },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadQueueSize { size, max } => {
                write!(f, "queue size {size} is not a power of two in 1..={max}")
            }
            Self::Misaligned { what, gpa, align } => {
                write!(f, "{what} at {gpa:#x} is not {align}-byte aligned")
            }
            Self::OutsideRam { what, access } => write!(f, "{what}: {access}"),
            Self::AvailIndexJump {
                last_seen,
                avail_idx,
                size,
            } => write!(
                f,
                "available index jumped from {last_seen} to {avail_idx}, more than the queue size {size}"
            ),
            Self::IndexOutOfRange { index, size } => {
                write!(f, "descriptor index {index} is outside a table of {size}")
            }
            Self::ChainLoop { head, limit } => write!(
                f,
                "descriptor chain from head {head} is longer than {limit} descriptors (a loop)"
            ),
            Self::ZeroLength { index } => write!(f, "descriptor {index} has length zero"),
            Self::ReadableAfterWritable { index } => write!(
                f,
                "descriptor {index} is device-readable but follows a device-writable one"
            ),
            Self::IndirectNotNegotiated { index } => write!(
                f,
                "descriptor {index} is indirect but VIRTIO_F_INDIRECT_DESC was not negotiated"
            ),
            Self::BadIndirect { index } => write!(
                f,
                "descriptor {index} is indirect together with NEXT or inside an indirect table"
            ),
            Self::BadIndirectLength { len } => write!(
                f,
                "indirect table length {len} is zero, not a multiple of 16 or too long"
            ),
            Self::AddressOverflow { index } => {
                write!(f, "descriptor {index} address plus length overflows")
            }
            Self::NoQueue => write!(
                f,
                "the queue has size zero (the driver disabled and cleared it)"
            ),
            Self::HeadInFlight { head } => write!(
                f,
                "head {head} was made available again while the device still owns it"
            ),
        }
    }
}
