//! Dirty tracking by EPT write-protection.
//!
//! Protect: every guest-RAM leaf loses its write permission. A guest write to such a page
//! causes an EPT violation (SDM Vol. 3C §29.3.3.2) whose exit qualification says "write"
//! and whose guest-physical address names the page; [`EptWriteProtect::on_write_fault`]
//! records the page and restores the write permission. Raising rights needs no INVEPT: the
//! EPT violation itself invalidates the cached translations for the faulting address
//! (SDM §29.4.3.1, "Operations that invalidate cached mappings"), so the retried write
//! succeeds. Harvest hands out the recorded pages and removes their write permission
//! again, which does need an INVEPT before the guest runs (SDM §29.4.3.4).

use migration_proto::dirty::DirtyBitmap;

use super::{InveptRequired, TrackingError};
use crate::vmx::ept::{EptTables, PAGE_SIZE, Permissions, TableMemory};

/// What a write fault was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFault {
    /// A tracked page: recorded, writable again; resume the guest at the same instruction.
    Recorded {
        /// Guest page frame number.
        pfn: usize,
    },
    /// The page was already writable (a stale cached translation): just resume.
    Spurious,
}

/// Write-protection bookkeeping for guest RAM `[0, ram_bytes)`.
#[derive(Debug)]
pub struct EptWriteProtect {
    ram_bytes: u64,
    dirty: DirtyBitmap,
    faults: u64,
}

impl EptWriteProtect {
    /// Starts tracking: removes write permission from every RAM leaf.
    pub fn start<M: TableMemory>(
        ept: &EptTables,
        mem: &mut M,
        ram_bytes: u64,
    ) -> Result<(Self, InveptRequired), TrackingError> {
        let changed = ept.write_protect(mem, 0, ram_bytes)?;
        let pages = (ram_bytes / PAGE_SIZE) as usize;
        let tracker = Self {
            ram_bytes,
            dirty: DirtyBitmap::new(pages),
            faults: 0,
        };
        Ok((tracker, InveptRequired(changed > 0)))
    }

    /// Handles the EPT violation of a guest write to `gpa`.
    pub fn on_write_fault<M: TableMemory>(
        &mut self,
        ept: &EptTables,
        mem: &mut M,
        gpa: u64,
    ) -> Result<WriteFault, TrackingError> {
        if gpa >= self.ram_bytes {
            return Err(TrackingError::NotRam(gpa));
        }
        let page = gpa & !(PAGE_SIZE - 1);
        let mut found = false;
        let mut was_writable = false;
        ept.for_each_leaf(mem, page, PAGE_SIZE, |_, entry| {
            found = true;
            let mut perms = entry.permissions();
            was_writable = perms.write;
            perms.write = true;
            perms.read = true; // write without read is a misconfiguration (§29.3.3.1)
            entry.set_permissions(perms);
        })?;
        if !found {
            return Err(TrackingError::NotRam(gpa));
        }
        if was_writable {
            return Ok(WriteFault::Spurious);
        }
        self.faults += 1;
        let pfn = (page / PAGE_SIZE) as usize;
        self.dirty.set(pfn);
        Ok(WriteFault::Recorded { pfn })
    }

    /// Pages written since the last harvest; they are write-protected again.
    pub fn harvest<M: TableMemory>(
        &mut self,
        ept: &EptTables,
        mem: &mut M,
    ) -> Result<(DirtyBitmap, InveptRequired), TrackingError> {
        let dirty = self.dirty.take();
        let mut changed = 0;
        for pfn in dirty.iter_set() {
            changed += ept.write_protect(mem, pfn as u64 * PAGE_SIZE, PAGE_SIZE)?;
        }
        Ok((dirty, InveptRequired(changed > 0)))
    }

    /// Ends tracking: every RAM leaf is writable again. Raising rights needs no INVEPT
    /// (a stale read-only translation faults once and is then dropped, §29.4.3.1), but the
    /// caller may issue one to avoid those spurious exits.
    pub fn stop<M: TableMemory>(self, ept: &EptTables, mem: &mut M) -> Result<(), TrackingError> {
        ept.set_permissions(mem, 0, self.ram_bytes, Permissions::RWX)?;
        Ok(())
    }

    /// Write faults recorded so far (one per page per round).
    pub fn faults(&self) -> u64 {
        self.faults
    }

    /// Pages recorded since the last harvest.
    pub fn pending(&self) -> usize {
        self.dirty.count()
    }
}
