//! Reading the few ACPI tables tern needs (RSDP, XSDT/RSDT, FADT, DSDT), portable over a
//! [`PhysMemory`] so that the whole walk is tested on the host with synthetic tables.
//!
//! Firmware tables are input we did not write: every length is bounded, every checksum is
//! checked (ACPI 6.5 §5.2.5.3 RSDP, §5.2.6 system description table header), and fields beyond
//! a table's stated length are treated as absent.

use alloc::vec;
use alloc::vec::Vec;

use super::s5::{S5Error, SleepType, find_s5};

/// Largest table we are willing to read (DSDTs of big servers are a few hundred KiB).
pub const MAX_TABLE_LEN: u32 = 4 << 20;
const SDT_HEADER_LEN: usize = 36;

/// Read access to physical memory.
pub trait PhysMemory {
    /// Fills `buf` from physical address `phys`, or refuses if the range is not readable.
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), AcpiError>;
}

/// Why the ACPI information could not be obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// The loader found no RSDP.
    NoRsdp,
    /// Memory at `phys` could not be read (outside the identity map).
    Unreadable { phys: u64 },
    /// The RSDP signature or checksum is wrong.
    BadRsdp,
    /// A table's signature, length or checksum is wrong.
    BadTable { signature: [u8; 4], phys: u64 },
    /// The root table lists no FADT (`FACP`).
    NoFadt,
    /// The FADT points at no DSDT.
    NoDsdt,
    /// `\_S5_` could not be decoded.
    S5(S5Error),
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AcpiError::NoRsdp => write!(f, "firmware provided no ACPI RSDP"),
            AcpiError::Unreadable { phys } => write!(f, "ACPI data at {phys:#x} is not mapped"),
            AcpiError::BadRsdp => write!(f, "ACPI RSDP signature or checksum is wrong"),
            AcpiError::BadTable { signature, phys } => write!(
                f,
                "ACPI table '{}' at {phys:#x} has a bad signature, length or checksum",
                core::str::from_utf8(signature).unwrap_or("????")
            ),
            AcpiError::NoFadt => write!(f, "no ACPI FADT"),
            AcpiError::NoDsdt => write!(f, "the ACPI FADT has no DSDT"),
            AcpiError::S5(e) => e.fmt(f),
        }
    }
}

/// Where a register lives (ACPI 6.5 §5.2.3.2 Generic Address Structure, address space IDs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterAddress {
    /// System I/O space (space ID 1).
    Io(u16),
    /// System memory space (space ID 0).
    Memory(u64),
}

impl RegisterAddress {
    /// Decodes a 12-byte Generic Address Structure; `None` for a zero address or an address
    /// space we do not drive (PCI configuration, embedded controller, ...).
    fn from_gas(gas: &[u8]) -> Option<RegisterAddress> {
        let space = *gas.first()?;
        let address = u64::from_le_bytes(gas.get(4..12)?.try_into().ok()?);
        match (space, address) {
            (_, 0) => None,
            (0, a) => Some(RegisterAddress::Memory(a)),
            (1, a) => u16::try_from(a).ok().map(RegisterAddress::Io),
            _ => None,
        }
    }
}

/// The FADT fields used for power control (ACPI 6.5 §5.2.9, Table 5.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fadt {
    /// Physical address of the DSDT (X_DSDT if set, else DSDT).
    pub dsdt: u64,
    /// PM1a control block (X_PM1a_CNT_BLK if set, else PM1a_CNT_BLK as an I/O port).
    pub pm1a_control: Option<RegisterAddress>,
    /// PM1b control block, if the platform has one.
    pub pm1b_control: Option<RegisterAddress>,
    /// RESET_REG and RESET_VALUE, if Flags.RESET_REG_SUP (bit 10) is set.
    pub reset: Option<(RegisterAddress, u8)>,
}

