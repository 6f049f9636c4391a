//! Base address registers: decoding and size probing.
//!
//! PCI 3.0 section 6.2.5.1: bit 0 tells I/O from memory; memory BARs carry a type in bits
//! 2:1 (00 = 32-bit, 10 = 64-bit, using the next BAR as the high half) and a prefetchable bit
//! 3. The size is found by writing all ones, reading back which address bits stuck, and
//! restoring the original value. Decoding is switched off in the command register during the
//! probe so that the device never answers at the transient all-ones address.

use alloc::vec::Vec;

use super::{Bdf, ConfigSpace, command, reg};

/// What address space a BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// Port I/O space.
    Io,
    /// 32-bit memory space.
    Mem32 {
        /// Reads have no side effects (may be mapped write-combining).
        prefetchable: bool,
    },
    /// 64-bit memory space (occupies two BAR slots).
    Mem64 {
        /// Reads have no side effects (may be mapped write-combining).
        prefetchable: bool,
    },
}

/// One decoded, implemented base address register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// BAR slot number (0..6); a 64-bit BAR reports its low slot.
    pub index: u8,
    /// Address space.
    pub kind: BarKind,
    /// Base address as programmed by firmware.
    pub address: u64,
    /// Size of the decoded window in bytes (a power of two).
    pub size: u64,
}

impl Bar {
    /// Whether this is a memory BAR (32 or 64-bit).
    pub fn is_memory(&self) -> bool {
        !matches!(self.kind, BarKind::Io)
    }
}

/// Write all ones to the BAR at `offset`, read what stuck, restore the original.
fn probe_dword(cfg: &mut dyn ConfigSpace, bdf: Bdf, offset: u16) -> (u32, u32) {
    let original = cfg.read32(bdf, offset);
    cfg.write32(bdf, offset, 0xffff_ffff);
    let mask = cfg.read32(bdf, offset);
    cfg.write32(bdf, offset, original);
    (original, mask)
}

