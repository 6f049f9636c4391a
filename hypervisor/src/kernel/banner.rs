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

/// `memory: 1000 MiB usable, 2.5 MiB reserved, 1002 MiB total RAM, 256 MiB firmware/MMIO; heap
/// 32 MiB; image 2 KiB; 1 module`. "usable" is what the frame allocator manages; "reserved" is
/// RAM held by tern's image, boot data, modules, the loader and ACPI tables.
pub fn write_memory_line(out: &mut dyn Write, m: &MemorySummary) -> core::fmt::Result {
    let usable = m.totals.managed_bytes;
    let reserved = m.totals.reserved_bytes;
    write!(
        out,
        "memory: {} usable, {} reserved, {} total RAM, {} firmware/MMIO; heap {}; image {}; {} module{}",
        Size(usable),
        Size(reserved),
        Size(usable + reserved),
        Size(m.totals.firmware_reserved_bytes),
        Size(m.heap_bytes),
        Size(m.image_bytes),
        m.module_count,
        if m.module_count == 1 { "" } else { "s" },
    )
}

/// A byte count for people: whole MiB from 10 MiB up, else MiB with one decimal, else KiB.
pub struct Size(pub u64);

impl core::fmt::Display for Size {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.0;
        if b >= 10 * MIB {
            write!(f, "{} MiB", b / MIB)
        } else if b >= MIB {
            write!(f, "{}.{} MiB", b / MIB, (b % MIB) * 10 / MIB)
        } else {
            write!(f, "{} KiB", b.div_ceil(1024))
        }
    }
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
                reserved_bytes: 5 * MIB / 2,
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
            "memory: 1000 MiB usable, 2.5 MiB reserved, 1002 MiB total RAM, 256 MiB firmware/MMIO; heap 32 MiB; image 2 KiB; 1 module"
        );
    }

    #[test]
    fn sizes_pick_a_readable_unit() {
        let f = |b| alloc::format!("{}", Size(b));
        assert_eq!(f(0), "0 KiB");
        assert_eq!(f(1), "1 KiB");
        assert_eq!(f(MIB - 1), "1024 KiB");
        assert_eq!(f(MIB), "1.0 MiB");
        assert_eq!(f(MIB * 3 / 2), "1.5 MiB");
        assert_eq!(f(10 * MIB + 5), "10 MiB");
    }
}
