//! Dirty-page tracking for pre-copy: which guest pages changed since the last harvest.
//!
//! Two backends, chosen per migration (`migrate_set_parameter dirty-tracking wp|pml`):
//! - [`EptWriteProtect`] works on every VT-x CPU with EPT: all guest-RAM leaves lose write
//!   permission, the first write to a page is an EPT violation that records the page and
//!   gives write access back, and each harvest re-protects exactly the pages it reports.
//!   Cost: one VM exit per page per round.
//! - [`PageModificationLog`] needs EPT accessed/dirty flags and PML (Bochs' `tigerlake` has
//!   both): the CPU sets the leaf's dirty flag and appends the page's address to a 512-entry
//!   log by itself; the hypervisor only sees an exit when the log is full. A harvest drains
//!   the log and collects (and clears) the dirty flags. Cost: one exit per 512 pages.
//!
//! Both are pure bookkeeping over [`EptTables`] and a [`TableMemory`], so the whole logic is
//! unit-tested on the host with tables in heap memory; the bare-metal side only adds the
//! INVEPT each operation reports as required and the VMCS fields of PML.

mod pml;
mod write_protect;

#[cfg(test)]
mod tests;

pub use pml::{PML_ENTRIES, PML_INDEX_RESET, PageModificationLog};
pub use write_protect::{EptWriteProtect, WriteFault};

use core::fmt;

use crate::vmx::ept::EptError;

/// Which mechanism tracks dirty pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirtyTrackingMode {
    /// EPT write-protection (works everywhere EPT does).
    WriteProtect,
    /// Page-modification logging with EPT A/D flags (where the CPU offers it).
    Pml,
}

impl DirtyTrackingMode {
    /// The console spelling (`wp` / `pml`).
    pub fn name(self) -> &'static str {
        match self {
            Self::WriteProtect => "wp",
            Self::Pml => "pml",
        }
    }

    /// Parses the console spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "wp" => Some(Self::WriteProtect),
            "pml" => Some(Self::Pml),
            _ => None,
        }
    }
}

/// Whether the caller must invalidate the EPT's cached translations (INVEPT,
/// single-context) before the guest runs again: required after removing rights or clearing
/// accessed/dirty flags (SDM Vol. 3C §29.4.3.1, §29.4.3.4 "Guidelines for Use of INVEPT").
#[must_use = "an EPT change that removed rights needs INVEPT before the guest runs"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InveptRequired(pub bool);

/// Why tracking failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackingError {
    /// The EPT walk failed.
    Ept(EptError),
    /// The guest-physical address is not guest RAM.
    NotRam(u64),
    /// The PML index read from the VMCS is neither a valid slot nor the "full" value.
    BadPmlIndex(u16),
    /// The mechanism is not available here (CPU feature missing, or not set up).
    Unsupported(&'static str),
}

impl From<EptError> for TrackingError {
    fn from(e: EptError) -> Self {
        Self::Ept(e)
    }
}

impl fmt::Display for TrackingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ept(e) => write!(f, "dirty tracking: {e}"),
            Self::NotRam(gpa) => write!(f, "dirty tracking: {gpa:#x} is not guest RAM"),
            Self::BadPmlIndex(i) => write!(f, "dirty tracking: PML index {i} out of range"),
            Self::Unsupported(what) => write!(f, "dirty tracking: {what} not available"),
        }
    }
}