/// Decode and size the first `count` BARs (6 for a type-0 header, 2 for a bridge).
///
/// Unimplemented BARs (reading back zero) are skipped. Memory and I/O decoding are disabled
/// during the probe and the command register is restored afterwards.
pub fn probe_bars(cfg: &mut dyn ConfigSpace, bdf: Bdf, count: u8) -> Vec<Bar> {
    let command_dword = cfg.read32(bdf, reg::COMMAND_STATUS);
    let command = command_dword as u16;
    let decode = command::IO_SPACE | command::MEMORY_SPACE;
    if command & decode != 0 {
        cfg.write32(bdf, reg::COMMAND_STATUS, u32::from(command & !decode));
    }

    let mut bars = Vec::new();
    let mut index = 0u8;
    while index < count {
        let offset = reg::BAR0 + u16::from(index) * 4;
        let (original, mask) = probe_dword(cfg, bdf, offset);
        let this = index;
        index += 1;
        if mask == 0 {
            continue;
        }
        if original & 1 == 1 {
            // I/O BAR: bits 31:2 are the address; the upper 16 bits may read back as zero.
            let size_mask = mask & 0xffff_fffc;
            let size = u64::from((!size_mask).wrapping_add(1) & 0xffff);
            if size != 0 {
                bars.push(Bar {
                    index: this,
                    kind: BarKind::Io,
                    address: u64::from(original & 0xffff_fffc),
                    size,
                });
            }
            continue;
        }
        let prefetchable = original & 0x8 != 0;
        let low_address = u64::from(original & 0xffff_fff0);
        match (original >> 1) & 0x3 {
            0b10 if index < count => {
                // 64-bit: the next slot holds the high dword of address and mask.
                let high_offset = reg::BAR0 + u16::from(index) * 4;
                let (high, high_mask) = probe_dword(cfg, bdf, high_offset);
                index += 1;
                let full_mask = (u64::from(high_mask) << 32) | u64::from(mask & 0xffff_fff0);
                let size = (!full_mask).wrapping_add(1);
                if full_mask != 0 && size != 0 {
                    bars.push(Bar {
                        index: this,
                        kind: BarKind::Mem64 { prefetchable },
                        address: (u64::from(high) << 32) | low_address,
                        size,
                    });
                }
            }
            0b00 => {
                let size_mask = mask & 0xffff_fff0;
                let size = u64::from((!size_mask).wrapping_add(1));
                if size_mask != 0 {
                    bars.push(Bar {
                        index: this,
                        kind: BarKind::Mem32 { prefetchable },
                        address: low_address,
                        size,
                    });
                }
            }
            // Reserved type (01, 11) or a 64-bit BAR in the last slot: not decodable.
            _ => {}
        }
    }

    if command & decode != 0 {
        cfg.write32(bdf, reg::COMMAND_STATUS, u32::from(command));
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::pci::fake::{FakeBar, FakeConfigSpace, FakeFunction};

    fn space_with(bars: [FakeBar; 6]) -> (FakeConfigSpace, Bdf) {
        let bdf = Bdf::new(0, 3, 0);
        let mut space = FakeConfigSpace::new();
        let mut function = FakeFunction::endpoint(0x8086, 0x100e, 0x02_00_00);
        function.bars = bars;
        function.set_command(command::MEMORY_SPACE | command::IO_SPACE);
        space.insert(bdf, function);
        (space, bdf)
    }

    #[test]
    fn decodes_mem32_io_and_mem64_and_restores_everything() {
        let (mut space, bdf) = space_with([
            FakeBar::Mem32 {
                address: 0xfebc_0000,
                size: 128 * 1024,
                prefetchable: false,
            },
            FakeBar::Io {
                address: 0xc000,
                size: 64,
            },
            FakeBar::Mem64 {
                address: 0x8_0000_0000,
                size: 1 << 20,
                prefetchable: true,
            },
            FakeBar::Mem64High,
            FakeBar::None,
            FakeBar::None,
        ]);
        let before: Vec<u32> = (0..16).map(|i| space.read32(bdf, i * 4)).collect();
        let bars = probe_bars(&mut space, bdf, 6);
        assert_eq!(
            bars,
            [
                Bar {
                    index: 0,
                    kind: BarKind::Mem32 {
                        prefetchable: false
                    },
                    address: 0xfebc_0000,
                    size: 0x2_0000
                },
                Bar {
                    index: 1,
                    kind: BarKind::Io,
                    address: 0xc000,
                    size: 64
                },
                Bar {
                    index: 2,
                    kind: BarKind::Mem64 { prefetchable: true },
                    address: 0x8_0000_0000,
                    size: 1 << 20
                },
            ]
        );
        let after: Vec<u32> = (0..16).map(|i| space.read32(bdf, i * 4)).collect();
        assert_eq!(
            before, after,
            "probing must restore BARs and the command register"
        );
        assert!(space.decode_disabled_during_bar_writes(bdf));
    }

    #[test]
    fn unimplemented_bars_are_skipped() {
        let (mut space, bdf) = space_with([
            FakeBar::None,
            FakeBar::None,
            FakeBar::None,
            FakeBar::None,
            FakeBar::None,
            FakeBar::Mem32 {
                address: 0x1000_0000,
                size: 4096,
                prefetchable: false,
            },
        ]);
        let bars = probe_bars(&mut space, bdf, 6);
        assert_eq!(bars.len(), 1);
        assert_eq!(bars[0].index, 5);
        assert_eq!(bars[0].size, 4096);
    }

    #[test]
    fn a_64bit_bar_in_the_last_slot_is_not_decoded() {
        let (mut space, bdf) = space_with([
            FakeBar::None,
            FakeBar::None,
            FakeBar::None,
            FakeBar::None,
            FakeBar::None,
            FakeBar::Mem64 {
                address: 0x1000_0000,
                size: 4096,
                prefetchable: false,
            },
        ]);
        assert!(probe_bars(&mut space, bdf, 6).is_empty());
    }
}
