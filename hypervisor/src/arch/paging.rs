//! Small edits to the page tables the loader built (4-level paging, SDM Vol. 3A §4.5).
//!
//! The loader maps the hypervisor image with 4 KiB pages, so single pages of it can be
//! changed. The only edit so far is a guard page: unmapping the page below the boot stack turns
//! a stack overflow into a #PF that cannot be delivered on the same stack, hence a #DF on its
//! IST stack and a register dump, instead of silently overwriting `.data`.

use x86_64::VirtAddr;
use x86_64::instructions::tlb;
use x86_64::registers::control::Cr3;

use crate::memory::phys_to_ptr;

const PRESENT: u64 = 1 << 0;
const HUGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Why a page could not be unmapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingError {
    /// The address is not 4 KiB aligned.
    Unaligned(u64),
    /// Some level of the walk is not present.
    NotMapped(u64),
    /// The address is covered by a 2 MiB or 1 GiB page.
    HugePage(u64),
}

impl core::fmt::Display for PagingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PagingError::Unaligned(v) => write!(f, "{v:#x} is not page aligned"),
            PagingError::NotMapped(v) => write!(f, "{v:#x} is not mapped"),
            PagingError::HugePage(v) => write!(f, "{v:#x} is mapped by a large page"),
        }
    }
}

/// Marks the 4 KiB page at `virt` not-present and flushes it from the TLB.
///
/// # Safety
/// Nothing may use the page afterwards (any access faults), and the page tables must be the
/// loader's identity-mapped tables (walked through the identity map).
pub unsafe fn unmap_4k(virt: u64) -> Result<(), PagingError> {
    if virt & 0xfff != 0 {
        return Err(PagingError::Unaligned(virt));
    }
    let (root, _) = Cr3::read();
    let mut table = root.start_address().as_u64();
    for level in (1..=4).rev() {
        let index = (virt >> (12 + 9 * (level - 1))) & 511;
        let entry_ptr = phys_to_ptr::<u64>(table + index * 8);
        // SAFETY: `table` is a page-table page (from CR3 or a present non-leaf entry), below
        // the identity-map limit, so `entry_ptr` is a valid, aligned entry.
        let entry = unsafe { core::ptr::read_volatile(entry_ptr) };
        if entry & PRESENT == 0 {
            return Err(PagingError::NotMapped(virt));
        }
        if level == 1 {
            // SAFETY: as above; clearing P of a leaf entry the caller gave up.
            unsafe { core::ptr::write_volatile(entry_ptr, entry & !PRESENT) };
            tlb::flush(VirtAddr::new(virt));
            return Ok(());
        }
        if entry & HUGE != 0 {
            return Err(PagingError::HugePage(virt));
        }
        table = entry & ADDR_MASK;
    }
    Err(PagingError::NotMapped(virt))
}
