//! The e820 memory map a Linux VM gets in `boot_params` (ACPI 6.5 §15, "System Address
//! Map Interfaces"; the layout of `struct boot_e820_entry` in Linux's bootparam.h).
//!
//! RAM is guest-physical 0..size, as every tern VM's. The map says:
//! - RAM below 640 KiB; reserved 0xA0000-0xFFFFF (the legacy VGA/BIOS hole, where the
//!   ACPI tables sit); RAM from 1 MiB to the end;
//! - reserved: the I/O APIC page 0xFEC00000 and the local APIC page 0xFEE00000, and any
//!   MMIO window a device model adds (virtio-mmio), so Linux never puts RAM there.
//!
//! The result is sorted and its entries do not overlap (checked by construction and in
//! the tests).

use alloc::vec::Vec;

use super::LinuxBootError;
use super::layout::HIGH_MEMORY;
use crate::vm::ioapic::DEFAULT_IOAPIC_BASE;
use crate::vm::lapic::DEFAULT_APIC_BASE_ADDRESS;

/// Usable RAM.
pub const E820_RAM: u32 = 1;
/// Reserved.
pub const E820_RESERVED: u32 = 2;
/// Entries `boot_params` has room for (`E820_MAX_ENTRIES_ZEROPAGE`).
pub const MAX_ENTRIES: usize = 128;
/// End of conventional memory (640 KiB).
const LOW_RAM_END: u64 = 0xa_0000;

/// One map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// [`E820_RAM`] or [`E820_RESERVED`].
    pub kind: u32,
}

impl E820Entry {
    fn end(&self) -> u64 {
        self.addr + self.size
    }
}

/// The map for `ram` bytes of RAM plus `windows` (start, length) reserved for MMIO.
pub fn memory_map(ram: u64, windows: &[(u64, u64)]) -> Result<Vec<E820Entry>, LinuxBootError> {
    if ram <= HIGH_MEMORY {
        return Err(LinuxBootError::DoesNotFit {
            what: "RAM above 1 MiB",
            need: HIGH_MEMORY * 2,
            have: ram,
        });
    }
    let mut map = Vec::with_capacity(5 + windows.len());
    let entry = |addr, size, kind| E820Entry { addr, size, kind };
    map.push(entry(0, LOW_RAM_END, E820_RAM));
    map.push(entry(LOW_RAM_END, HIGH_MEMORY - LOW_RAM_END, E820_RESERVED));
    map.push(entry(HIGH_MEMORY, ram - HIGH_MEMORY, E820_RAM));
    map.push(entry(DEFAULT_IOAPIC_BASE, 0x1000, E820_RESERVED));
    map.push(entry(DEFAULT_APIC_BASE_ADDRESS, 0x1000, E820_RESERVED));
    for &(start, len) in windows {
        if len == 0 || start.checked_add(len).is_none() {
            return Err(LinuxBootError::BadReservedWindow { start });
        }
        map.push(entry(start, len, E820_RESERVED));
    }
    map.sort();
    if map.len() > MAX_ENTRIES || map.windows(2).any(|w| w[0].end() > w[1].addr) {
        let culprit = windows.first().map_or(0, |w| w.0);
        return Err(LinuxBootError::BadReservedWindow { start: culprit });
    }
    Ok(map)
}
