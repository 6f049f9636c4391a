//! Bus enumeration: depth-first from bus 0 through PCI-to-PCI bridges.
//!
//! Only buses that are actually reachable are scanned: bus 0, the buses behind each bridge's
//! secondary bus number (PCI-to-PCI Bridge spec 1.2, section 3.2.5.3), and, when the host
//! bridge at 00:00.0 is multi-function, bus N for its function N (the convention for
//! multiple host controllers). Functions 1..8 are probed only when function 0 says the
//! device is multi-function (header type bit 7, PCI 3.0 section 6.2.1).

use alloc::vec::Vec;

use super::bar::{Bar, probe_bars};
use super::{Bdf, ConfigSpace, reg};

/// One function found during enumeration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// Where it lives.
    pub bdf: Bdf,
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Base class code.
    pub class: u8,
    /// Subclass code.
    pub subclass: u8,
    /// Programming interface.
    pub prog_if: u8,
    /// Revision ID.
    pub revision: u8,
    /// Header type without the multi-function bit (0 endpoint, 1 PCI bridge, 2 CardBus).
    pub header_type: u8,
    /// Decoded, implemented BARs.
    pub bars: Vec<Bar>,
    /// Legacy interrupt pin (0 = none, 1..4 = INTA..INTD).
    pub interrupt_pin: u8,
}

impl PciDevice {
    /// The memory BAR with slot `index`, if implemented.
    pub fn memory_bar(&self, index: u8) -> Option<&Bar> {
        self.bars
            .iter()
            .find(|bar| bar.index == index && bar.is_memory())
    }
}

/// Number of buses a configuration space can address.
const BUS_COUNT: usize = 256;

struct Walker<'a> {
    cfg: &'a mut dyn ConfigSpace,
    visited: [bool; BUS_COUNT],
    found: Vec<PciDevice>,
}

impl Walker<'_> {
    fn scan_bus(&mut self, bus: u8) {
        // Guard against bridges misprogrammed into a loop.
        if core::mem::replace(&mut self.visited[usize::from(bus)], true) {
            return;
        }
        for device in 0..32 {
            self.scan_device(bus, device);
        }
    }

    fn scan_device(&mut self, bus: u8, device: u8) {
        let bdf = Bdf::new(bus, device, 0);
        if self.vendor(bdf).is_none() {
            return;
        }
        let multi_function = self.cfg.read8(bdf, reg::HEADER_TYPE_DWORD + 2) & 0x80 != 0;
        self.scan_function(bdf);
        if multi_function {
            for function in 1..8 {
                let bdf = Bdf::new(bus, device, function);
                if self.vendor(bdf).is_some() {
                    self.scan_function(bdf);
                }
            }
        }
    }

    fn vendor(&mut self, bdf: Bdf) -> Option<u16> {
        let vendor = self.cfg.read16(bdf, reg::ID);
        (vendor != 0xffff).then_some(vendor)
    }

    fn scan_function(&mut self, bdf: Bdf) {
        let id = self.cfg.read32(bdf, reg::ID);
        let class = self.cfg.read32(bdf, reg::CLASS_REVISION);
        let header_type = self.cfg.read8(bdf, reg::HEADER_TYPE_DWORD + 2) & 0x7f;
        let bar_count = match header_type {
            0 => 6,
            1 => 2,
            _ => 0,
        };
        let bars = probe_bars(self.cfg, bdf, bar_count);
        let interrupt_pin = self.cfg.read8(bdf, reg::INTERRUPT + 1);
        let [revision, prog_if, subclass, class_code] = class.to_le_bytes();
        self.found.push(PciDevice {
            bdf,
            vendor_id: id as u16,
            device_id: (id >> 16) as u16,
            class: class_code,
            subclass,
            prog_if,
            revision,
            header_type,
            bars,
            interrupt_pin,
        });

        if header_type == 1 {
            let secondary = self.cfg.read8(bdf, reg::BRIDGE_BUS_NUMBERS + 1);
            // Secondary bus 0 means firmware left the bridge unconfigured.
            if secondary != 0 {
                self.scan_bus(secondary);
            }
        } else if bdf.bus == 0 && bdf.device == 0 && bdf.function != 0 && class_code == 0x06 {
            // Additional host bridges: function N of 00:00 is the root of bus N.
            self.scan_bus(bdf.function);
        }
    }
}

