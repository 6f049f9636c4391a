use super::*;
use alloc::collections::BTreeMap;

/// Physical memory made of byte blobs at given addresses.
#[derive(Default)]
struct FakeMemory(BTreeMap<u64, Vec<u8>>);

impl PhysMemory for FakeMemory {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<(), AcpiError> {
        let (&base, blob) = self
            .0
            .range(..=phys)
            .next_back()
            .ok_or(AcpiError::Unreadable { phys })?;
        let off = (phys - base) as usize;
        let src = blob
            .get(off..off + buf.len())
            .ok_or(AcpiError::Unreadable { phys })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

fn fix_checksum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    let sum = bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    bytes[at] = 0u8.wrapping_sub(sum);
}

fn sdt(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; SDT_HEADER_LEN];
    t[..4].copy_from_slice(signature);
    t.extend_from_slice(body);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    t[8] = 2;
    fix_checksum(&mut t, 9);
    t
}

fn rsdp(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut r = vec![0u8; 36];
    r[..8].copy_from_slice(b"RSD PTR ");
    r[15] = revision;
    r[16..20].copy_from_slice(&rsdt.to_le_bytes());
    r[20..24].copy_from_slice(&36u32.to_le_bytes());
    r[24..32].copy_from_slice(&xsdt.to_le_bytes());
    fix_checksum(&mut r[..20], 8);
    fix_checksum(&mut r, 32);
    r
}

/// A FADT body (after the header) of `len` total bytes with the given fields.
fn fadt(len: usize, dsdt: u32, pm1a: u32, reset: Option<(u8, u64, u8)>) -> Vec<u8> {
    let mut f = vec![0u8; len - SDT_HEADER_LEN];
    let at = |off: usize| off - SDT_HEADER_LEN;
    f[at(40)..at(44)].copy_from_slice(&dsdt.to_le_bytes());
    f[at(64)..at(68)].copy_from_slice(&pm1a.to_le_bytes());
    if let Some((space, addr, value)) = reset {
        f[at(112)..at(116)].copy_from_slice(&(1u32 << 10).to_le_bytes());
        f[at(116)] = space;
        f[at(120)..at(128)].copy_from_slice(&addr.to_le_bytes());
        f[at(128)] = value;
    }
    sdt(b"FACP", &f)
}

const S5_AML: &[u8] = &[
    0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x02, 0x0a, 0x05, 0x0a, 0x05,
];

fn machine(rsdp_rev: u8) -> FakeMemory {
    let mut m = FakeMemory::default();
    m.0.insert(
        0xe0000,
        rsdp(
            rsdp_rev,
            0x7000_0000,
            if rsdp_rev >= 2 { 0x7000_1000 } else { 0 },
        ),
    );
    let mut rsdt_body = Vec::new();
    rsdt_body.extend_from_slice(&0x7000_4000u32.to_le_bytes()); // some other table
    rsdt_body.extend_from_slice(&0x7000_2000u32.to_le_bytes()); // FADT
    m.0.insert(0x7000_0000, sdt(b"RSDT", &rsdt_body));
    let mut xsdt_body = Vec::new();
    xsdt_body.extend_from_slice(&0x7000_4000u64.to_le_bytes());
    xsdt_body.extend_from_slice(&0x7000_2000u64.to_le_bytes());
    m.0.insert(0x7000_1000, sdt(b"XSDT", &xsdt_body));
    m.0.insert(
        0x7000_2000,
        fadt(244, 0x7000_3000, 0xb004, Some((1, 0xcf9, 6))),
    );
    let mut dsdt_body = vec![0x10, 0x20, 0x5c]; // some unrelated AML first
    dsdt_body.extend_from_slice(S5_AML);
    m.0.insert(0x7000_3000, sdt(b"DSDT", &dsdt_body));
    m.0.insert(0x7000_4000, sdt(b"APIC", &[0; 8]));
    m
}

#[test]
fn finds_fadt_and_s5_through_xsdt_and_rsdt() {
    for rev in [0, 2] {
        let m = machine(rev);
        let info = discover_power(&m, 0xe0000).expect("power info");
        assert_eq!(info.fadt.dsdt, 0x7000_3000);
        assert_eq!(info.fadt.pm1a_control, Some(RegisterAddress::Io(0xb004)));
        assert_eq!(info.fadt.pm1b_control, None);
        assert_eq!(info.fadt.reset, Some((RegisterAddress::Io(0xcf9), 6)));
        assert_eq!(info.s5, Ok(SleepType { a: 5, b: 5 }));
    }
}

#[test]
fn extended_fadt_fields_win_and_short_fadt_has_no_reset() {
    let mut body = fadt(276, 0x1000, 0xb004, None)[SDT_HEADER_LEN..].to_vec();
    let at = |off: usize| off - SDT_HEADER_LEN;
    body[at(140)..at(148)].copy_from_slice(&0x1_0000_0000u64.to_le_bytes());
    body[at(172)] = 1;
    body[at(176)..at(184)].copy_from_slice(&0x604u64.to_le_bytes());
    body[at(184)] = 0;
    body[at(188)..at(196)].copy_from_slice(&0xfed0_0000u64.to_le_bytes());
    let f = Fadt::parse(&sdt(b"FACP", &body));
    assert_eq!(f.dsdt, 0x1_0000_0000);
    assert_eq!(f.pm1a_control, Some(RegisterAddress::Io(0x604)));
    assert_eq!(f.pm1b_control, Some(RegisterAddress::Memory(0xfed0_0000)));
    // ACPI 1.0 FADT (116 bytes): no reset register even if the flag were set.
    let f = Fadt::parse(&fadt(116, 0x1000, 0x404, None));
    assert_eq!(
        (f.dsdt, f.pm1a_control, f.reset),
        (0x1000, Some(RegisterAddress::Io(0x404)), None)
    );
}

#[test]
fn corrupt_tables_are_refused() {
    let mut m = machine(2);
    m.0.get_mut(&0xe0000).unwrap()[10] ^= 1;
    assert_eq!(discover_power(&m, 0xe0000), Err(AcpiError::BadRsdp));
    let mut m = machine(2);
    m.0.get_mut(&0x7000_2000).unwrap()[50] ^= 1;
    assert!(matches!(
        discover_power(&m, 0xe0000),
        Err(AcpiError::BadTable {
            signature: [b'F', b'A', b'C', b'P'],
            ..
        })
    ));
    let mut m = machine(2);
    m.0.get_mut(&0x7000_3000).unwrap()[40] ^= 1;
    let info = discover_power(&m, 0xe0000).expect("FADT is fine");
    assert!(matches!(info.s5, Err(AcpiError::BadTable { .. })));
    assert_eq!(discover_power(&m, 0), Err(AcpiError::NoRsdp));
    assert_eq!(
        discover_power(&m, 0x5000),
        Err(AcpiError::Unreadable { phys: 0x5000 })
    );
}

#[test]
fn absurd_lengths_and_missing_fadt() {
    let mut m = machine(2);
    let huge = m.0.get_mut(&0x7000_1000).unwrap();
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        discover_power(&m, 0xe0000),
        Err(AcpiError::BadTable { .. })
    ));
    let mut m = machine(2);
    m.0.insert(0x7000_1000, sdt(b"XSDT", &0x7000_4000u64.to_le_bytes()));
    assert_eq!(discover_power(&m, 0xe0000), Err(AcpiError::NoFadt));
}
