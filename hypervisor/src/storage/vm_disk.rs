//! A VM's disk storage, whichever backend holds it: a RAM disk, a region of the host disk,
//! or both while `block_migrate` moves it from one to the other (`mirror`).
//!
//! Why one enum rather than a generic device: the backend of a running VM changes at
//! cut-over, under a device that keeps its queues, in-flight requests and dirty-block
//! bitmap. Swapping the variant inside the backend leaves the device untouched.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::ata::AtaPorts;
use super::host_disk::HostDiskRegion;
use super::mirror::{BlockMirror, MirrorOutcome, MirrorProgress};
use crate::vm::virtio_blk::RamDisk;
use crate::vm::virtio_blk::backend::{
    BackendError, BlockBackend, BlockCompletion, BlockOp, SECTOR_SIZE,
};

/// Port access to the host disk's channel, boxed so that the VM code stays portable (the
/// bare-metal ports live in `arch`; host tests use the fake).
pub type DynAtaPorts = Box<dyn AtaPorts + Send>;

impl AtaPorts for DynAtaPorts {
    fn read_reg(&mut self, offset: u16) -> u8 {
        (**self).read_reg(offset)
    }
    fn write_reg(&mut self, offset: u16, value: u8) {
        (**self).write_reg(offset, value)
    }
    fn read_data(&mut self) -> u16 {
        (**self).read_data()
    }
    fn write_data(&mut self, value: u16) {
        (**self).write_data(value)
    }
    fn read_alt_status(&mut self) -> u8 {
        (**self).read_alt_status()
    }
    fn write_control(&mut self, value: u8) {
        (**self).write_control(value)
    }
}

/// A VM disk on the host disk.
pub type HostDisk = HostDiskRegion<DynAtaPorts>;

/// Where a VM's disk lives.
pub enum VmDisk {
    /// In host RAM.
    Ram(RamDisk),
    /// On a region of the host disk.
    Host(HostDisk),
    /// Being moved: the source answers the guest; writes are mirrored to the target.
    Mirror(Box<BlockMirror>),
    /// Only for the instant of a swap between the variants above, inside one method
    /// (`start_mirror`, `step`): never seen by the device, which therefore never submits to
    /// it. No sectors, no completions.
    Detached,
}

impl core::fmt::Debug for VmDisk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "VmDisk({})", self.kind())
    }
}

impl From<RamDisk> for VmDisk {
    fn from(disk: RamDisk) -> Self {
        Self::Ram(disk)
    }
}

impl From<HostDisk> for VmDisk {
    fn from(disk: HostDisk) -> Self {
        Self::Host(disk)
    }
}

