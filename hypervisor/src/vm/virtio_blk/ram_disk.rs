//! A disk held in host RAM, seeded from a raw image (issue 10: `[vm NAME] disk =
//! tern/disks/NAME.img` read from the ESP by the loader).
//!
//! Every operation completes at once; the completion is queued for the next
//! [`BlockBackend::poll_completion`] so the device sees the same two-step flow as with a
//! slow disk. Discard zeroes the range, which makes a discarded block's contents defined
//! (VIRTIO 1.2 5.2.6 leaves them unspecified) and cheap to migrate.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

use super::backend::{BackendError, BlockBackend, BlockCompletion, BlockOp, SECTOR_SIZE};

/// Why an image cannot become a RAM disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RamDiskError {
    /// The image is empty.
    Empty,
    /// The block size is neither 512 nor 4096.
    BadBlockSize(u32),
    /// The image length is not a whole number of blocks.
    PartialBlock {
        /// Image length in bytes.
        len: u64,
        /// Block size in bytes.
        block_size: u32,
    },
}

impl fmt::Display for RamDiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the disk image is empty"),
            Self::BadBlockSize(b) => write!(f, "block size {b} is neither 512 nor 4096"),
            Self::PartialBlock { len, block_size } => write!(
                f,
                "the disk image is {len} bytes, not a multiple of the {block_size}-byte block size"
            ),
        }
    }
}

/// A RAM-backed disk.
#[derive(Debug)]
pub struct RamDisk {
    bytes: Vec<u8>,
    block_size: u32,
    read_only: bool,
    done: VecDeque<BlockCompletion>,
}

impl RamDisk {
    /// A disk whose contents are `image` (raw format).
    pub fn from_image(
        image: Vec<u8>,
        block_size: u32,
        read_only: bool,
    ) -> Result<Self, RamDiskError> {
        if block_size != 512 && block_size != 4096 {
            return Err(RamDiskError::BadBlockSize(block_size));
        }
        let len = image.len() as u64;
        if len == 0 {
            return Err(RamDiskError::Empty);
        }
        if !len.is_multiple_of(u64::from(block_size)) {
            return Err(RamDiskError::PartialBlock { len, block_size });
        }
        Ok(Self {
            bytes: image,
            block_size,
            read_only,
            done: VecDeque::new(),
        })
    }

    /// The disk contents.
    pub fn contents(&self) -> &[u8] {
        &self.bytes
    }

    /// Mutable disk contents (storage migration writes received blocks here).
    pub fn contents_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    fn range(&self, sector: u64, len: u64) -> Result<core::ops::Range<usize>, BackendError> {
        let err = BackendError::OutOfRange { sector, len };
        let start = sector.checked_mul(SECTOR_SIZE).ok_or(err)?;
        let end = start.checked_add(len).ok_or(err)?;
        if end > self.bytes.len() as u64 {
            return Err(err);
        }
        // Both fit: they are at most the length of a vector.
        Ok(start as usize..end as usize)
    }

    fn execute(&mut self, op: BlockOp) -> Result<Vec<u8>, BackendError> {
        match op {
            BlockOp::Read { sector, len } => {
                let r = self.range(sector, u64::from(len))?;
                let mut out = Vec::new();
                out.try_reserve_exact(r.len())
                    .map_err(|_| BackendError::OutOfMemory)?;
                out.extend_from_slice(&self.bytes[r]);
                Ok(out)
            }
            BlockOp::Write { sector, data } => {
                if self.read_only {
                    return Err(BackendError::ReadOnly);
                }
                let r = self.range(sector, data.len() as u64)?;
                self.bytes[r].copy_from_slice(&data);
                Ok(Vec::new())
            }
            BlockOp::Flush => Ok(Vec::new()),
            BlockOp::Discard { ranges } => {
                if self.read_only {
                    return Err(BackendError::ReadOnly);
                }
                let checked = ranges
                    .iter()
                    .map(|r| self.range(r.sector, u64::from(r.count) * SECTOR_SIZE))
                    .collect::<Result<Vec<_>, _>>()?;
                for r in checked {
                    self.bytes[r].fill(0);
                }
                Ok(Vec::new())
            }
        }
    }
}

impl BlockBackend for RamDisk {
    fn capacity_sectors(&self) -> u64 {
        self.bytes.len() as u64 / SECTOR_SIZE
    }

    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn submit(&mut self, tag: u64, op: BlockOp) {
        let result = self.execute(op);
        self.done.push_back(BlockCompletion { tag, result });
    }

    fn poll_completion(&mut self) -> Option<BlockCompletion> {
        self.done.pop_front()
    }
}
