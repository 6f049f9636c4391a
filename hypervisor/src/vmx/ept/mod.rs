//! Extended page tables: the guest-physical -> host-physical map of a VM.
//!
//! Why it is built like this: guest RAM is backed by host frames chosen by the frame
//! allocator, one 4 KiB leaf per guest page, and nothing else is ever mapped — the
//! hypervisor's own memory is unreachable from a guest by construction, and every
//! guest-physical address outside RAM ends in an EPT violation the exit handler decides
//! about. 4 KiB leaves also make write-protection and dirty harvesting for migration exact
//! per page. The builder works on an abstract [`TableMemory`] (allocate a zeroed table,
//! access it by physical address) so that the whole structure is unit-tested on the host
//! with tables in ordinary heap memory.
//!
//! SDM references (Vol. 3C, 2023+ numbering; editions before that number the VMX chapters
//! one lower, e.g. 28.2.2 for 29.3.2): §29.3.2 "EPT Translation Mechanism" (entry formats,
//! Tables 29-1..29-6), §29.3.3.1 "EPT Misconfigurations", §29.3.4 "Accessed and Dirty Flags
//! for EPT", §29.3.7.2 "Memory Type Used for Translated Guest-Physical Addresses", §25.6.11
//! "Extended-Page-Table Pointer (EPTP)", §29.4.3.1 on INVEPT after permission changes.

mod entry;
mod tables;

pub use entry::{EptEntry, MemoryType, Permissions};
pub use tables::{EptTables, Translation};

use core::fmt;

/// Size of a guest page and of an EPT paging structure (SDM §29.3.2), as a `u64` for
/// address arithmetic. Defined once: it is the migration protocol's page
/// (`migration_proto::wire::PAGE_SIZE`), which is the guest's 4 KiB page by definition.
pub const PAGE_SIZE: u64 = migration_proto::wire::PAGE_SIZE as u64;
/// Entries per EPT paging structure.
pub const ENTRIES: usize = 512;
/// Guest-physical addresses a 4-level EPT translates: 48 bits (SDM §29.3.2).
pub const GUEST_PHYS_LIMIT: u64 = 1 << 48;
/// Host-physical addresses are at most 52 bits wide (MAXPHYADDR <= 52, SDM §29.3.2).
pub const HOST_PHYS_LIMIT: u64 = 1 << 52;

/// One EPT paging structure: 512 eight-byte entries in a 4 KiB-aligned frame.
pub type Table = [u64; ENTRIES];

/// Where EPT paging structures live.
///
/// # Safety
/// `allocate_table` must return the physical address of a 4 KiB-aligned, zero-filled frame
/// owned by the caller until `free_table`; `table`/`table_mut` must give access to exactly
/// that frame (on bare metal through the identity map). The EPT walker and the CPU both read
/// these frames, so handing out a frame that is in use elsewhere corrupts memory.
pub unsafe trait TableMemory {
    /// A zeroed 4 KiB frame for a paging structure, or `None` when memory is exhausted.
    fn allocate_table(&mut self) -> Option<u64>;
    /// Give back a frame from [`Self::allocate_table`].
    fn free_table(&mut self, phys: u64);
    /// Read access to the table at `phys`.
    fn table(&self, phys: u64) -> &Table;
    /// Write access to the table at `phys`.
    fn table_mut(&mut self, phys: u64) -> &mut Table;
}

/// Why an EPT operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EptError {
    /// A guest- or host-physical address or length is not 4 KiB aligned.
    Unaligned(u64),
    /// The guest-physical range reaches past 2^48 (4-level EPT).
    GuestAddressTooHigh(u64),
    /// The host-physical address has bits at or above bit 52.
    HostAddressTooHigh(u64),
    /// The guest page is already mapped (mapping never silently replaces a leaf).
    AlreadyMapped(u64),
    /// Write without read permission is an EPT misconfiguration (SDM §29.3.3.1).
    WriteWithoutRead,
    /// The table allocator ran out of frames.
    OutOfMemory,
    /// A large-page entry was found where this builder only creates 4 KiB leaves.
    UnexpectedLargePage(u64),
}

impl fmt::Display for EptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unaligned(a) => write!(f, "EPT: {a:#x} is not 4 KiB aligned"),
            Self::GuestAddressTooHigh(a) => {
                write!(
                    f,
                    "EPT: guest-physical {a:#x} is beyond the 48-bit EPT range"
                )
            }
            Self::HostAddressTooHigh(a) => {
                write!(f, "EPT: host-physical {a:#x} is beyond 52 bits")
            }
            Self::AlreadyMapped(a) => write!(f, "EPT: guest-physical {a:#x} is already mapped"),
            Self::WriteWithoutRead => write!(f, "EPT: write without read is a misconfiguration"),
            Self::OutOfMemory => write!(f, "EPT: out of frames for paging structures"),
            Self::UnexpectedLargePage(a) => {
                write!(f, "EPT: unexpected large page covering {a:#x}")
            }
        }
    }
}

/// The EPT pointer written to the VMCS (SDM §25.6.11): paging-structure memory type WB
/// (bits 2:0 = 6), page-walk length 4 (bits 5:3 = 3), bit 6 enables accessed/dirty flags,
/// bits 51:12 the PML4 table.
pub fn eptp(pml4_phys: u64, accessed_dirty: bool) -> u64 {
    const WALK_LENGTH_4: u64 = 3 << 3;
    const ENABLE_AD: u64 = 1 << 6;
    let ad = if accessed_dirty { ENABLE_AD } else { 0 };
    (pml4_phys & entry::ADDRESS_MASK) | WALK_LENGTH_4 | ad | MemoryType::WriteBack as u64
}

#[cfg(test)]
mod tests;