impl VmDisk {
    /// The backend's kind as `info block` and `block_migrate` name it (`ram`, `host`,
    /// `ram->host` while moving).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ram(_) => "ram",
            Self::Host(_) => "host",
            Self::Mirror(m) => m.kind(),
            Self::Detached => "none",
        }
    }

    /// Progress of a running `block_migrate`, if one runs.
    pub fn mirror_progress(&self) -> Option<MirrorProgress> {
        match self {
            Self::Mirror(m) => Some(m.progress()),
            _ => None,
        }
    }

    /// Starts moving the disk to `target` (same size; not while a move runs).
    pub fn start_mirror(&mut self, target: VmDisk) -> Result<(), String> {
        if let Self::Mirror(m) = self {
            return Err(alloc::format!(
                "a block migration ({}) is already running",
                m.kind()
            ));
        }
        if target.capacity_sectors() != self.capacity_sectors() {
            return Err(alloc::format!(
                "the target holds {} KiB, the disk {} KiB: sizes must match",
                target.capacity_sectors() / 2,
                self.capacity_sectors() / 2
            ));
        }
        let source = core::mem::replace(self, Self::Detached);
        *self = Self::Mirror(Box::new(BlockMirror::new(source, target)));
        Ok(())
    }

    /// Asks a running move to stop; the source stays (or becomes again) authoritative at
    /// the next [`Self::step`].
    pub fn cancel_mirror(&mut self) -> Result<(), String> {
        match self {
            Self::Mirror(m) => {
                m.cancel();
                Ok(())
            }
            _ => Err("no block migration is running".into()),
        }
    }

    /// Advances a running move by at most `budget_bytes` of copying or verifying, and
    /// cuts over (or falls back) when it is finished and no completion is pending. Returns
    /// the outcome when the move ended in this step.
    pub fn step(&mut self, budget_bytes: u64) -> Option<MirrorOutcome> {
        let Self::Mirror(m) = self else {
            return None;
        };
        m.step(budget_bytes);
        if !m.finished() || m.has_pending_completions() {
            return None;
        }
        let m = match core::mem::replace(self, Self::Detached) {
            Self::Mirror(m) => m,
            // Checked above; put anything else back untouched.
            other => {
                *self = other;
                return None;
            }
        };
        let (keep, outcome) = m.into_outcome();
        *self = keep;
        Some(outcome)
    }

    /// Reads `out.len()` bytes at byte `offset` outside the guest's request path (cross-host
    /// storage migration reads the authoritative copy).
    pub fn read_bytes(&self, offset: u64, out: &mut [u8]) -> Result<(), String> {
        match self {
            Self::Ram(r) => {
                let end = offset.checked_add(out.len() as u64);
                match end {
                    Some(e) if e <= r.contents().len() as u64 => {
                        out.copy_from_slice(&r.contents()[offset as usize..e as usize]);
                        Ok(())
                    }
                    _ => Err(alloc::format!(
                        "{} bytes at {offset} past the disk's end",
                        out.len()
                    )),
                }
            }
            Self::Host(h) => h.read_bytes(offset, out),
            Self::Mirror(m) => m.source().read_bytes(offset, out),
            Self::Detached => Err("the disk is detached".into()),
        }
    }

    /// Writes `data` at byte `offset` outside the guest's request path (an arriving VM's
    /// blocks, before it runs).
    pub fn write_bytes(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        match self {
            Self::Ram(r) => {
                let end = offset.checked_add(data.len() as u64);
                match end {
                    Some(e) if e <= r.contents().len() as u64 => {
                        r.contents_mut()[offset as usize..e as usize].copy_from_slice(data);
                        Ok(())
                    }
                    _ => Err(alloc::format!(
                        "{} bytes at {offset} past the disk's end",
                        data.len()
                    )),
                }
            }
            Self::Host(h) => h.write_bytes(offset, data),
            Self::Mirror(_) => Err("a block migration is running on this disk".into()),
            Self::Detached => Err("the disk is detached".into()),
        }
    }

    /// Runs `op` to completion outside the guest's tags (mirror copies and verification).
    /// Completions of other tags met on the way are returned to the caller's queue.
    pub(super) fn run_sync(
        &mut self,
        op: BlockOp,
        stray: &mut Vec<BlockCompletion>,
    ) -> Result<Vec<u8>, BackendError> {
        self.submit(SYNC_TAG, op);
        // Every backend here completes inside `submit`; a bounded drain still guards
        // against one that would not.
        for _ in 0..1024 {
            match self.poll_completion() {
                Some(c) if c.tag == SYNC_TAG => return c.result,
                Some(c) => stray.push(c),
                None => break,
            }
        }
        Err(BackendError::Device)
    }

    /// Bytes on the disk.
    pub fn size_bytes(&self) -> u64 {
        self.capacity_sectors() * SECTOR_SIZE
    }
}

/// The tag of the mirror's own operations; the device's tags are request indices, far
/// below it.
const SYNC_TAG: u64 = u64::MAX;

impl BlockBackend for VmDisk {
    fn capacity_sectors(&self) -> u64 {
        match self {
            Self::Ram(r) => r.capacity_sectors(),
            Self::Host(h) => h.capacity_sectors(),
            Self::Mirror(m) => m.source().capacity_sectors(),
            Self::Detached => 0,
        }
    }

    fn block_size(&self) -> u32 {
        match self {
            Self::Ram(r) => r.block_size(),
            Self::Host(h) => h.block_size(),
            Self::Mirror(m) => m.source().block_size(),
            Self::Detached => SECTOR_SIZE as u32,
        }
    }

    fn read_only(&self) -> bool {
        match self {
            Self::Ram(r) => r.read_only(),
            Self::Host(h) => h.read_only(),
            Self::Mirror(m) => m.source().read_only(),
            Self::Detached => true,
        }
    }

    fn submit(&mut self, tag: u64, op: BlockOp) {
        match self {
            Self::Ram(r) => r.submit(tag, op),
            Self::Host(h) => h.submit(tag, op),
            Self::Mirror(m) => m.submit(tag, op),
            Self::Detached => {
                let _ = (tag, op);
            }
        }
    }

    fn poll_completion(&mut self) -> Option<BlockCompletion> {
        match self {
            Self::Ram(r) => r.poll_completion(),
            Self::Host(h) => h.poll_completion(),
            Self::Mirror(m) => m.poll_completion(),
            Self::Detached => None,
        }
    }
}
