//! Where a virtual disk's blocks live: the `BlockBackend` trait.
//!
//! Why submit + poll rather than plain calls: a RAM disk answers at once, but a backend on
//! the host's own disk (issue 10, later) completes when its controller says so, and the
//! hypervisor is a single polled loop that must never wait for it. So the device submits an
//! operation with a tag and later collects `(tag, result)` pairs; a backend that finishes
//! immediately simply queues its completion. Addresses are in 512-byte sectors, the unit of
//! every virtio-blk request (VIRTIO 1.2 5.2.6) whatever the disk's block size.

use alloc::vec::Vec;
use core::fmt;

/// Bytes per sector in requests and capacities (VIRTIO 1.2 5.2.6).
pub const SECTOR_SIZE: u64 = 512;

/// A run of sectors to discard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectorRange {
    /// First sector.
    pub sector: u64,
    /// Number of sectors (non-zero).
    pub count: u32,
}

/// One operation for a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockOp {
    /// Read `len` bytes (a multiple of 512) from `sector`.
    Read {
        /// First sector.
        sector: u64,
        /// Bytes to read.
        len: u32,
    },
    /// Write `data` (a multiple of 512 bytes) at `sector`.
    Write {
        /// First sector.
        sector: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Make every completed write durable.
    Flush,
    /// The ranges' contents may be dropped (a RAM disk zeroes them).
    Discard {
        /// The ranges.
        ranges: Vec<SectorRange>,
    },
}

/// Why a backend operation failed; the guest sees VIRTIO_BLK_S_IOERR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendError {
    /// The sectors lie (partly) past the end of the disk.
    OutOfRange {
        /// First sector.
        sector: u64,
        /// Bytes.
        len: u64,
    },
    /// A write or discard on a read-only disk.
    ReadOnly,
    /// The host could not allocate a buffer for the operation.
    OutOfMemory,
    /// The backing device reported an error.
    Device,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { sector, len } => {
                write!(
                    f,
                    "{len} bytes at sector {sector} lie past the end of the disk"
                )
            }
            Self::ReadOnly => write!(f, "the disk is read-only"),
            Self::OutOfMemory => write!(f, "out of host memory for the I/O buffer"),
            Self::Device => write!(f, "the backing device reported an I/O error"),
        }
    }
}

/// A finished operation. Reads carry their data; other operations an empty vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCompletion {
    /// The tag passed to [`BlockBackend::submit`].
    pub tag: u64,
    /// The data read, or why the operation failed.
    pub result: Result<Vec<u8>, BackendError>,
}

/// A virtual disk's storage.
pub trait BlockBackend {
    /// Size in 512-byte sectors.
    fn capacity_sectors(&self) -> u64;

    /// Preferred block size in bytes (512 or 4096), reported to the guest as blk_size and
    /// the granularity of the dirty-block bitmap.
    fn block_size(&self) -> u32;

    /// Whether writes and discards are refused.
    fn read_only(&self) -> bool;

    /// Start `op`; its completion carries `tag`. Every submitted operation completes
    /// exactly once.
    fn submit(&mut self, tag: u64, op: BlockOp);

    /// The next finished operation, if any.
    fn poll_completion(&mut self) -> Option<BlockCompletion>;
}