/// Enumerate every reachable function, in depth-first order from bus 0.
pub fn enumerate(cfg: &mut dyn ConfigSpace) -> Vec<PciDevice> {
    let mut walker = Walker {
        cfg,
        visited: [false; BUS_COUNT],
        found: Vec::new(),
    };
    walker.scan_bus(0);
    walker.found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::pci::fake::{FakeBar, FakeConfigSpace, FakeFunction};

    fn q35_like() -> FakeConfigSpace {
        let mut space = FakeConfigSpace::new();
        space.insert(
            Bdf::new(0, 0, 0),
            FakeFunction::endpoint(0x8086, 0x29c0, 0x06_00_00),
        );
        let mut nic = FakeFunction::endpoint(0x8086, 0x100e, 0x02_00_00);
        nic.bars[0] = FakeBar::Mem32 {
            address: 0xfebc_0000,
            size: 128 * 1024,
            prefetchable: false,
        };
        nic.bars[1] = FakeBar::Io {
            address: 0xc000,
            size: 64,
        };
        space.insert(Bdf::new(0, 2, 0), nic);
        // A multi-function device with a hole at function 1.
        space.insert(
            Bdf::new(0, 0x1f, 0),
            FakeFunction::endpoint(0x8086, 0x2918, 0x06_01_00).multi_function(),
        );
        space.insert(
            Bdf::new(0, 0x1f, 2),
            FakeFunction::endpoint(0x8086, 0x2922, 0x01_06_01),
        );
        space.insert(
            Bdf::new(0, 0x1f, 3),
            FakeFunction::endpoint(0x8086, 0x2930, 0x0c_05_00),
        );
        // A bridge to bus 5 with a virtio NIC behind it.
        space.insert(Bdf::new(0, 0x1c, 0), FakeFunction::bridge(0, 5, 5));
        space.insert(
            Bdf::new(5, 0, 0),
            FakeFunction::endpoint(0x1af4, 0x1000, 0x02_00_00),
        );
        // Unreachable: nothing points at bus 9.
        space.insert(
            Bdf::new(9, 0, 0),
            FakeFunction::endpoint(0x1234, 0x1111, 0x03_00_00),
        );
        space
    }

    #[test]
    fn finds_functions_behind_bridges_and_multi_function_devices() {
        let mut space = q35_like();
        let devices = enumerate(&mut space);
        let found: Vec<(Bdf, u16)> = devices.iter().map(|d| (d.bdf, d.device_id)).collect();
        assert_eq!(
            found,
            [
                (Bdf::new(0, 0, 0), 0x29c0),
                (Bdf::new(0, 2, 0), 0x100e),
                (Bdf::new(0, 0x1c, 0), 0x2448),
                (Bdf::new(5, 0, 0), 0x1000),
                (Bdf::new(0, 0x1f, 0), 0x2918),
                (Bdf::new(0, 0x1f, 2), 0x2922),
                (Bdf::new(0, 0x1f, 3), 0x2930),
            ]
        );
        let nic = &devices[1];
        assert_eq!((nic.class, nic.subclass), (0x02, 0x00));
        assert_eq!(nic.memory_bar(0).map(|b| b.address), Some(0xfebc_0000));
        assert_eq!(nic.bars.len(), 2);
        assert_eq!(devices[2].header_type, 1);
    }

    #[test]
    fn single_function_devices_are_not_probed_beyond_function_0() {
        let mut space = FakeConfigSpace::new();
        // Function 3 exists but function 0 does not claim multi-function: ignore it.
        space.insert(
            Bdf::new(0, 1, 0),
            FakeFunction::endpoint(0x8086, 0x100e, 0x02_00_00),
        );
        space.insert(
            Bdf::new(0, 1, 3),
            FakeFunction::endpoint(0x8086, 0x100f, 0x02_00_00),
        );
        let devices = enumerate(&mut space);
        assert_eq!(devices.len(), 1);
    }

    #[test]
    fn bridge_loops_terminate() {
        let mut space = FakeConfigSpace::new();
        space.insert(Bdf::new(0, 1, 0), FakeFunction::bridge(0, 1, 1));
        space.insert(Bdf::new(1, 0, 0), FakeFunction::bridge(1, 0, 0));
        space.insert(Bdf::new(1, 1, 0), FakeFunction::bridge(1, 1, 1));
        let devices = enumerate(&mut space);
        assert_eq!(devices.len(), 3);
        // Two buses of 32 slots plus per-function reads: far from a 256-bus brute force.
        assert!(space.reads < 2 * 32 * 2 + 3 * 64, "reads: {}", space.reads);
    }

    #[test]
    fn empty_space_yields_nothing() {
        let mut space = FakeConfigSpace::new();
        assert!(enumerate(&mut space).is_empty());
    }
}
