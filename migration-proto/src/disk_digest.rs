//! The disk digest (storage migration, docs/migration-protocol.md section 4b): the page
//! digest's method applied to disk blocks, summed per region instead of over the whole disk.
//!
//! Why per region: a disk is large and its failure is local. With one accumulator per
//! region (at least 1 MiB, at most 32768 regions per disk) the destination that finds a
//! mismatch names *where* (disk and byte range), which tells an operator a dropped block
//! from a broken backend apart from a wholesale mix-up, and a future resync could send only
//! that region again. Like the page digest it costs nothing at stop time beyond the blocks
//! of the last round: each side hashes a block when it sends or receives it.
//!
//! `h(disk, lba, block)` is BLAKE3 keyed with the session's page-digest key over the
//! domain tag `tern-disk-block`, the disk id (u32 LE), the block address (u64 LE) and the
//! block's bytes; the first 16 bytes as a little-endian u128. The tag keeps it apart from
//! every page hash (which starts with a page number), the disk id and address bind the
//! content to its place. A region's accumulator is the sum of its blocks' hashes modulo
//! 2^128; a block sent again replaces its hash (`sum += new - old`).
//!
//! What each side also remembers: which blocks arrived (destination: `MissingDiskBlocks`
//! at commit) and which were declared dirty and not sent again (source: refuses to commit).

use alloc::vec::Vec;

use crate::dirty::DirtyBitmap;
use crate::message::DiskDescriptor;
use crate::page_digest::PageDigestKey;

const DOMAIN: &[u8] = b"tern-disk-block";

/// The hash of one disk block.
pub fn block_hash(key: &PageDigestKey, disk_id: u32, lba: u64, block: &[u8]) -> u128 {
    let mut hasher = blake3::Hasher::new_keyed(&key.0);
    hasher.update(DOMAIN);
    hasher.update(&disk_id.to_le_bytes());
    hasher.update(&lba.to_le_bytes());
    hasher.update(block);
    let mut out = [0u8; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    u128::from_le_bytes(out)
}

/// One side's record of one disk: each block's hash as last sent / received, which blocks
/// were covered at least once, and the per-region sums.
pub struct DiskDigestTable {
    key: PageDigestKey,
    disk: DiskDescriptor,
    hashes: Vec<u128>,
    covered: DirtyBitmap,
    covered_count: u64,
    regions: Vec<u128>,
    blocks_per_region: u64,
}

impl DiskDigestTable {
    /// An empty table for `disk`, or `None` when its memory (16 bytes a block) cannot be had.
    pub fn try_new(key: PageDigestKey, disk: &DiskDescriptor) -> Option<Self> {
        let blocks = usize::try_from(disk.blocks()).ok()?;
        let mut hashes = Vec::new();
        hashes.try_reserve_exact(blocks).ok()?;
        hashes.resize(blocks, 0);
        let mut words = Vec::new();
        words.try_reserve_exact(blocks.div_ceil(64)).ok()?;
        words.resize(blocks.div_ceil(64), 0);
        let mut regions = Vec::new();
        regions.try_reserve_exact(disk.regions()).ok()?;
        regions.resize(disk.regions(), 0);
        Some(DiskDigestTable {
            key,
            disk: disk.clone(),
            hashes,
            covered: DirtyBitmap::from_words(words, blocks),
            covered_count: 0,
            regions,
            blocks_per_region: u64::from(disk.region_bytes()) / u64::from(disk.block_size),
        })
    }

    /// Host memory the table of `disk` takes, for messages.
    pub fn bytes_for(disk: &DiskDescriptor) -> u64 {
        disk.blocks() * 16 + disk.blocks().div_ceil(64) * 8 + disk.regions() as u64 * 16
    }

    /// The disk.
    pub fn disk(&self) -> &DiskDescriptor {
        &self.disk
    }

    /// Records a run of whole blocks from `first_lba` (the caller checked the range).
    pub fn record_run(&mut self, first_lba: u64, data: &[u8]) {
        let bs = self.disk.block_size as usize;
        for (i, block) in data.chunks_exact(bs).enumerate() {
            let lba = first_lba + i as u64;
            let Some(slot) = usize::try_from(lba)
                .ok()
                .and_then(|b| self.hashes.get_mut(b))
            else {
                return;
            };
            let new = block_hash(&self.key, self.disk.disk_id, lba, block);
            let region = (lba / self.blocks_per_region) as usize;
            if let Some(sum) = self.regions.get_mut(region) {
                *sum = sum.wrapping_sub(*slot).wrapping_add(new);
            }
            *slot = new;
            let b = lba as usize;
            if !self.covered.is_set(b) {
                self.covered.set(b);
                self.covered_count += 1;
            }
        }
    }

    /// Blocks recorded at least once.
    pub fn covered(&self) -> u64 {
        self.covered_count
    }

    /// The first block never recorded, if any.
    pub fn first_uncovered(&self) -> Option<u64> {
        if self.covered_count == self.disk.blocks() {
            return None;
        }
        (0..self.hashes.len())
            .find(|&b| !self.covered.is_set(b))
            .map(|b| b as u64)
    }

    /// The per-region accumulators.
    pub fn regions(&self) -> &[u128] {
        &self.regions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn disk(size_bytes: u64) -> DiskDescriptor {
        DiskDescriptor {
            disk_id: 0,
            name: "vda".to_string(),
            size_bytes,
            block_size: 512,
        }
    }

    fn table(size: u64) -> DiskDigestTable {
        DiskDigestTable::try_new(PageDigestKey([7; 32]), &disk(size)).expect("memory")
    }

    #[test]
    fn region_size_grows_with_the_disk() {
        assert_eq!(disk(1 << 20).region_bytes(), 1 << 20);
        assert_eq!(disk(16 << 20).regions(), 16);
        assert_eq!(disk(64 << 30).region_bytes(), 2 << 20);
        assert_eq!(disk(64 << 30).regions(), 32768);
        assert_eq!(disk(1536).regions(), 1);
    }

    #[test]
    fn order_does_not_matter_and_last_copy_wins() {
        let (mut a, mut b) = (table(4 << 20), table(4 << 20));
        a.record_run(0, &[1; 1024]);
        a.record_run(0, &[2; 512]);
        b.record_run(1, &[1; 512]);
        b.record_run(0, &[2; 512]);
        assert_eq!(a.regions(), b.regions());
        assert_eq!(a.covered(), 2);
        assert_eq!(a.first_uncovered(), Some(2));
    }

    #[test]
    fn a_difference_shows_in_its_region_only() {
        let size = 3 << 20;
        let (mut a, mut b) = (table(size), table(size));
        let blocks = size / 512;
        let data = vec![9u8; size as usize];
        a.record_run(0, &data);
        b.record_run(0, &data);
        assert_eq!(a.first_uncovered(), None);
        // A stale block in region 1 (blocks 2048..4096).
        b.record_run(3000, &[8; 512]);
        let differing: Vec<usize> = (0..3)
            .filter(|&r| a.regions()[r] != b.regions()[r])
            .collect();
        assert_eq!(differing, vec![1]);
        assert_eq!(blocks, 6144);
    }

    #[test]
    fn the_block_address_and_disk_are_in_the_hash() {
        let key = PageDigestKey([1; 32]);
        let block = [5u8; 512];
        let h = block_hash(&key, 0, 10, &block);
        assert_ne!(h, block_hash(&key, 0, 11, &block));
        assert_ne!(h, block_hash(&key, 1, 10, &block));
        assert_ne!(h, block_hash(&PageDigestKey([2; 32]), 0, 10, &block));
    }
}
