//! Which blocks of a virtual disk the guest changed: the input of live storage migration.
//!
//! The device marks every block a write or discard touches at the moment it submits the
//! operation (before it completes, so a block is never missed), at the disk's block size.
//! Storage migration harvests the set per round exactly like memory pre-copy does with
//! dirty pages, which is why it reuses `migration_proto::dirty::DirtyBitmap` (bits are
//! blocks here instead of pages) and its run iterator for `DiskBlocks` messages.

use migration_proto::dirty::DirtyBitmap;

use super::backend::SECTOR_SIZE;

/// One bit per disk block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyBlocks {
    bitmap: DirtyBitmap,
    block_size: u32,
}

impl DirtyBlocks {
    /// All clean, for a disk of `capacity_sectors` with `block_size`-byte blocks.
    pub fn new(capacity_sectors: u64, block_size: u32) -> Self {
        let bytes = capacity_sectors.saturating_mul(SECTOR_SIZE);
        let blocks = bytes.div_ceil(u64::from(block_size.max(1)));
        Self {
            bitmap: DirtyBitmap::new(usize::try_from(blocks).unwrap_or(usize::MAX)),
            block_size: block_size.max(1),
        }
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Mark every block overlapping `bytes` bytes from `sector` (clamped to the disk).
    pub fn mark(&mut self, sector: u64, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let bs = u64::from(self.block_size);
        let start = sector.saturating_mul(SECTOR_SIZE);
        let end = start.saturating_add(bytes);
        let first = start / bs;
        let last = (end - 1) / bs;
        let blocks = self.bitmap.len() as u64;
        for block in first..=last.min(blocks.saturating_sub(1)) {
            self.bitmap.set(block as usize);
        }
    }

    /// The current set.
    pub fn bitmap(&self) -> &DirtyBitmap {
        &self.bitmap
    }

    /// Take the set, leaving every block clean (one storage pre-copy round).
    pub fn take(&mut self) -> DirtyBitmap {
        self.bitmap.take()
    }
}
