use crate::vm::mmio::paging::{GuestPaging, PageWalkError, PagingMode, fetch_instruction};
use crate::vm::virtio::guest_memory::{FakeGuestMemory, GuestMemory};

const MIB: usize = 1 << 20;

fn put64(mem: &mut FakeGuestMemory, gpa: u64, v: u64) {
    mem.write(gpa, &v.to_le_bytes()).unwrap();
}

fn put32(mem: &mut FakeGuestMemory, gpa: u64, v: u32) {
    mem.write(gpa, &v.to_le_bytes()).unwrap();
}

#[test]
fn mode_follows_cr0_cr4_efer() {
    let pg = 1 << 31;
    assert_eq!(PagingMode::from_registers(0x11, 0, 0), PagingMode::None);
    assert_eq!(
        PagingMode::from_registers(pg, 1 << 4, 0),
        PagingMode::Bits32 { pse: true }
    );
    assert_eq!(PagingMode::from_registers(pg, 1 << 5, 0), PagingMode::Pae);
    assert_eq!(
        PagingMode::from_registers(pg, 1 << 5, 1 << 10),
        PagingMode::Level4
    );
    assert_eq!(
        PagingMode::from_registers(pg, (1 << 5) | (1 << 12), 1 << 10),
        PagingMode::Level5
    );
}

/// A 4-level map: PML4 at 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000. Linear
/// 0xffff_8000_0040_1000 -> 4 KiB page at 0x9000; linear 0x4000_0000 (PDPT entry 1) -> 1 GiB
/// page (outside the fake RAM); linear 0xffff_8000_0060_0000 -> 2 MiB page at 0x20_0000.
fn level4() -> (FakeGuestMemory, GuestPaging) {
    let mut mem = FakeGuestMemory::new(4 * MIB);
    let high = 0xffff_8000_0040_1000u64;
    let pml4_index = (high >> 39) & 0x1ff;
    put64(&mut mem, 0x1000 + pml4_index * 8, 0x2000 | 3);
    put64(&mut mem, 0x1000, 0x2000 | 3);
    put64(&mut mem, 0x2000, 0x3000 | 3);
    put64(&mut mem, 0x2008, 0x4000_0000 | 0x83);
    put64(&mut mem, 0x3000 + 2 * 8, 0x4000 | 3);
    put64(&mut mem, 0x3000 + 3 * 8, 0x20_0000 | 0x83);
    put64(&mut mem, 0x4000 + 8, 0x9000 | 3);
    let paging = GuestPaging {
        mode: PagingMode::Level4,
        cr3: 0x1000,
    };
    (mem, paging)
}

#[test]
fn level4_walk_4k_2m_1g_pages() {
    let (mem, paging) = level4();
    assert_eq!(paging.translate(&mem, 0xffff_8000_0040_1234), Ok(0x9234));
    assert_eq!(paging.translate(&mem, 0x0040_1234), Ok(0x9234));
    assert_eq!(paging.translate(&mem, 0xffff_8000_0061_2345), Ok(0x21_2345));
    assert_eq!(paging.translate(&mem, 0x4123_4567), Ok(0x4123_4567));
}

#[test]
fn level4_not_present_names_the_level() {
    let (mem, paging) = level4();
    // PML4 entry 2 is empty.
    assert_eq!(
        paging.translate(&mem, 2 << 39),
        Err(PageWalkError::NotPresent {
            linear: 2 << 39,
            level: 4
        })
    );
    // PT entry 2 (linear 0x402000) is empty.
    assert_eq!(
        paging.translate(&mem, 0x40_2000),
        Err(PageWalkError::NotPresent {
            linear: 0x40_2000,
            level: 1
        })
    );
}

#[test]
fn table_outside_ram_is_an_error_not_a_read() {
    let mut mem = FakeGuestMemory::new(MIB);
    let paging = GuestPaging {
        mode: PagingMode::Level4,
        cr3: 0x1000,
    };
    put64(&mut mem, 0x1000, 0x8000_0000 | 3);
    assert_eq!(
        paging.translate(&mem, 0x1000),
        Err(PageWalkError::OutsideRam {
            linear: 0x1000,
            gpa: 0x8000_0000
        })
    );
    let far = GuestPaging {
        mode: PagingMode::Level4,
        cr3: 0xffff_f000,
    };
    assert!(matches!(
        far.translate(&mem, 0),
        Err(PageWalkError::OutsideRam { .. })
    ));
}

