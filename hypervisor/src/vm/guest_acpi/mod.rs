//! The ACPI tables a tern VM finds in its memory: RSDP (v2), XSDT, FADT + FACS, MADT and a
//! minimal DSDT (ACPI 6.5, chapter 5), built as bytes for one guest-physical base.
//!
//! Why ACPI and not an MP table: an unmodified Linux finds its local APIC, the I/O APIC and
//! the ISA interrupt overrides in the MADT (`noapic` would otherwise be needed), and the
//! FADT tells it which legacy hardware exists (no 8042, no VGA). The Linux boot path hands
//! the RSDP's address over in `boot_params.acpi_rsdp_addr`; the tables also sit in the
//! legacy BIOS area 0xE0000-0xFFFFF, where a guest that scans for `RSD PTR ` finds them.
//!
//! What the tables say, and what tern must keep true for them:
//! - **MADT**: one processor (local APIC ID 0, enabled) with its xAPIC page at
//!   0xFEE00000; one I/O APIC (ID 0) at 0xFEC00000 whose GSIs start at 0; one Interrupt
//!   Source Override per entry of [`GsiRouting::overrides`] (the hypervisor routes exactly
//!   so); the LINT1 NMI of every processor; PCAT_COMPAT, since the 8259 pair exists. LINT0
//!   as ExtINT (virtual wire) has no MADT structure: Linux programs it itself.
//! - **FADT**: *not* hardware-reduced (the PC legacy devices exist), SCI on IRQ 9, no SMI
//!   command port (the platform is always in ACPI mode, §4.8.2.1), PM1a event and control
//!   blocks at I/O ports 0x600 and 0x604, no PM timer (Linux uses the TSC tern announces).
//!   IAPC_BOOT_ARCH says: legacy devices yes, 8042 no, VGA no, MSI no.
//! - **DSDT**: `\_S5_` (sleep type 5, the power-off value written to PM1a_CNT.SLP_TYP)
//!   and, for a VM with a disk, the disk as a virtio-mmio device `\_SB.VDA0` (`LNRO0005`,
//!   window and level GSI in `_CRS`, [`virtio_mmio_aml`]) with a matching MADT override.
//!   The PM1 blocks are announced so that the FADT is a valid non-reduced one; decoding a
//!   guest's write there (power-off) is for the port-I/O handler and is not wired yet.
//!
//! [`GsiRouting::overrides`]: crate::vm::interrupts::routing::GsiRouting::overrides

mod fadt;
mod madt;
mod sdt;
#[cfg(test)]
mod tests;
pub mod virtio_mmio_aml;
#[cfg(test)]
mod virtio_mmio_tests;

use alloc::vec;
use alloc::vec::Vec;

use crate::vm::interrupts::routing::IsaOverride;
pub use fadt::{PM1A_CNT_PORT, PM1A_EVT_PORT, S5_SLEEP_TYPE, SCI_IRQ};
pub use madt::{IOAPIC_ID, LAPIC_ID};
pub use virtio_mmio_aml::VirtioMmioDevice;

/// Where tern puts the tables: the BIOS read-only area, reserved in every tern e820 map.
pub const ACPI_TABLES_GPA: u64 = 0xe_0000;
/// Room for the tables there (up to 1 MiB).
pub const ACPI_TABLES_MAX_LEN: usize = 0x2_0000;

/// The platform the tables describe.
#[derive(Debug, Clone, Copy)]
pub struct AcpiPlatform {
    /// Local APIC page.
    pub lapic_address: u32,
    /// I/O APIC page.
    pub ioapic_address: u32,
    /// ISA IRQ -> GSI overrides (`GsiRouting::overrides()`).
    pub overrides: &'static [IsaOverride],
    /// The VM's disk as a virtio-mmio device, if it has one (DSDT device, MADT override).
    pub virtio_mmio: Option<VirtioMmioDevice>,
}

/// Built tables, to be copied to guest-physical `gpa`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiTables {
    /// Where `bytes` go.
    pub gpa: u64,
    /// Guest-physical address of the RSDP (for `boot_params.acpi_rsdp_addr`).
    pub rsdp_gpa: u64,
    /// All tables, laid out from `gpa`.
    pub bytes: Vec<u8>,
}

/// Why tables could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiBuildError {
    /// The base is not 16-byte aligned (the RSDP must be, §5.2.5.1) or the tables would
    /// not stay below 4 GiB (the FADT's 32-bit fields and the MADT are read there).
    BadBase(u64),
    /// More overrides than fit one MADT.
    TooLarge(usize),
}

impl core::fmt::Display for AcpiBuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadBase(gpa) => write!(
                f,
                "ACPI tables cannot start at {gpa:#x} (16-byte aligned, below 4 GiB)"
            ),
            Self::TooLarge(len) => write!(f, "ACPI tables of {len} bytes do not fit their area"),
        }
    }
}

/// 64-byte alignment: the FACS needs it (§5.2.10), and it keeps every table apart.
const TABLE_ALIGN: usize = 64;

fn align(n: usize) -> usize {
    n.div_ceil(TABLE_ALIGN) * TABLE_ALIGN
}

/// Build every table for `platform`, laid out from `gpa`.
pub fn build(gpa: u64, platform: &AcpiPlatform) -> Result<AcpiTables, AcpiBuildError> {
    if !gpa.is_multiple_of(16) || gpa >= u64::from(u32::MAX) {
        return Err(AcpiBuildError::BadBase(gpa));
    }
    let dsdt = fadt::dsdt(platform.virtio_mmio.as_ref());
    let facs = fadt::facs();
    let madt = madt::madt(platform);
    // Offsets from gpa, in this order: RSDP, XSDT (two entries), FADT, FACS, MADT, DSDT.
    let rsdp_at = 0;
    let xsdt_at = align(sdt::RSDP_LEN);
    let fadt_at = align(xsdt_at + sdt::HEADER_LEN + 2 * 8);
    let facs_at = align(fadt_at + fadt::FADT_LEN);
    let madt_at = align(facs_at + facs.len());
    let dsdt_at = align(madt_at + madt.len());
    let total = dsdt_at + dsdt.len();
    if total > ACPI_TABLES_MAX_LEN || gpa + total as u64 > u64::from(u32::MAX) {
        return Err(AcpiBuildError::TooLarge(total));
    }
    let at = |offset: usize| gpa + offset as u64;
    let fadt = fadt::fadt(at(facs_at) as u32, at(dsdt_at) as u32);
    let xsdt = sdt::table(*b"XSDT", 1, &{
        let mut entries = Vec::with_capacity(16);
        entries.extend_from_slice(&at(fadt_at).to_le_bytes());
        entries.extend_from_slice(&at(madt_at).to_le_bytes());
        entries
    });
    let rsdp = sdt::rsdp(at(xsdt_at));
    let mut bytes = vec![0u8; total];
    for (offset, table) in [
        (rsdp_at, &rsdp[..]),
        (xsdt_at, &xsdt[..]),
        (fadt_at, &fadt[..]),
        (facs_at, &facs[..]),
        (madt_at, &madt[..]),
        (dsdt_at, &dsdt[..]),
    ] {
        bytes[offset..offset + table.len()].copy_from_slice(table);
    }
    Ok(AcpiTables {
        gpa,
        rsdp_gpa: at(rsdp_at),
        bytes,
    })
}
