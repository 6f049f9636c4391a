//! Bare-metal configuration space access: legacy port I/O and memory-mapped ECAM.

use x86_64::instructions::port::Port;

use super::{Bdf, ConfigSpace};

/// Configuration mechanism #1 (PCI 3.0 section 3.2.2.3.2): write the address to 0xCF8,
/// move data through 0xCFC. Covers offsets 0..256.
pub struct PortConfigSpace {
    address: Port<u32>,
    data: Port<u32>,
}

impl PortConfigSpace {
    /// Take the 0xCF8/0xCFC pair.
    ///
    /// # Safety
    /// The caller must hold the only `PortConfigSpace` (the address/data sequence is not
    /// atomic) and run on a platform with configuration mechanism #1 (every PC chipset).
    pub unsafe fn new() -> Self {
        Self {
            address: Port::new(0xcf8),
            data: Port::new(0xcfc),
        }
    }

    fn select(&mut self, bdf: Bdf, offset: u16) {
        let address = 0x8000_0000
            | (u32::from(bdf.bus) << 16)
            | (u32::from(bdf.device) << 11)
            | (u32::from(bdf.function) << 8)
            | u32::from(offset & 0xfc);
        // SAFETY: writing the configuration address register only selects a dword; it has no
        // other side effect, and `new`'s contract makes this the only user of the pair.
        unsafe { self.address.write(address) }
    }
}

impl ConfigSpace for PortConfigSpace {
    fn read32(&mut self, bdf: Bdf, offset: u16) -> u32 {
        self.select(bdf, offset);
        // SAFETY: reading 0xCFC after selecting an address reads configuration space, which
        // for an absent function returns all ones.
        unsafe { self.data.read() }
    }

    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) {
        self.select(bdf, offset);
        // SAFETY: the callers in `net::pci` only write BARs (restored after probing) and the
        // command register; see `new` for exclusivity.
        unsafe { self.data.write(value) }
    }
}

/// Enhanced configuration access (PCIe base spec section 7.2.2): each function's 4 KiB of
/// configuration space is memory-mapped at `base + (bus << 20 | device << 15 | fn << 12)`.
pub struct EcamConfigSpace {
    base: usize,
    start_bus: u8,
    end_bus: u8,
}

impl EcamConfigSpace {
    /// An ECAM window from ACPI MCFG: `base` is the address of `start_bus`'s configuration
    /// space and must be reachable at that virtual address (the identity map).
    ///
    /// # Safety
    /// `base .. base + (end_bus - start_bus + 1) MiB` must be the ECAM region of this
    /// machine, mapped (uncached, as MMIO) at the same virtual address, and not used by
    /// anything else for ordinary memory.
    pub unsafe fn new(base: u64, start_bus: u8, end_bus: u8) -> Self {
        Self {
            base: base as usize,
            start_bus,
            end_bus,
        }
    }

    fn address(&self, bdf: Bdf, offset: u16) -> Option<*mut u32> {
        if bdf.bus < self.start_bus || bdf.bus > self.end_bus {
            return None;
        }
        let index = (usize::from(bdf.bus - self.start_bus) << 20)
            | (usize::from(bdf.device) << 15)
            | (usize::from(bdf.function) << 12)
            | usize::from(offset & 0xffc);
        Some((self.base + index) as *mut u32)
    }
}

impl ConfigSpace for EcamConfigSpace {
    fn read32(&mut self, bdf: Bdf, offset: u16) -> u32 {
        match self.address(bdf, offset) {
            // SAFETY: the address is inside the ECAM window (bus range checked above), which
            // `new`'s contract says is mapped; the pointer is 4-byte aligned.
            Some(pointer) => unsafe { pointer.read_volatile() },
            None => 0xffff_ffff,
        }
    }

    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) {
        if let Some(pointer) = self.address(bdf, offset) {
            // SAFETY: as for `read32`; configuration writes have device-defined effects that
            // the callers in `net::pci` limit to BAR probing and the command register.
            unsafe { pointer.write_volatile(value) }
        }
    }
}