fn u32_at(t: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(t.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(t: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(t.get(off..off + 8)?.try_into().ok()?))
}

impl Fadt {
    /// Decodes a checksummed FADT; fields past the table's length are absent.
    pub fn parse(t: &[u8]) -> Fadt {
        let io_port = |off| {
            u32_at(t, off)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0)
        };
        let gas = |off: usize| t.get(off..off + 12).and_then(RegisterAddress::from_gas);
        let x_dsdt = u64_at(t, 140).unwrap_or(0);
        let dsdt = if x_dsdt != 0 {
            x_dsdt
        } else {
            u32_at(t, 40).unwrap_or(0) as u64
        };
        let flags = u32_at(t, 112).unwrap_or(0);
        let reset = if flags & (1 << 10) != 0 {
            gas(116).and_then(|r| Some((r, *t.get(128)?)))
        } else {
            None
        };
        Fadt {
            dsdt,
            pm1a_control: gas(172).or_else(|| io_port(64).map(RegisterAddress::Io)),
            pm1b_control: gas(184).or_else(|| io_port(68).map(RegisterAddress::Io)),
            reset,
        }
    }
}

/// Everything power control needs, found at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerInfo {
    pub fadt: Fadt,
    /// The S5 sleep type, or why it could not be decoded.
    pub s5: Result<SleepType, AcpiError>,
}

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b)) == 0
}

/// Reads and checks a whole system description table at `phys`.
pub fn read_table(mem: &dyn PhysMemory, phys: u64) -> Result<Vec<u8>, AcpiError> {
    let mut header = [0u8; SDT_HEADER_LEN];
    mem.read(phys, &mut header)?;
    let mut signature = [0u8; 4];
    signature.copy_from_slice(&header[..4]);
    let bad = AcpiError::BadTable { signature, phys };
    let len = u32_at(&header, 4).ok_or(bad)?;
    if (len as usize) < SDT_HEADER_LEN || len > MAX_TABLE_LEN {
        return Err(bad);
    }
    let mut table = vec![0u8; len as usize];
    mem.read(phys, &mut table)?;
    if !checksum_ok(&table) {
        return Err(bad);
    }
    Ok(table)
}

/// Physical addresses of the tables the root table (XSDT if the RSDP has one, else RSDT)
/// lists.
pub fn root_table_entries(mem: &dyn PhysMemory, rsdp_phys: u64) -> Result<Vec<u64>, AcpiError> {
    if rsdp_phys == 0 {
        return Err(AcpiError::NoRsdp);
    }
    let mut rsdp = [0u8; 36];
    mem.read(rsdp_phys, &mut rsdp[..20])?;
    if &rsdp[..8] != b"RSD PTR " || !checksum_ok(&rsdp[..20]) {
        return Err(AcpiError::BadRsdp);
    }
    let revision = rsdp[15];
    let mut xsdt = 0;
    if revision >= 2 {
        mem.read(rsdp_phys, &mut rsdp)?;
        if !checksum_ok(&rsdp) {
            return Err(AcpiError::BadRsdp);
        }
        xsdt = u64_at(&rsdp, 24).unwrap_or(0);
    }
    let (root, entry_len) = if xsdt != 0 {
        (xsdt, 8)
    } else {
        (u32_at(&rsdp, 16).unwrap_or(0) as u64, 4)
    };
    let table = read_table(mem, root)?;
    let expected: &[u8] = if entry_len == 8 { b"XSDT" } else { b"RSDT" };
    if &table[..4] != expected {
        return Err(AcpiError::BadTable {
            signature: [table[0], table[1], table[2], table[3]],
            phys: root,
        });
    }
    Ok(table[SDT_HEADER_LEN..]
        .chunks_exact(entry_len)
        .map(|c| {
            if entry_len == 8 {
                u64_at(c, 0).unwrap_or(0)
            } else {
                u32_at(c, 0).unwrap_or(0) as u64
            }
        })
        .filter(|&a| a != 0)
        .collect())
}

/// Finds the FADT and decodes `\_S5_` from the DSDT.
pub fn discover_power(mem: &dyn PhysMemory, rsdp_phys: u64) -> Result<PowerInfo, AcpiError> {
    let mut fadt = None;
    for phys in root_table_entries(mem, rsdp_phys)? {
        let mut sig = [0u8; 4];
        mem.read(phys, &mut sig)?;
        if &sig == b"FACP" {
            fadt = Some(Fadt::parse(&read_table(mem, phys)?));
            break;
        }
    }
    let fadt = fadt.ok_or(AcpiError::NoFadt)?;
    let s5 = if fadt.dsdt == 0 {
        Err(AcpiError::NoDsdt)
    } else {
        read_table(mem, fadt.dsdt)
            .and_then(|dsdt| find_s5(&dsdt[SDT_HEADER_LEN..]).map_err(AcpiError::S5))
    };
    Ok(PowerInfo { fadt, s5 })
}

#[cfg(test)]
mod tests;
