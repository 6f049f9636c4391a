//! Dirty tracking by page-modification logging (SDM Vol. 3C §29.3.6) on top of EPT
//! accessed/dirty flags (§29.3.4).
//!
//! With A/D flags enabled in the EPTP (bit 6) and "enable PML" set, every write that sets a
//! leaf's dirty flag from 0 to 1 also stores the page's guest-physical address (bits 11:0
//! cleared) in the 4 KiB log at index "PML index" (a 16-bit VMCS field) and decrements the
//! index. The hypervisor starts the index at 511; when a write would log with the index
//! outside 0..=511 the CPU exits with reason 62 "page-modification log full" instead
//! (§29.3.6, §28.2.1 / exit reasons appendix C). Valid entries are therefore
//! `index+1 ..= 511` (all 512 when the index wrapped to 0xffff).
//!
//! Harvest = drain the log + collect and clear the leaves' dirty flags. The flags are the
//! authority (a page can be dirty without a log entry only if its flag was already set,
//! i.e. it is found by the flag walk); clearing them requires INVEPT (§29.4.3.4) so that
//! the next write sets the flag (and logs) again.

use migration_proto::dirty::DirtyBitmap;

use super::{InveptRequired, TrackingError};
use crate::vmx::ept::{EptTables, PAGE_SIZE, TableMemory};

/// Entries in the PML log page.
pub const PML_ENTRIES: usize = 512;
/// The PML index value that makes the whole log available.
pub const PML_INDEX_RESET: u16 = (PML_ENTRIES - 1) as u16;

/// PML bookkeeping for guest RAM `[0, ram_bytes)`.
#[derive(Debug)]
pub struct PageModificationLog {
    ram_bytes: u64,
    dirty: DirtyBitmap,
    logged: u64,
    log_full_exits: u64,
}

impl PageModificationLog {
    /// Starts tracking: clears every leaf's accessed/dirty flags so that the first write of
    /// each page is logged. The caller enables A/D in the EPTP and PML in the VMCS, sets
    /// the PML index to [`PML_INDEX_RESET`] and executes the INVEPT this reports.
    pub fn start<M: TableMemory>(
        ept: &EptTables,
        mem: &mut M,
        ram_bytes: u64,
    ) -> Result<(Self, InveptRequired), TrackingError> {
        ept.harvest_dirty(mem, 0, ram_bytes, |_| {})?;
        let tracker = Self {
            ram_bytes,
            dirty: DirtyBitmap::new((ram_bytes / PAGE_SIZE) as usize),
            logged: 0,
            log_full_exits: 0,
        };
        Ok((tracker, InveptRequired(true)))
    }

    /// Records the valid entries of `log` given the current PML `index`; returns the index
    /// to write back ([`PML_INDEX_RESET`]). Addresses outside RAM are ignored (the CPU only
    /// logs pages it translated through a present leaf, which are all RAM here).
    pub fn drain_log(
        &mut self,
        log: &[u64; PML_ENTRIES],
        index: u16,
    ) -> Result<u16, TrackingError> {
        let first_valid = match index {
            0xffff => 0,
            i if usize::from(i) < PML_ENTRIES => usize::from(i) + 1,
            i => return Err(TrackingError::BadPmlIndex(i)),
        };
        for &gpa in &log[first_valid..] {
            if gpa < self.ram_bytes {
                self.dirty.set((gpa / PAGE_SIZE) as usize);
                self.logged += 1;
            }
        }
        Ok(PML_INDEX_RESET)
    }

    /// Handles a "page-modification log full" exit: drains the log; returns the new index.
    pub fn on_log_full(
        &mut self,
        log: &[u64; PML_ENTRIES],
        index: u16,
    ) -> Result<u16, TrackingError> {
        self.log_full_exits += 1;
        self.drain_log(log, index)
    }

    /// Pages dirtied since the last harvest: the log's entries plus every leaf whose dirty
    /// flag is set, whose flags are cleared. Returns the new PML index.
    pub fn harvest<M: TableMemory>(
        &mut self,
        ept: &EptTables,
        mem: &mut M,
        log: &[u64; PML_ENTRIES],
        index: u16,
    ) -> Result<(DirtyBitmap, u16, InveptRequired), TrackingError> {
        let new_index = self.drain_log(log, index)?;
        let dirty = &mut self.dirty;
        ept.harvest_dirty(mem, 0, self.ram_bytes, |gpa| {
            dirty.set((gpa / PAGE_SIZE) as usize);
        })?;
        Ok((self.dirty.take(), new_index, InveptRequired(true)))
    }

    /// "Page-modification log full" exits so far.
    pub fn log_full_exits(&self) -> u64 {
        self.log_full_exits
    }

    /// Log entries processed so far.
    pub fn logged(&self) -> u64 {
        self.logged
    }
}
