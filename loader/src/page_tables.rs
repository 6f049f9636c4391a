//! The hypervisor's first page tables (4-level, SDM Vol. 3A 4.5).
//!
//! * Physical memory `[0, identity_bytes)` is identity-mapped with 2 MiB pages, read/write,
//!   executable (the hand-over trampoline runs from loader code through this map; the
//!   hypervisor builds stricter tables of its own later if it wants them). Caching comes from
//!   the firmware's MTRRs, so MMIO below 4 GiB stays uncached.
//! * The hypervisor image is mapped with 4 KiB pages at its link address, with the
//!   permissions of its ELF segments (no-execute where not executable, read-only where not
//!   writable), so a stray write into its code faults instead of corrupting it.
//!
//! Every table lives in [`boot_proto::memory_type::BOOT_DATA`] pages, which the hypervisor's
//! frame allocator never hands out.

use crate::boot::allocate_zeroed;
use crate::error::LoaderError;
use crate::hypervisor_elf::LoadedImage;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const GIB: u64 = 1 << 30;
const TWO_MIB: u64 = 2 << 20;

/// A 4 KiB table page, accessed through the firmware's identity map.
type Table = &'static mut [u64];

fn new_table() -> Result<Table, LoaderError> {
    let bytes = allocate_zeroed(boot_proto::memory_type::BOOT_DATA, 4096, "page tables")?;
    let ptr = bytes.as_mut_ptr().cast::<u64>();
    // SAFETY: `allocate_zeroed` returned 4096 zeroed bytes, 4 KiB aligned (page allocation),
    // owned by us forever (never freed); 512 u64 fit exactly and alignment is satisfied.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, 512) })
}

fn table_at(entry: u64) -> Table {
    let ptr = (entry & ADDR_MASK) as *mut u64;
    // SAFETY: `entry` was written by this module and points at a table page from
    // `new_table`, identity-mapped by the firmware while boot services run.
    unsafe { core::slice::from_raw_parts_mut(ptr, 512) }
}

/// Returns the next-level table behind `table[index]`, creating it if absent.
fn next_level(table: &mut [u64], index: usize) -> Result<Table, LoaderError> {
    if table[index] & PRESENT == 0 {
        let t = new_table()?;
        table[index] = t.as_ptr() as u64 | PRESENT | WRITABLE;
    }
    Ok(table_at(table[index]))
}

/// Builds the tables; returns the physical address of the PML4.
pub fn build(identity_bytes: u64, image: &LoadedImage) -> Result<u64, LoaderError> {
    let pml4 = new_table()?;
    let mut phys = 0u64;
    while phys < identity_bytes {
        let pdpt = next_level(pml4, ((phys >> 39) & 511) as usize)?;
        let pd = next_level(pdpt, ((phys >> 30) & 511) as usize)?;
        for (i, entry) in pd.iter_mut().enumerate() {
            *entry = (phys + i as u64 * TWO_MIB) | PRESENT | WRITABLE | HUGE;
        }
        phys += GIB;
    }
    for (i, perms) in image.pages.iter().enumerate() {
        let virt = image.virt_base + i as u64 * 4096;
        let pdpt = next_level(pml4, ((virt >> 39) & 511) as usize)?;
        let pd = next_level(pdpt, ((virt >> 30) & 511) as usize)?;
        let pt = next_level(pd, ((virt >> 21) & 511) as usize)?;
        let mut flags = PRESENT;
        if perms.write {
            flags |= WRITABLE;
        }
        if !perms.execute {
            flags |= NO_EXECUTE;
        }
        pt[((virt >> 12) & 511) as usize] = (image.phys_base + i as u64 * 4096) | flags;
    }
    Ok(pml4.as_ptr() as u64)
}

/// How much physical address space to identity-map: everything the memory map mentions,
/// and at least the 4 GiB below which firmware puts MMIO (LAPIC, IOAPIC, PCI BARs), rounded
/// up to 1 GiB and capped at 512 GiB (one PDPT's worth of PD tables, 1 MiB of tables).
pub fn identity_span(highest_address: u64) -> u64 {
    highest_address
        .max(4 * GIB)
        .div_ceil(GIB)
        .saturating_mul(GIB)
        .min(512 * GIB)
}
