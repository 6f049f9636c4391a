//! The MCFG table: where PCI Express enhanced configuration access (ECAM) is mapped.
//!
//! Layout (PCI Firmware Specification 3.2, section 4.1.2): the 36-byte system description
//! header, 8 reserved bytes, then 16-byte allocation entries of base address (u64), PCI
//! segment group (u16), start bus (u8), end bus (u8) and 4 reserved bytes. Machines without
//! PCIe (Bochs' i440FX) have no MCFG; tern then uses the legacy 0xCF8/0xCFC ports.

use alloc::vec::Vec;

use super::tables::{AcpiError, PhysMemory, read_table, root_table_entries};

const HEADER_LEN: usize = 36 + 8;
const ENTRY_LEN: usize = 16;

/// One ECAM window: bus `start_bus` of `segment` is at `base`, 1 MiB per bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcamRegion {
    /// Physical address of `start_bus`'s configuration space.
    pub base: u64,
    /// PCI segment group.
    pub segment: u16,
    /// First bus decoded.
    pub start_bus: u8,
    /// Last bus decoded.
    pub end_bus: u8,
}

impl EcamRegion {
    /// Bytes the window spans (1 MiB per bus).
    pub fn len(&self) -> u64 {
        (u64::from(self.end_bus) - u64::from(self.start_bus) + 1) << 20
    }

    /// Never empty (at least one bus); here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The allocation entries of an MCFG table (header included in `table`). Entries with an
/// end bus below the start bus or a zero base are skipped: firmware data is not trusted.
pub fn parse_mcfg(table: &[u8]) -> Vec<EcamRegion> {
    let Some(entries) = table.get(HEADER_LEN..) else {
        return Vec::new();
    };
    entries
        .chunks_exact(ENTRY_LEN)
        .filter_map(|e| {
            let mut base = [0u8; 8];
            base.copy_from_slice(&e[..8]);
            let region = EcamRegion {
                base: u64::from_le_bytes(base),
                segment: u16::from_le_bytes([e[8], e[9]]),
                start_bus: e[10],
                end_bus: e[11],
            };
            (region.base != 0 && region.end_bus >= region.start_bus).then_some(region)
        })
        .collect()
}

/// The ECAM windows the firmware describes; empty without an MCFG table.
pub fn find_ecam(mem: &dyn PhysMemory, rsdp_phys: u64) -> Result<Vec<EcamRegion>, AcpiError> {
    for phys in root_table_entries(mem, rsdp_phys)? {
        let mut signature = [0u8; 4];
        if mem.read(phys, &mut signature).is_err() || &signature != b"MCFG" {
            continue;
        }
        return Ok(parse_mcfg(&read_table(mem, phys)?));
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn mcfg(entries: &[(u64, u16, u8, u8)]) -> Vec<u8> {
        let mut t = vec![0u8; HEADER_LEN];
        t[..4].copy_from_slice(b"MCFG");
        for &(base, segment, start, end) in entries {
            t.extend_from_slice(&base.to_le_bytes());
            t.extend_from_slice(&segment.to_le_bytes());
            t.extend_from_slice(&[start, end, 0, 0, 0, 0]);
        }
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t
    }

    #[test]
    fn reads_the_q35_window_and_skips_nonsense() {
        let table = mcfg(&[
            (0xb000_0000, 0, 0, 0xff),
            (0, 0, 0, 1),
            (0xe000_0000, 1, 5, 4),
        ]);
        let regions = parse_mcfg(&table);
        assert_eq!(
            regions,
            [EcamRegion {
                base: 0xb000_0000,
                segment: 0,
                start_bus: 0,
                end_bus: 0xff
            }]
        );
        assert_eq!(regions[0].len(), 256 << 20);
        // A truncated table yields nothing rather than a partial entry.
        assert!(parse_mcfg(&table[..HEADER_LEN + 10]).is_empty());
        assert!(parse_mcfg(&table[..20]).is_empty());
    }
}
