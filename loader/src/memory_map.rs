//! Converting the firmware's final memory map into [`boot_proto::MemoryRegion`]s.
//!
//! UEFI types are folded into the few kinds the hypervisor cares about; boot-services memory
//! becomes usable (boot services are gone by then), the loader's own code and pool data are
//! kept apart (`LoaderUsed`) because the boot info and the memory map copy live there.
//! Entries are sorted and adjacent entries of the same kind merged.

use boot_proto::{MemoryKind, MemoryRegion, memory_type};
use uefi::mem::memory_map::{MemoryMap, MemoryType};

/// The hypervisor's view of a UEFI memory type.
pub fn kind_of(ty: MemoryType) -> MemoryKind {
    match ty {
        MemoryType::CONVENTIONAL
        | MemoryType::BOOT_SERVICES_CODE
        | MemoryType::BOOT_SERVICES_DATA => MemoryKind::Usable,
        MemoryType::LOADER_CODE | MemoryType::LOADER_DATA => MemoryKind::LoaderUsed,
        MemoryType::ACPI_RECLAIM => MemoryKind::AcpiReclaimable,
        MemoryType::UNUSABLE => MemoryKind::Unusable,
        t if t.0 == memory_type::HYPERVISOR_IMAGE => MemoryKind::HypervisorImage,
        t if t.0 == memory_type::BOOT_DATA => MemoryKind::BootData,
        t if t.0 == memory_type::MODULE => MemoryKind::Module,
        _ => MemoryKind::Reserved,
    }
}

/// Highest physical address the map mentions.
pub fn highest_address(map: &impl MemoryMap) -> u64 {
    map.entries()
        .map(|d| {
            d.phys_start
                .saturating_add(d.page_count.saturating_mul(4096))
        })
        .max()
        .unwrap_or(0)
}

/// Fills `out` with the sorted, merged map; returns the number of regions written, or the
/// number of raw entries if they do not fit. Runs after ExitBootServices: no allocation.
pub fn convert(map: &impl MemoryMap, out: &mut [MemoryRegion]) -> Result<usize, usize> {
    let mut n = 0usize;
    for d in map.entries() {
        if d.page_count == 0 {
            continue;
        }
        if n == out.len() {
            return Err(map.len());
        }
        out[n] = MemoryRegion {
            start: d.phys_start,
            len: d.page_count.saturating_mul(4096),
            kind: kind_of(d.ty),
            _reserved: 0,
        };
        n += 1;
    }
    // Insertion sort: no allocation allowed here, and n is at most a few hundred.
    for i in 1..n {
        let mut j = i;
        while j > 0 && out[j - 1].start > out[j].start {
            out.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut merged = 0usize;
    for i in 0..n {
        if merged > 0 {
            let prev = out[merged - 1];
            if prev.kind == out[i].kind && prev.end() == out[i].start {
                out[merged - 1].len += out[i].len;
                continue;
            }
        }
        out[merged] = out[i];
        merged += 1;
    }
    Ok(merged)
}
