//! The disk's DSDT device and MADT override, parsed back: a small AML reader for the
//! constructs `virtio_mmio_aml` emits, written from the spec (ACPI 6.5 §20.2), not from
//! the builder, plus the firmware reader's view of the whole table set.

use super::tests::{GuestMemory, all_tables, find, madt_entries, platform};
use super::virtio_mmio_aml::{VIRTIO_MMIO_HID, pkg_length};
use super::*;
use crate::acpi::tables::discover_power;

const DISK: VirtioMmioDevice = VirtioMmioDevice {
    base: 0xfeb0_0000,
    len: 0x1000,
    gsi: 5,
};

fn with_disk() -> AcpiTables {
    let mut p = platform();
    p.virtio_mmio = Some(DISK);
    build(ACPI_TABLES_GPA, &p).unwrap()
}

/// Decodes a PkgLength at `aml[0..]` (§20.2.4): (the length it encodes, its own bytes).
fn read_pkg_length(aml: &[u8]) -> (usize, usize) {
    let lead = aml[0];
    let extra = usize::from(lead >> 6);
    if extra == 0 {
        return (usize::from(lead & 0x3f), 1);
    }
    let mut len = usize::from(lead & 0x0f);
    for i in 0..extra {
        len |= usize::from(aml[1 + i]) << (4 + 8 * i);
    }
    (len, 1 + extra)
}

/// The objects `Name (NAME, ...)` in a device body: name -> the data object's bytes.
fn names(mut body: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut out = Vec::new();
    while !body.is_empty() {
        assert_eq!(body[0], 0x08, "NameOp expected: {body:x?}");
        let name: [u8; 4] = body[1..5].try_into().unwrap();
        let rest = &body[5..];
        let len = match rest[0] {
            0x00 | 0x01 => 1,                                            // ZeroOp, OneOp
            0x0d => 2 + rest[1..].iter().position(|&b| b == 0).unwrap(), // String
            0x11 => {
                let (pkg, _) = read_pkg_length(&rest[1..]);
                1 + pkg
            }
            op => panic!("unexpected data object {op:#x}"),
        };
        out.push((name, rest[..len].to_vec()));
        body = &rest[len..];
    }
    out
}

#[test]
fn pkg_length_counts_its_own_bytes() {
    assert_eq!(pkg_length(0), [1]);
    assert_eq!(pkg_length(62), [63]);
    // 63 bytes of body + 2 of PkgLength = 65 = 0x41: lead 0b01 << 6 | 1, then 0x04.
    assert_eq!(pkg_length(63), [0x41, 0x04]);
    for body in [0, 1, 62, 63, 64, 200, 4093, 4094, 70_000, 1 << 20] {
        let enc = pkg_length(body);
        assert_eq!(
            read_pkg_length(&enc),
            (body + enc.len(), enc.len()),
            "{body}"
        );
    }
}

#[test]
fn a_vm_without_a_disk_has_no_device_and_no_extra_override() {
    let t = build(ACPI_TABLES_GPA, &platform()).unwrap();
    let tables = all_tables(&t);
    let dsdt = find(&tables, b"DSDT");
    assert!(!dsdt.windows(8).any(|w| w == VIRTIO_MMIO_HID));
    let madt = find(&tables, b"APIC");
    assert!(
        !madt_entries(madt)
            .iter()
            .any(|(ty, e)| *ty == 2 && e[3] == 5)
    );
}

#[test]
fn the_disk_is_an_lnro0005_device_with_its_window_and_level_gsi() {
    let t = with_disk();
    let tables = all_tables(&t);
    let dsdt = find(&tables, b"DSDT");
    // The firmware reader still finds \_S5 (it comes first).
    let power = discover_power(&GuestMemory(&t), t.rsdp_gpa).unwrap();
    let s5 = power.s5.unwrap();
    assert_eq!((s5.a, s5.b), (5, 5));
    // After the header and _S5 (14 bytes): DeviceOp, whose PkgLength reaches the end.
    let aml = &dsdt[36 + 14..];
    assert_eq!(&aml[..2], &[0x5b, 0x82], "DeviceOp");
    let (len, own) = read_pkg_length(&aml[2..]);
    assert_eq!(2 + len, aml.len(), "the device ends the table");
    let body = &aml[2 + own..];
    assert_eq!(
        &body[..10],
        b"\\._SB_VDA0".map(|b| if b == b'.' { 0x2e } else { b })
    );
    let objects = names(&body[10..]);
    let names_only: Vec<&[u8; 4]> = objects.iter().map(|(n, _)| n).collect();
    assert_eq!(names_only, [b"_HID", b"_UID", b"_CRS"]);
    assert_eq!(objects[0].1, b"\x0dLNRO0005\0");
    assert_eq!(objects[1].1, [0x00]);
    // _CRS: Buffer (PkgLength, BytePrefix size, bytes).
    let crs = &objects[2].1;
    assert_eq!(crs[0], 0x11);
    let (_, own) = read_pkg_length(&crs[1..]);
    assert_eq!(crs[1 + own], 0x0a, "BufferSize as a ByteConst");
    let size = usize::from(crs[2 + own]);
    let template = &crs[3 + own..];
    assert_eq!(template.len(), size);
    // Memory32Fixed (§6.4.3.4): tag 0x86, length 9, read-write, base, length.
    assert_eq!(&template[..4], &[0x86, 9, 0, 1]);
    assert_eq!(
        u32::from_le_bytes(template[4..8].try_into().unwrap()),
        0xfeb0_0000
    );
    assert_eq!(
        u32::from_le_bytes(template[8..12].try_into().unwrap()),
        0x1000
    );
    // Extended Interrupt (§6.4.3.6): tag 0x89, length 6, consumer + level + active-high +
    // exclusive, one GSI: 5.
    let irq = &template[12..21];
    assert_eq!(&irq[..3], &[0x89, 6, 0]);
    assert_eq!(
        irq[3] & 0b1111,
        0b0001,
        "consumer, level, active-high, exclusive"
    );
    assert_eq!(irq[4], 1);
    assert_eq!(u32::from_le_bytes(irq[5..9].try_into().unwrap()), 5);
    // End tag.
    assert_eq!(&template[21..], &[0x79, 0]);
}

#[test]
fn the_madt_makes_gsi5_level_active_high() {
    let t = with_disk();
    let tables = all_tables(&t);
    let madt = find(&tables, b"APIC");
    let iso: Vec<&[u8]> = madt_entries(madt)
        .into_iter()
        .filter(|(ty, e)| *ty == 2 && e[3] == 5)
        .map(|(_, e)| e)
        .collect();
    assert_eq!(iso.len(), 1);
    assert_eq!(u32::from_le_bytes(iso[0][4..8].try_into().unwrap()), 5);
    // MPS INTI flags: active high (01), level (11).
    assert_eq!(u16::from_le_bytes([iso[0][8], iso[0][9]]), 0b1101);
}
