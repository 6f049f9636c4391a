//! The simulated guest's disk: the heartbeat's disk mode in miniature. Write `w` puts block
//! `w % blocks` with `(block, w)` in its first 16 bytes and a body derived from both, so
//! after `writes` writes every block's content is known (`expected_block`), and the guest
//! checks its whole disk like it checks its memory. The disk marks every write in its
//! dirty-block set, always, as the virtio-blk model does at submission.

use std::string::String;
use std::vec;
use std::vec::Vec;

use migration_proto::dirty::DirtyBitmap;
use migration_proto::message::DiskDescriptor;

/// Block size of the simulated disk.
pub const BLOCK: usize = 512;

fn fill_block(out: &mut [u8], block: u64, seq: u64) {
    out[..8].copy_from_slice(&block.to_le_bytes());
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    out[16..].fill((block ^ seq.wrapping_mul(31)) as u8);
}

/// A RAM disk with a write counter.
pub struct FakeDisk {
    pub bytes: Vec<u8>,
    pub dirty: DirtyBitmap,
    /// Writes so far (travels in the vCPU state, like the heartbeat's `blk=`).
    pub writes: u64,
    /// Block writes per simulated millisecond.
    pub writes_per_ms: u64,
}

impl FakeDisk {
    /// A disk of `blocks` blocks, every block written once already (writes `0..blocks`).
    pub fn new(blocks: usize, writes_per_ms: u64) -> Self {
        let mut disk = FakeDisk {
            bytes: vec![0; blocks * BLOCK],
            dirty: DirtyBitmap::new(blocks),
            writes: 0,
            writes_per_ms,
        };
        for _ in 0..blocks {
            disk.write_next();
        }
        disk.dirty.clear_all();
        disk
    }

    /// A disk received by migration, with the write counter of its guest.
    pub fn received(bytes: Vec<u8>, writes: u64, writes_per_ms: u64) -> Self {
        let blocks = bytes.len() / BLOCK;
        FakeDisk {
            bytes,
            dirty: DirtyBitmap::new(blocks),
            writes,
            writes_per_ms,
        }
    }

    fn blocks(&self) -> u64 {
        (self.bytes.len() / BLOCK) as u64
    }

    /// The guest's next write.
    pub fn write_next(&mut self) {
        let block = self.writes % self.blocks();
        let at = block as usize * BLOCK;
        fill_block(&mut self.bytes[at..at + BLOCK], block, self.writes);
        self.dirty.set(block as usize);
        self.writes += 1;
    }

    /// One simulated millisecond of writes.
    pub fn tick(&mut self) {
        for _ in 0..self.writes_per_ms {
            self.write_next();
        }
    }

    /// The manifest entry.
    pub fn descriptor(&self) -> DiskDescriptor {
        DiskDescriptor {
            disk_id: 0,
            name: "vda".into(),
            size_bytes: self.bytes.len() as u64,
            block_size: BLOCK as u32,
        }
    }

    /// The guest's check of its disk: every block holds its last write.
    pub fn verify(&self) -> Result<(), String> {
        let blocks = self.blocks();
        let mut expected = vec![0u8; BLOCK];
        for (b, block) in self.bytes.chunks(BLOCK).enumerate() {
            let b = b as u64;
            let last = self.writes - 1;
            let seq = last - (last + blocks - b) % blocks;
            fill_block(&mut expected, b, seq);
            if block != expected.as_slice() {
                return Err(std::format!(
                    "CORRUPT disk block {b} (expected write {seq})"
                ));
            }
        }
        Ok(())
    }
}
