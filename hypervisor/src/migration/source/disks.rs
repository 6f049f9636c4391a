//! Storage migration on the source (`migrate -b`): each disk's blocks go in the same
//! rounds as memory (docs/migration-protocol.md section 4b).
//!
//! ```text
//! accepted: harvest (clears the disk's dirty set), bulk bitmap = every block
//! each round: pages of the round, then the disk blocks of the round; at the round's end
//!             harvest pages *and* blocks, declare both to the session, count dirty blocks
//!             as bytes to send in the stop phase (the switch-over decision sees them)
//! switch-over: VM paused, last harvest of both, final round sends both
//! ```
//!
//! Why interleaved this way and not a separate disk pass first: the disk converges with
//! memory (one decision, one downtime), and a guest that writes its disk as fast as its
//! memory gets the same throttle.

use alloc::format;
use alloc::vec::Vec;

use migration_proto::dirty::DirtyBitmap;
use migration_proto::message::{DiskBlocks, DiskDescriptor, MAX_DISK_RUN_LEN};
use migration_proto::session::Instant;

use super::{MigratableVm, SourceEngine, SourceError, SourceStep};
use crate::migration::params::FaultInjection;

/// One disk's copy state.
pub(super) struct DiskCopy {
    pub(super) disk: DiskDescriptor,
    /// Blocks to send this round, and where the sweep is.
    pub(super) bitmap: DirtyBitmap,
    pub(super) next_lba: usize,
    /// Blocks sent over the whole migration (`info migrate`).
    pub(super) blocks_sent: u64,
}

impl DiskCopy {
    pub(super) fn new(disk: DiskDescriptor) -> Self {
        let blocks = usize::try_from(disk.blocks()).unwrap_or(0);
        DiskCopy {
            disk,
            bitmap: DirtyBitmap::new(blocks),
            next_lba: 0,
            blocks_sent: 0,
        }
    }

    /// Bytes still to send this round.
    pub(super) fn remaining_bytes(&self) -> u64 {
        self.bitmap.iter_set_from(self.next_lba).count() as u64 * u64::from(self.disk.block_size)
    }
}

impl SourceEngine {
    /// The bulk pass: every block of every disk, starting with a clean dirty set.
    pub(super) fn start_disks(&mut self, vm: &mut impl MigratableVm) -> Result<(), SourceError> {
        for copy in &mut self.disks {
            vm.harvest_disk_dirty(copy.disk.disk_id)?;
            let blocks = copy.bitmap.len();
            copy.bitmap = DirtyBitmap::all_dirty(blocks);
            copy.next_lba = 0;
            self.lines.push_back(format!(
                "migrate: copying disk {} ({} KiB, {}-byte blocks) with memory",
                copy.disk.name,
                copy.disk.size_bytes / 1024,
                copy.disk.block_size
            ));
        }
        Ok(())
    }

    /// Sends the round's disk blocks while the session has room. `Ok(true)` once every
    /// disk's bitmap is done.
    pub(super) fn send_disk_blocks(
        &mut self,
        vm: &mut impl MigratableVm,
        now: Instant,
    ) -> Result<bool, SourceError> {
        for i in 0..self.disks.len() {
            loop {
                let copy = &mut self.disks[i];
                let bs = copy.disk.block_size as usize;
                let Some((lba, count)) = copy
                    .bitmap
                    .runs_from(copy.next_lba, MAX_DISK_RUN_LEN / bs)
                    .next()
                else {
                    break;
                };
                if !self.session.can_send_pages() {
                    return Ok(false);
                }
                let mut data = Vec::new();
                data.try_reserve_exact(count * bs).map_err(|_| {
                    SourceError::Vm(crate::migration::vm_error::VmError::Disk(format!(
                        "out of heap for a {} KiB run of blocks",
                        count * bs / 1024
                    )))
                })?;
                data.resize(count * bs, 0);
                vm.read_disk(copy.disk.disk_id, lba as u64, &mut data)?;
                let blocks = DiskBlocks {
                    disk_id: copy.disk.disk_id,
                    first_lba: lba as u64,
                    block_size: copy.disk.block_size,
                    data,
                };
                copy.next_lba = lba + count;
                copy.blocks_sent += count as u64;
                if self.params.fault_inject == FaultInjection::DropDiskBlock && !self.fault_injected
                {
                    self.session.drop_next_disk_run_for_testing();
                    self.fault_injected = true;
                }
                self.session
                    .send_disk_blocks(&blocks, now)
                    .map_err(SourceStep::DiskBlocks.refused())?;
            }
        }
        Ok(true)
    }

    /// The end of a round: each disk's blocks written during it, declared to the session
    /// and queued for the next round. Returns the dirty bytes (for the decision).
    pub(super) fn harvest_disks(
        &mut self,
        vm: &mut impl MigratableVm,
        also_pending: bool,
    ) -> Result<u64, SourceError> {
        let mut bytes = 0;
        for copy in &mut self.disks {
            let mut dirty = vm.harvest_disk_dirty(copy.disk.disk_id)?;
            if also_pending {
                // The switch-over harvest adds to the one taken at the round's end.
                dirty.merge(&copy.bitmap);
            }
            self.session
                .mark_disk_dirty(copy.disk.disk_id, &dirty)
                .map_err(SourceStep::DirtyPages.refused())?;
            bytes += dirty.count() as u64 * u64::from(copy.disk.block_size);
            copy.bitmap = dirty;
            copy.next_lba = 0;
        }
        Ok(bytes)
    }

    /// `info migrate`'s disk part: `vda 1024/2048 blocks sent, 12 KiB left this round`.
    pub fn disk_progress(&self) -> Vec<alloc::string::String> {
        self.disks
            .iter()
            .map(|c| {
                format!(
                    "disk {}: {} blocks sent ({} blocks on the disk), {} KiB left this round",
                    c.disk.name,
                    c.blocks_sent,
                    c.disk.blocks(),
                    c.remaining_bytes() / 1024
                )
            })
            .collect()
    }
}