#[test]
fn pae_walk_uses_the_pdpt_at_cr3() {
    let mut mem = FakeGuestMemory::new(MIB);
    // PDPT at 0x1020 (32-byte aligned), entry 3 -> PD at 0x3000.
    put64(&mut mem, 0x1020 + 3 * 8, 0x3000 | 1);
    put64(&mut mem, 0x3000 + 8, 0x5000 | 3);
    put64(&mut mem, 0x3000, 0x40_0000 | 0x83);
    put64(&mut mem, 0x5000 + 0x10 * 8, 0x7000 | 3);
    let paging = GuestPaging {
        mode: PagingMode::Pae,
        cr3: 0x1020,
    };
    assert_eq!(paging.translate(&mem, 0xc021_0abc), Ok(0x7abc));
    assert_eq!(paging.translate(&mem, 0xc000_1234), Ok(0x40_1234));
    assert_eq!(
        paging.translate(&mem, 0x8000_0000),
        Err(PageWalkError::NotPresent {
            linear: 0x8000_0000,
            level: 3
        })
    );
}

#[test]
fn bits32_walk_with_and_without_pse() {
    let mut mem = FakeGuestMemory::new(MIB);
    put32(&mut mem, 0x1000 + 0x300 * 4, 0x2000 | 3);
    put32(&mut mem, 0x2000 + 5 * 4, 0x6000 | 3);
    // A 4 MiB page at 0x0040_0000 for linear 0x0040_0000 (PDE 1).
    put32(&mut mem, 0x1000 + 4, 0x40_0000 | 0x83);
    let pse = GuestPaging {
        mode: PagingMode::Bits32 { pse: true },
        cr3: 0x1000,
    };
    assert_eq!(pse.translate(&mem, 0xc000_5123), Ok(0x6123));
    assert_eq!(pse.translate(&mem, 0x0041_2345), Ok(0x41_2345));
    // Without CR4.PSE the PS bit is ignored: PDE 1 points to a page table at 0x400000,
    // which is outside this 1 MiB RAM.
    let no_pse = GuestPaging {
        mode: PagingMode::Bits32 { pse: false },
        cr3: 0x1000,
    };
    assert!(matches!(
        no_pse.translate(&mem, 0x0041_2345),
        Err(PageWalkError::OutsideRam { .. })
    ));
}

#[test]
fn no_paging_is_identity_within_4g() {
    let mem = FakeGuestMemory::new(4096);
    let paging = GuestPaging {
        mode: PagingMode::None,
        cr3: 0,
    };
    assert_eq!(paging.translate(&mem, 0xfee0_0030), Ok(0xfee0_0030));
}

#[test]
fn five_level_is_refused() {
    let mem = FakeGuestMemory::new(4096);
    let paging = GuestPaging {
        mode: PagingMode::Level5,
        cr3: 0,
    };
    assert_eq!(
        paging.translate(&mem, 0),
        Err(PageWalkError::FiveLevelPaging)
    );
}

#[test]
fn fetch_crosses_a_page_into_a_discontiguous_frame() {
    let (mut mem, paging) = level4();
    // Linear page 0x401000 -> 0x9000; map linear 0x402000 -> 0x5000.
    put64(&mut mem, 0x4000 + 2 * 8, 0x5000 | 3);
    let first: [u8; 3] = [0x8b, 0x80, 0x30];
    mem.write(0x9ffd, &first).unwrap();
    mem.write(0x5000, &[0x00, 0x00, 0x00, 0x90]).unwrap();
    let got = fetch_instruction(&mem, &paging, 0x40_1ffd).unwrap();
    assert_eq!(got.len, 15);
    assert_eq!(&got.as_slice()[..7], &[0x8b, 0x80, 0x30, 0, 0, 0, 0x90]);
}

#[test]
fn fetch_stops_at_an_unmapped_second_page() {
    let (mut mem, paging) = level4();
    mem.write(0x9ffe, &[0x8b, 0x07]).unwrap();
    let got = fetch_instruction(&mem, &paging, 0x40_1ffe).unwrap();
    assert_eq!(got.as_slice(), &[0x8b, 0x07]);
    // The first page itself unmapped: an error.
    assert!(matches!(
        fetch_instruction(&mem, &paging, 0x40_2000),
        Err(PageWalkError::NotPresent { level: 1, .. })
    ));
}
