//! The guest tables read back by tern's own firmware-table reader (`crate::acpi`, written
//! for real firmware and tested against it), plus field-level checks of the MADT and FADT.

use super::*;
use crate::acpi::tables::{
    AcpiError, PhysMemory, RegisterAddress, discover_power, read_table, root_table_entries,
};
use crate::vm::interrupts::message::TriggerMode;
use crate::vm::interrupts::routing::GsiRouting;

pub(super) struct GuestMemory<'a>(pub(super) &'a AcpiTables);

impl PhysMemory for GuestMemory<'_> {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), AcpiError> {
        let off = phys
            .checked_sub(self.0.gpa)
            .ok_or(AcpiError::Unreadable { phys })? as usize;
        let src = self
            .0
            .bytes
            .get(off..off + buf.len())
            .ok_or(AcpiError::Unreadable { phys })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

pub(super) fn platform() -> AcpiPlatform {
    AcpiPlatform {
        lapic_address: 0xfee0_0000,
        ioapic_address: 0xfec0_0000,
        overrides: GsiRouting::default().overrides(),
        virtio_mmio: None,
    }
}

fn tables() -> AcpiTables {
    build(ACPI_TABLES_GPA, &platform()).unwrap()
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

/// Every table the XSDT lists (and the DSDT), by signature.
pub(super) fn all_tables(t: &AcpiTables) -> Vec<Vec<u8>> {
    let mem = GuestMemory(t);
    let mut out: Vec<Vec<u8>> = root_table_entries(&mem, t.rsdp_gpa)
        .unwrap()
        .into_iter()
        .map(|phys| read_table(&mem, phys).unwrap())
        .collect();
    let power = discover_power(&mem, t.rsdp_gpa).unwrap();
    out.push(read_table(&mem, power.fadt.dsdt).unwrap());
    out
}

pub(super) fn find<'a>(tables: &'a [Vec<u8>], signature: &[u8; 4]) -> &'a [u8] {
    tables
        .iter()
        .find(|t| &t[..4] == signature)
        .unwrap_or_else(|| panic!("no {} table", core::str::from_utf8(signature).unwrap()))
}

#[test]
fn rsdp_is_v2_with_both_checksums_right() {
    let t = tables();
    let rsdp = &t.bytes[..36];
    assert_eq!(&rsdp[..8], b"RSD PTR ");
    assert_eq!(rsdp[15], 2);
    assert_eq!(sum(&rsdp[..20]), 0);
    assert_eq!(sum(rsdp), 0);
    assert_eq!(t.rsdp_gpa % 16, 0);
    assert_eq!(t.rsdp_gpa, ACPI_TABLES_GPA);
}

#[test]
fn the_firmware_reader_finds_every_table_with_a_good_checksum() {
    let t = tables();
    let tables = all_tables(&t);
    for signature in [b"FACP", b"APIC", b"DSDT"] {
        let table = find(&tables, signature);
        assert_eq!(sum(table), 0);
        assert_eq!(
            u32::from_le_bytes(table[4..8].try_into().unwrap()) as usize,
            table.len()
        );
    }
    // Everything lies inside the area, and no two tables overlap.
    let mem = GuestMemory(&t);
    let mut spans: Vec<(u64, u64)> = root_table_entries(&mem, t.rsdp_gpa)
        .unwrap()
        .into_iter()
        .map(|p| (p, p + read_table(&mem, p).unwrap().len() as u64))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "{spans:x?}");
    }
    assert!(t.bytes.len() <= ACPI_TABLES_MAX_LEN);
}

#[test]
fn fadt_is_a_full_not_hardware_reduced_one() {
    let t = tables();
    let power = discover_power(&GuestMemory(&t), t.rsdp_gpa).unwrap();
    assert_eq!(
        power.fadt.pm1a_control,
        Some(RegisterAddress::Io(PM1A_CNT_PORT))
    );
    let s5 = power.s5.unwrap();
    assert_eq!((s5.a, s5.b), (5, 5));
    let tables = all_tables(&t);
    let fadt = find(&tables, b"FACP");
    assert_eq!(fadt.len(), 276);
    assert_eq!(fadt[8], 6, "revision");
    let flags = u32::from_le_bytes(fadt[112..116].try_into().unwrap());
    assert_eq!(flags & (1 << 20), 0, "HW_REDUCED_ACPI set");
    assert_eq!(u16::from_le_bytes([fadt[46], fadt[47]]), SCI_IRQ);
    assert_eq!(
        u32::from_le_bytes(fadt[48..52].try_into().unwrap()),
        0,
        "SMI_CMD"
    );
    assert_eq!(
        u32::from_le_bytes(fadt[56..60].try_into().unwrap()),
        u32::from(PM1A_EVT_PORT)
    );
    let boot_arch = u16::from_le_bytes([fadt[109], fadt[110]]);
    assert_eq!(boot_arch & 0b11, 0b01, "legacy devices, no 8042");
    // FACS: 64-byte aligned, signature, length.
    let facs = u32::from_le_bytes(fadt[36..40].try_into().unwrap()) as u64;
    assert_eq!(facs % 64, 0);
    let off = (facs - t.gpa) as usize;
    assert_eq!(&t.bytes[off..off + 4], b"FACS");
    assert_eq!(
        u64::from_le_bytes(fadt[132..140].try_into().unwrap()),
        0,
        "X_FIRMWARE_CTRL"
    );
}

