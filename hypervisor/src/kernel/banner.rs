//! The boot banner: what the operator sees first on the serial console. Portable so its
//! format (which system tests match) is tested on the host.

use core::fmt::Write;

use crate::memory::MemoryTotals;

/// The version line's prefix; system tests match `tern hypervisor`.
pub const PRODUCT: &str = "tern hypervisor";
/// This build's version (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const MIB: u64 = 1 << 20;

/// Figures for the banner's memory line.
#[derive(Clone, Copy, Debug)]
pub struct MemorySummary {
    pub totals: MemoryTotals,
    pub heap_bytes: u64,
    pub image_bytes: u64,
    pub module_count: usize,
}

/// `tern hypervisor 0.1.0`.
pub fn write_version(out: &mut dyn Write) -> core::fmt::Result {
    write!(out, "{PRODUCT} {VERSION}")
}

/// `memory: 1000 MiB usable, 24 MiB reserved, 1024 MiB total RAM, 256 MiB firmware/MMIO; heap
/// 32 MiB; image 2 KiB; 1 module`. "usable" is what the frame allocator manages; "reserved" is
/// RAM held by tern's image, boot data, modules, the loader and ACPI tables.
pub fn write_memory_line(out: &mut dyn Write, m: &MemorySummary) -> core::fmt::Result {
    let usable = m.totals.managed_bytes;
    let reserved = m.totals.reserved_bytes;
    write!(
        out,
        "memory: {} MiB usable, {} MiB reserved, {} MiB total RAM, {} MiB firmware/MMIO; heap {} MiB; image {} KiB; {} module{}",
        usable / MIB,
        reserved / MIB,
        (usable + reserved) / MIB,
        m.totals.firmware_reserved_bytes / MIB,
        m.heap_bytes / MIB,
        m.image_bytes.div_ceil(1024),
        m.module_count,
        if m.module_count == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn version_and_memory_lines() {
        let mut s = String::new();
        write_version(&mut s).unwrap();
        assert_eq!(
            s,
            alloc::format!("tern hypervisor {}", env!("CARGO_PKG_VERSION"))
        );
        let m = MemorySummary {
            totals: MemoryTotals {
                managed_bytes: 1000 * MIB,
                reserved_bytes: 24 * MIB,
                firmware_reserved_bytes: 256 * MIB + 1,
                ..MemoryTotals::default()
            },
            heap_bytes: 32 * MIB,
            image_bytes: 1500,
            module_count: 1,
        };
        let mut s = String::new();
        write_memory_line(&mut s, &m).unwrap();
        assert_eq!(
            s,
            "memory: 1000 MiB usable, 24 MiB reserved, 1024 MiB total RAM, 256 MiB firmware/MMIO; heap 32 MiB; image 2 KiB; 1 module"
        );
    }
}
