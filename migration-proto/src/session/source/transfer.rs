//! The source's transfer API: what the caller sends between `Accepted` and `commit`.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::digest::Digest;
use crate::dirty::DirtyBitmap;
use crate::message::{
    DeviceState, DiskBlocks, DiskDigestMessage, MemoryDigestMessage, Message, PageDigestMessage,
    Progress, RoundStats, VcpuState,
};
use crate::negotiation::Capabilities;
use crate::page_codec::PageCounts;
use crate::wire::PAGE_SIZE;

use super::{RoundTally, SourceSession};
use crate::session::{Instant, SourceState, UsageError};

impl SourceSession {
    fn require(&self, operation: &'static str, state: SourceState) -> Result<(), UsageError> {
        if self.state == state {
            Ok(())
        } else {
            Err(UsageError::WrongState {
                operation,
                state: self.state.name(),
            })
        }
    }

    fn require_room(&self) -> Result<(), UsageError> {
        if self.link.buffered_output() >= self.config.output_limit {
            Err(UsageError::OutputFull)
        } else {
            Ok(())
        }
    }

    /// Sends a run of consecutive pages (at most `MAX_PAGES_PER_FRAME`) read from guest
    /// memory at `first_gpa`. Encoded straight into the output buffer. In version 3 each
    /// page's hash is recorded for the page digest, and the pages stop being stale.
    pub fn send_pages(
        &mut self,
        first_gpa: u64,
        data: &[u8],
        now: Instant,
    ) -> Result<PageCounts, UsageError> {
        self.require("send pages", SourceState::Transferring)?;
        self.require_room()?;
        let end = first_gpa.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > self.config.identity.memory_bytes) {
            return Err(UsageError::OutOfRange);
        }
        let corrupted;
        let on_wire = if self.corrupt_next_run {
            // Testing only: a bug between reading guest memory and the wire, which the frame
            // MAC cannot see (it covers what was encoded) and the page digest must.
            let mut copy = Vec::from(data);
            if let Some(byte) = copy.last_mut() {
                *byte ^= 0xa5;
            }
            corrupted = copy;
            &corrupted[..]
        } else {
            data
        };
        let (counts, payload) = self
            .link
            .send_pages(first_gpa, on_wire, self.delta_cache.as_mut(), now)
            .map_err(UsageError::PageRun)?;
        self.corrupt_next_run = false;
        let first_pfn = (first_gpa / PAGE_SIZE as u64) as usize;
        if let Some(table) = self.page_digest.as_mut() {
            table.record_run(first_pfn, data);
        }
        for pfn in first_pfn..first_pfn + data.len() / PAGE_SIZE {
            self.stale.clear(pfn);
        }
        self.tally.counts.add(counts);
        self.tally.payload_bytes += payload as u64;
        Ok(counts)
    }

    /// Declares the pages set in `dirty` (a harvest of the VM's dirty pages) changed since
    /// they were last sent: `commit` is refused until each was sent again.
    pub fn mark_dirty(&mut self, dirty: &DirtyBitmap) -> Result<(), UsageError> {
        if dirty.len() != self.stale.len() {
            return Err(UsageError::BitmapSize {
                pages: dirty.len(),
                expected: self.stale.len(),
            });
        }
        self.stale.merge(dirty);
        Ok(())
    }

    /// Pages declared dirty and not sent again yet.
    pub fn stale_pages(&self) -> usize {
        self.stale.count()
    }

    /// Version 3: whether `content` is what was last sent for page `pfn` (`None` without a
    /// page digest, or before the page was sent). The hypervisor samples clean pages with
    /// this to catch dirty tracking that lost a write.
    pub fn page_matches_sent(&self, pfn: usize, content: &[u8]) -> Option<bool> {
        let table = self.page_digest.as_ref()?;
        if pfn >= table.pages() || content.len() != PAGE_SIZE {
            return None;
        }
        Some(table.matches(pfn, content))
    }

    /// Whether the session verifies memory with the page digest (version 3), so that
    /// `commit` needs no whole-memory digest.
    pub fn uses_page_digest(&self) -> bool {
        self.page_digest.is_some()
    }

    /// Testing only (the hypervisor's `fault-inject corrupt-page`): the next page run goes
    /// on the wire with its last byte changed *after* it was hashed, as a bug in the
    /// encoder or a memory error on the way would. The destination must refuse to commit.
    #[doc(hidden)]
    pub fn corrupt_next_run_for_testing(&mut self) {
        self.corrupt_next_run = true;
    }

    /// Ends the current pre-copy round, sending its statistics; returns them.
    pub fn end_round(
        &mut self,
        dirty_pages_remaining: u64,
        now: Instant,
    ) -> Result<RoundStats, UsageError> {
        self.require("end a round", SourceState::Transferring)?;
        let t = &self.tally;
        let stats = RoundStats {
            round: t.round,
            pages_sent: t.counts.total(),
            zero_pages: t.counts.zero,
            // A delta page is an LZ4 block too (of the page's XOR with its last copy); the
            // RoundStats layout of version 1 has no field of its own for it.
            lz4_pages: t.counts.lz4 + t.counts.delta,
            raw_pages: t.counts.raw,
            payload_bytes: t.payload_bytes,
            dirty_pages_remaining,
            duration_us: now.saturating_since(t.started).as_micros() as u64,
        };
        self.send(&Message::RoundEnd(stats), now);
        self.tally = RoundTally {
            round: stats.round + 1,
            started: now,
            ..RoundTally::default()
        };
        Ok(stats)
    }

    /// Sends a progress report (also remembered as the keep-alive content).
    pub fn send_progress(&mut self, progress: Progress, now: Instant) -> Result<(), UsageError> {
        self.require("send progress", SourceState::Transferring)?;
        self.progress = progress;
        self.send(&Message::Progress(progress), now);
        Ok(())
    }

    /// Sends the state of one (stopped) vCPU.
    pub fn send_vcpu_state(&mut self, state: &VcpuState, now: Instant) -> Result<(), UsageError> {
        self.require("send vCPU state", SourceState::Transferring)?;
        state.validate().map_err(UsageError::Invalid)?;
        let Some(sent) = self.vcpus_sent.get_mut(state.vcpu_index as usize) else {
            return Err(UsageError::OutOfRange);
        };
        if *sent {
            return Err(UsageError::AlreadySent("vCPU state"));
        }
        *sent = true;
        self.send(&Message::VcpuState(Box::new(state.clone())), now);
        Ok(())
    }

    /// Sends the state of one device model (once per device id).
    pub fn send_device_state(
        &mut self,
        state: &DeviceState,
        now: Instant,
    ) -> Result<(), UsageError> {
        self.require("send device state", SourceState::Transferring)?;
        state.validate().map_err(UsageError::Invalid)?;
        if self.devices_sent.contains(&state.id) {
            return Err(UsageError::AlreadySent("device state"));
        }
        self.devices_sent.push(state.id.clone());
        self.send(&Message::DeviceState(state.clone()), now);
        Ok(())
    }

    /// Sends a run of blocks of a manifest disk (storage migration: DISK_MIGRATION) read
    /// from the disk at `first_lba`. Each block's hash is recorded for the disk digest and
    /// the blocks stop being stale.
    pub fn send_disk_blocks(
        &mut self,
        blocks: &DiskBlocks,
        now: Instant,
    ) -> Result<(), UsageError> {
        self.require("send disk blocks", SourceState::Transferring)?;
        if !self.link.caps.contains(Capabilities::DISK_MIGRATION) {
            return Err(UsageError::NotNegotiated(Capabilities::DISK_MIGRATION));
        }
        self.require_room()?;
        blocks.validate().map_err(UsageError::Invalid)?;
        let disk = self
            .disks
            .iter_mut()
            .find(|d| d.table.disk().disk_id == blocks.disk_id)
            .ok_or(UsageError::OutOfRange)?;
        let desc = disk.table.disk();
        let count = (blocks.data.len() / blocks.block_size as usize) as u64;
        if blocks.block_size != desc.block_size
            || blocks
                .first_lba
                .checked_add(count)
                .is_none_or(|end| end > desc.blocks())
        {
            return Err(UsageError::OutOfRange);
        }
        disk.table.record_run(blocks.first_lba, &blocks.data);
        for lba in blocks.first_lba..blocks.first_lba + count {
            disk.stale.clear(lba as usize);
        }
        if core::mem::take(&mut self.drop_next_disk_run) {
            return Ok(());
        }
        if core::mem::take(&mut self.corrupt_next_run) {
            let mut copy = blocks.clone();
            if let Some(byte) = copy.data.last_mut() {
                *byte ^= 0xa5;
            }
            self.send(&Message::DiskBlocks(copy), now);
            return Ok(());
        }
        self.send(&Message::DiskBlocks(blocks.clone()), now);
        Ok(())
    }

    /// Declares the blocks set in `dirty` (a harvest of the disk's dirty-block bitmap, one
    /// bit per block of the manifest's block size) changed since they were last sent:
    /// `commit` is refused until each was sent again.
    pub fn mark_disk_dirty(&mut self, disk_id: u32, dirty: &DirtyBitmap) -> Result<(), UsageError> {
        let disk = self
            .disks
            .iter_mut()
            .find(|d| d.table.disk().disk_id == disk_id)
            .ok_or(UsageError::OutOfRange)?;
        if dirty.len() != disk.stale.len() {
            return Err(UsageError::BitmapSize {
                pages: dirty.len(),
                expected: disk.stale.len(),
            });
        }
        disk.stale.merge(dirty);
        Ok(())
    }

    /// Blocks of all disks declared dirty and not sent again yet.
    pub fn stale_disk_blocks(&self) -> usize {
        self.disks.iter().map(|d| d.stale.count()).sum()
    }

    /// Testing only (`fault-inject drop-disk-block`): the next disk run is recorded as sent
    /// but never leaves, as a block lost between the hosts would. The destination must
    /// refuse to commit (the block is missing there, or a stale copy is).
    #[doc(hidden)]
    pub fn drop_next_disk_run_for_testing(&mut self) {
        self.drop_next_disk_run = true;
    }

    /// Ends the transfer and asks the destination to verify and commit. The source still
    /// owns the VM until `Completed`.
    ///
    /// Version 3 sends the page-digest accumulator; `memory_digest` (the whole (stopped)
    /// VM's memory, `digest::MemoryDigester`) is optional there and adds a second, complete
    /// check that also catches writes the dirty tracking missed. Version 2 requires it.
    /// Refused while pages declared dirty were not sent again.
    pub fn commit(
        &mut self,
        memory_digest: Option<Digest>,
        now: Instant,
    ) -> Result<(), UsageError> {
        self.require("commit", SourceState::Transferring)?;
        let sent = self.vcpus_sent.iter().filter(|s| **s).count();
        if sent != self.vcpus_sent.len() {
            return Err(UsageError::MissingVcpuState {
                sent,
                expected: self.vcpus_sent.len(),
            });
        }
        if let Some(first_pfn) = self.stale.iter_set().next() {
            return Err(UsageError::StalePages {
                count: self.stale.count(),
                first_pfn,
            });
        }
        if self.page_digest.is_none() && memory_digest.is_none() {
            return Err(UsageError::DigestRequired);
        }
        for disk in &self.disks {
            let disk_id = disk.table.disk().disk_id;
            if let Some(first_lba) = disk.table.first_uncovered() {
                return Err(UsageError::DiskNotCopied { disk_id, first_lba });
            }
            if let Some(first_lba) = disk.stale.iter_set().next() {
                return Err(UsageError::StaleDiskBlocks {
                    disk_id,
                    count: disk.stale.count(),
                    first_lba,
                });
            }
        }
        let digests: Vec<DiskDigestMessage> = self
            .disks
            .iter()
            .map(|d| DiskDigestMessage {
                disk_id: d.table.disk().disk_id,
                size_bytes: d.table.disk().size_bytes,
                region_bytes: d.table.disk().region_bytes(),
                regions: d.table.regions().to_vec(),
            })
            .collect();
        for digest in digests {
            self.send(&Message::DiskDigest(digest), now);
        }
        let memory_bytes = self.config.identity.memory_bytes;
        if let Some(table) = &self.page_digest {
            let accumulator = table.accumulator();
            self.send(
                &Message::PageDigest(PageDigestMessage {
                    memory_bytes,
                    accumulator,
                }),
                now,
            );
        }
        if let Some(digest) = memory_digest {
            self.send(
                &Message::MemoryDigest(MemoryDigestMessage {
                    memory_bytes,
                    digest,
                }),
                now,
            );
        }
        self.send(&Message::Commit, now);
        self.state = SourceState::AwaitingCommitAck;
        self.waiting_since = now;
        Ok(())
    }
}