/// MADT structures after the 44-byte fixed part: (type, bytes).
pub(super) fn madt_entries(madt: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut at = 44;
    while at < madt.len() {
        let len = madt[at + 1] as usize;
        assert!(len >= 2 && at + len <= madt.len(), "bad entry at {at}");
        out.push((madt[at], &madt[at..at + len]));
        at += len;
    }
    out
}

#[test]
fn madt_has_one_lapic_the_ioapic_the_overrides_and_lint1_nmi() {
    let t = tables();
    let tables = all_tables(&t);
    let madt = find(&tables, b"APIC");
    assert_eq!(
        u32::from_le_bytes(madt[36..40].try_into().unwrap()),
        0xfee0_0000
    );
    assert_eq!(u32::from_le_bytes(madt[40..44].try_into().unwrap()) & 1, 1);
    let entries = madt_entries(madt);
    let of = |ty: u8| {
        entries
            .iter()
            .filter(move |(t, _)| *t == ty)
            .map(|(_, b)| *b)
    };
    let lapics: Vec<_> = of(0).collect();
    assert_eq!(lapics.len(), 1);
    assert_eq!(lapics[0][3], LAPIC_ID);
    assert_eq!(lapics[0][4] & 1, 1, "enabled");
    let ioapics: Vec<_> = of(1).collect();
    assert_eq!(ioapics.len(), 1);
    assert_eq!(ioapics[0][2], IOAPIC_ID);
    assert_eq!(
        u32::from_le_bytes(ioapics[0][4..8].try_into().unwrap()),
        0xfec0_0000
    );
    assert_eq!(u32::from_le_bytes(ioapics[0][8..12].try_into().unwrap()), 0);
    let overrides: Vec<_> = of(2).collect();
    let routing = GsiRouting::default();
    assert_eq!(overrides.len(), routing.overrides().len());
    for (entry, o) in overrides.iter().zip(routing.overrides()) {
        assert_eq!(entry[2], 0, "bus ISA");
        assert_eq!(entry[3], o.isa_irq);
        assert_eq!(u32::from_le_bytes(entry[4..8].try_into().unwrap()), o.gsi);
        assert_eq!(
            u16::from_le_bytes([entry[8], entry[9]]),
            madt::inti_flags(o.trigger, o.active_low)
        );
    }
    // IRQ0 -> GSI 2, edge, active high.
    assert_eq!(&overrides[0][3..10], &[0, 2, 0, 0, 0, 0b0101, 0]);
    let nmis: Vec<_> = of(4).collect();
    assert_eq!(nmis.len(), 1);
    assert_eq!((nmis[0][2], nmis[0][5]), (0xff, 1));
}

#[test]
fn inti_flags_encode_polarity_and_trigger() {
    assert_eq!(madt::inti_flags(TriggerMode::Edge, false), 0b0101);
    assert_eq!(madt::inti_flags(TriggerMode::Level, true), 0b1111);
    assert_eq!(madt::inti_flags(TriggerMode::Level, false), 0b1101);
}

#[test]
fn bad_bases_are_refused() {
    assert_eq!(
        build(0xe_0008, &platform()),
        Err(AcpiBuildError::BadBase(0xe_0008))
    );
    assert!(build(0xffff_fff0, &platform()).is_err());
    // Any 16-byte aligned base works, and pointers follow it.
    let t = build(0x10_0000, &platform()).unwrap();
    assert_eq!(t.rsdp_gpa, 0x10_0000);
    assert!(discover_power(&GuestMemory(&t), t.rsdp_gpa).is_ok());
}
