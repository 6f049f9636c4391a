//! The `pci` console listing: one line per function.
//!
//! Example: `00:03.0 8086:100e class 02.00 e1000 (82540EM) BAR0 mem32 0xfebc0000 (128 KiB)`.

use core::fmt::{self, Write};

use super::bar::{Bar, BarKind};
use super::enumerate::PciDevice;

/// A human name for well-known functions, else for the class.
pub fn device_name(device: &PciDevice) -> &'static str {
    match (device.vendor_id, device.device_id) {
        (0x8086, 0x100e) => "e1000 (82540EM)",
        (0x8086, 0x100f) => "e1000 (82545EM)",
        (0x8086, 0x29c0) => "q35 host bridge",
        (0x8086, 0x1237) => "i440FX host bridge",
        (0x8086, 0x2918) => "ICH9 LPC bridge",
        (0x8086, 0x2922) => "ICH9 AHCI",
        (0x8086, 0x2930) => "ICH9 SMBus",
        (0x8086, 0x7000) => "PIIX3 ISA bridge",
        (0x8086, 0x7010) => "PIIX3 IDE",
        (0x8086, 0x7113) => "PIIX4 ACPI",
        (0x1af4, 0x1000) | (0x1af4, 0x1041) => "virtio-net",
        (0x1234, 0x1111) => "VGA (bochs-display)",
        _ => class_name(device.class, device.subclass),
    }
}

fn class_name(class: u8, subclass: u8) -> &'static str {
    match (class, subclass) {
        (0x01, 0x01) => "IDE controller",
        (0x01, 0x06) => "SATA controller",
        (0x01, 0x08) => "NVMe controller",
        (0x01, _) => "storage controller",
        (0x02, 0x00) => "Ethernet controller",
        (0x02, _) => "network controller",
        (0x03, _) => "display controller",
        (0x06, 0x00) => "host bridge",
        (0x06, 0x01) => "ISA bridge",
        (0x06, 0x04) => "PCI bridge",
        (0x06, _) => "bridge",
        (0x0c, 0x03) => "USB controller",
        (0x0c, 0x05) => "SMBus controller",
        _ => "device",
    }
}

/// Format a byte count the way an operator reads it: `64 B`, `128 KiB`, `16 MiB`, `4 GiB`.
pub struct FormatSize(pub u64);

impl fmt::Display for FormatSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0;
        let mut unit = 0;
        while unit + 1 < UNITS.len() && value >= 1024 && value.is_multiple_of(1024) {
            value /= 1024;
            unit += 1;
        }
        write!(f, "{value} {}", UNITS[unit])
    }
}

/// Shorthand for [`FormatSize`].
pub fn format_size(bytes: u64) -> FormatSize {
    FormatSize(bytes)
}

fn write_bar(out: &mut dyn Write, bar: &Bar) -> fmt::Result {
    let kind = match bar.kind {
        BarKind::Io => "io",
        BarKind::Mem32 {
            prefetchable: false,
        } => "mem32",
        BarKind::Mem32 { prefetchable: true } => "mem32 pf",
        BarKind::Mem64 {
            prefetchable: false,
        } => "mem64",
        BarKind::Mem64 { prefetchable: true } => "mem64 pf",
    };
    write!(
        out,
        "BAR{} {kind} {:#x} ({})",
        bar.index,
        bar.address,
        FormatSize(bar.size)
    )
}

/// Write one listing line (without a trailing newline).
pub fn format_device(out: &mut dyn Write, device: &PciDevice) -> fmt::Result {
    write!(
        out,
        "{} {:04x}:{:04x} class {:02x}.{:02x} {}",
        device.bdf,
        device.vendor_id,
        device.device_id,
        device.class,
        device.subclass,
        device_name(device)
    )?;
    for (i, bar) in device.bars.iter().enumerate() {
        out.write_str(if i == 0 { " " } else { ", " })?;
        write_bar(out, bar)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::pci::Bdf;
    use alloc::string::String;
    use alloc::vec;

    #[test]
    fn formats_the_e1000_line() {
        let device = PciDevice {
            bdf: Bdf::new(0, 3, 0),
            vendor_id: 0x8086,
            device_id: 0x100e,
            class: 2,
            subclass: 0,
            prog_if: 0,
            revision: 3,
            header_type: 0,
            bars: vec![
                Bar {
                    index: 0,
                    kind: BarKind::Mem32 {
                        prefetchable: false,
                    },
                    address: 0xfebc_0000,
                    size: 0x2_0000,
                },
                Bar {
                    index: 1,
                    kind: BarKind::Io,
                    address: 0xc000,
                    size: 64,
                },
            ],
            interrupt_pin: 1,
        };
        let mut line = String::new();
        format_device(&mut line, &device).unwrap();
        assert_eq!(
            line,
            "00:03.0 8086:100e class 02.00 e1000 (82540EM) BAR0 mem32 0xfebc0000 (128 KiB), \
             BAR1 io 0xc000 (64 B)"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(alloc::format!("{}", FormatSize(0)), "0 B");
        assert_eq!(alloc::format!("{}", FormatSize(3 << 20)), "3 MiB");
        assert_eq!(alloc::format!("{}", FormatSize(1536)), "1536 B");
        assert_eq!(alloc::format!("{}", FormatSize(1 << 32)), "4 GiB");
    }
}
