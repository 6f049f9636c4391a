//! PCI configuration space: addressing, enumeration, BAR decoding and the `pci` listing.
//!
//! Why a trait: the hypervisor reaches configuration space through the legacy 0xCF8/0xCFC
//! mechanism (every PC chipset, QEMU and Bochs) or through ECAM where ACPI's MCFG table offers
//! it. Enumeration and BAR probing do not care which; writing them against [`ConfigSpace`]
//! lets the host tests run them over `fake::FakeConfigSpace`, a configuration space that
//! behaves like real BARs (size masks, read-only type bits).
//!
//! References: PCI Local Bus Specification 3.0, section 6.1 (configuration header), 6.2.5
//! (base address registers, sizing by writing all ones), 3.2.2.3.2 (configuration mechanism
//! #1); PCI-to-PCI Bridge Architecture Specification 1.2, section 3.2 (bus number registers).

mod bar;
mod enumerate;
mod listing;
#[cfg(target_os = "none")]
mod port_io;

#[cfg(test)]
pub mod fake;

pub use bar::{Bar, BarKind, probe_bars};
pub use enumerate::{PciDevice, enumerate};
pub use listing::{FormatSize, device_name, format_device, format_size};
#[cfg(target_os = "none")]
pub use port_io::{EcamConfigSpace, PortConfigSpace};

use core::fmt;

/// A PCI function address: bus, device (0..32), function (0..8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..32.
    pub device: u8,
    /// Function number, 0..8.
    pub function: u8,
}

impl Bdf {
    /// A function address; `device` and `function` are masked to their 5 and 3 bits.
    pub const fn new(bus: u8, device: u8, function: u8) -> Self {
        Self {
            bus,
            device: device & 0x1f,
            function: function & 0x7,
        }
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Access to PCI configuration space, one aligned dword at a time.
///
/// `offset` is a byte offset, dword aligned (low two bits ignored), below 256 for the legacy
/// mechanism and below 4096 for ECAM. Reading a function that does not exist returns all
/// ones, as the hardware does.
pub trait ConfigSpace {
    /// Read the dword at `offset` of function `bdf`.
    fn read32(&mut self, bdf: Bdf, offset: u16) -> u32;
    /// Write the dword at `offset` of function `bdf`.
    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32);

    /// Read the 16-bit word at `offset` (2-byte aligned).
    fn read16(&mut self, bdf: Bdf, offset: u16) -> u16 {
        let dword = self.read32(bdf, offset & !3);
        (dword >> ((offset & 2) * 8)) as u16
    }

    /// Read the byte at `offset`.
    fn read8(&mut self, bdf: Bdf, offset: u16) -> u8 {
        let dword = self.read32(bdf, offset & !3);
        (dword >> ((offset & 3) * 8)) as u8
    }
}

/// Standard configuration header offsets (PCI 3.0, section 6.1).
pub mod reg {
    /// Vendor ID (low 16 bits) and device ID (high 16 bits).
    pub const ID: u16 = 0x00;
    /// Command (low 16 bits) and status (high 16 bits).
    pub const COMMAND_STATUS: u16 = 0x04;
    /// Revision (byte 0), programming interface, subclass, class code (byte 3).
    pub const CLASS_REVISION: u16 = 0x08;
    /// Cache line, latency timer, header type (byte 2), BIST.
    pub const HEADER_TYPE_DWORD: u16 = 0x0c;
    /// First base address register.
    pub const BAR0: u16 = 0x10;
    /// Bridges: primary (byte 0), secondary (byte 1), subordinate (byte 2) bus numbers.
    pub const BRIDGE_BUS_NUMBERS: u16 = 0x18;
    /// Interrupt line (byte 0) and pin (byte 1).
    pub const INTERRUPT: u16 = 0x3c;
}

/// Command register bits (PCI 3.0, section 6.2.2).
pub mod command {
    /// Respond to I/O space accesses.
    pub const IO_SPACE: u16 = 1 << 0;
    /// Respond to memory space accesses.
    pub const MEMORY_SPACE: u16 = 1 << 1;
    /// Allow the function to master the bus (DMA).
    pub const BUS_MASTER: u16 = 1 << 2;
    /// Disable the legacy INTx interrupt line.
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// Set bits in a function's command register, keeping the others and leaving the status
/// half (write-one-to-clear bits) untouched.
pub fn enable_command_bits(cfg: &mut dyn ConfigSpace, bdf: Bdf, bits: u16) {
    let dword = cfg.read32(bdf, reg::COMMAND_STATUS);
    let command = (dword as u16) | bits;
    // Writing zeros to the status half leaves its RW1C bits alone.
    cfg.write32(bdf, reg::COMMAND_STATUS, u32::from(command));
}

/// Enable memory decoding and bus mastering (what a DMA-capable NIC needs), and mask INTx
/// since our drivers poll.
pub fn enable_memory_and_bus_master(cfg: &mut dyn ConfigSpace, bdf: Bdf) {
    enable_command_bits(
        cfg,
        bdf,
        command::MEMORY_SPACE | command::BUS_MASTER | command::INTX_DISABLE,
    );
}
