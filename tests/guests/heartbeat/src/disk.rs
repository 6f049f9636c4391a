//! The disk mode (`hb.disk=1`): numbered, self-checking blocks written in a loop over the
//! first `hb.disk_blocks` sectors, each read back at once, and the oldest block read back
//! too, so that a block lost or left stale by a storage migration is seen within one
//! cycle of writes. A mismatch prints `CORRUPT disk ...` and the block is rewritten.
//!
//! A disk that already holds heartbeat blocks (a host-disk backend after a host reboot)
//! is resumed: the highest intact sequence gives the write count, every block is checked
//! against it (`HB-DISK-RESUME writes=N verified=K`, `CORRUPT` for any that disagrees),
//! and the writes continue from there, so persistence is proven by the guest itself.

use heartbeat::disk_block::{self, BLOCK_BYTES, expected_sequence};
use heartbeat::params::Params;
use heartbeat::virtio_mmio_param;

use crate::say;
use crate::virtio_blk::VirtioBlk;

/// The disk workload's state.
pub struct DiskWorkload {
    dev: VirtioBlk,
    blocks: u64,
    /// Writes done so far: the `blk=` of the beat line; write `w` has sequence `w`.
    pub writes: u64,
    /// Mismatches seen so far.
    pub corrupt: u64,
    writes_per_sec: u64,
    /// Writes the rate allowed so far (the target `writes` catches up with).
    credited: u64,
}

impl DiskWorkload {
    /// Find the device on the command line and initialise it; `None` (with an
    /// `HB-DISK-ERROR` line) when there is no usable disk.
    pub fn start(params: &Params, cmdline: &str) -> Option<Self> {
        let Some(device) = virtio_mmio_param::find(cmdline) else {
            say!("HB-DISK-ERROR hb.disk=1 but no virtio_mmio.device= on the command line");
            return None;
        };
        let dev = match VirtioBlk::init(device) {
            Ok(dev) => dev,
            Err(e) => {
                say!("HB-DISK-ERROR virtio-blk at {:#x}: {e}", device.base);
                return None;
            }
        };
        let blocks = params.disk_blocks.min(dev.capacity);
        say!(
            "HB-DISK base={:#x} irq={} capacity_sectors={} blocks={blocks} writes_per_sec={}",
            device.base,
            device.irq,
            dev.capacity,
            params.disk_writes_per_sec
        );
        if blocks == 0 {
            say!("HB-DISK-ERROR the disk has no sectors");
            return None;
        }
        let mut workload = Self {
            dev,
            blocks,
            writes: 0,
            corrupt: 0,
            writes_per_sec: params.disk_writes_per_sec,
            credited: 0,
        };
        if !workload.resume() {
            return None;
        }
        Some(workload)
    }

    /// Continue after the blocks a previous run left, if any; `false` when the device
    /// failed.
    fn resume(&mut self) -> bool {
        let mut newest = None;
        let mut buf = [0u8; BLOCK_BYTES];
        for b in 0..self.blocks {
            if let Err(e) = self.dev.read(b, &mut buf) {
                say!("HB-DISK-ERROR read of block {b}: {e}");
                return false;
            }
            if let Some(seq) = disk_block::sequence_of(&buf, b) {
                newest = newest.max(Some(seq));
            }
        }
        let Some(newest) = newest else {
            return true;
        };
        self.writes = newest.saturating_add(1);
        let corrupt_before = self.corrupt;
        for b in 0..self.blocks {
            if !self.verify(b) {
                return false;
            }
        }
        let checked = (0..self.blocks)
            .filter(|&b| expected_sequence(b, self.writes, self.blocks).is_some())
            .count() as u64;
        say!(
            "HB-DISK-RESUME writes={} verified={}",
            self.writes,
            checked - (self.corrupt - corrupt_before).min(checked)
        );
        true
    }

    /// Do the writes due after `elapsed_ticks` of a `tsc_hz` clock (at most a few per call,
    /// so the working set and the beats keep their turn).
    pub fn step(&mut self, elapsed_ticks: u64, tsc_hz: u128) {
        let target = u64::try_from(
            u128::from(elapsed_ticks) * u128::from(self.writes_per_sec) / tsc_hz.max(1),
        )
        .unwrap_or(u64::MAX);
        let due = target.saturating_sub(self.credited).min(4);
        self.credited = self
            .credited
            .max(target.saturating_sub(4))
            .saturating_add(due);
        for _ in 0..due {
            if !self.write_and_verify() {
                return;
            }
        }
    }

    /// One write (block `writes % blocks`, sequence `writes`), its read-back, and the read
    /// of the block written longest ago. `false` when the device failed.
    fn write_and_verify(&mut self) -> bool {
        let seq = self.writes;
        let block = seq % self.blocks;
        if let Err(e) = self.dev.write(block, &disk_block::encode(block, seq)) {
            say!("HB-DISK-ERROR write of block {block} (seq {seq}): {e}");
            return false;
        }
        self.writes += 1;
        let oldest = self.writes % self.blocks;
        for b in [block, oldest] {
            if !self.verify(b) {
                return false;
            }
        }
        true
    }

    /// Read block `b` and check it against the last write to it; `false` when the device
    /// failed (a mismatch is reported and repaired, and is not a device failure).
    fn verify(&mut self, b: u64) -> bool {
        let Some(expected) = expected_sequence(b, self.writes, self.blocks) else {
            return true;
        };
        let mut buf = [0u8; BLOCK_BYTES];
        if let Err(e) = self.dev.read(b, &mut buf) {
            say!("HB-DISK-ERROR read of block {b}: {e}");
            return false;
        }
        if let Err(m) = disk_block::check(&buf, b, expected) {
            self.corrupt += 1;
            let found = match m {
                disk_block::BlockMismatch::WrongBlock { found }
                | disk_block::BlockMismatch::WrongSequence { found } => found,
                _ => 0,
            };
            say!(
                "CORRUPT disk block={b} expected_seq={expected} reason={} found={found} writes={}",
                m.name(),
                self.writes
            );
            if let Err(e) = self.dev.write(b, &disk_block::encode(b, expected)) {
                say!("HB-DISK-ERROR repair of block {b}: {e}");
                return false;
            }
        }
        true
    }
}
