//! Layout, e820 map, zero page, page tables, GDT and the whole plan, on a synthetic
//! bzImage and (when `cargo xtask build` has fetched it) the real Debian kernel + initrd.

use super::e820::{E820_RAM, E820_RESERVED, E820Entry, memory_map};
use super::layout::*;
use super::long_mode::*;
use super::zero_page::*;
use super::*;
use alloc::vec;
use proptest::prelude::*;

const MIB: u64 = 1 << 20;

/// A valid 64-bit bzImage header: 4 setup sectors, a 64 KiB kernel needing 8 MiB.
fn bzimage() -> Vec<u8> {
    let mut f = vec![0u8; 5 * 512 + 0x1_0000];
    f[0x1f1] = 4;
    f[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    f[0x201] = 0x6a;
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    f[0x211] = 1;
    f[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    f[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
    f[0x234] = 1;
    f[0x236..0x238].copy_from_slice(&0x7fu16.to_le_bytes());
    f[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
    f[0x248..0x24c].copy_from_slice(&0x100u32.to_le_bytes());
    f[0x24c..0x250].copy_from_slice(&0x800u32.to_le_bytes());
    f[0x258..0x260].copy_from_slice(&(16 * MIB).to_le_bytes());
    f[0x260..0x264].copy_from_slice(&(8 * MIB as u32).to_le_bytes());
    f
}

fn kernel() -> BzImage {
    BzImage::parse(&bzimage()).unwrap()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn kernel_at_its_preferred_address_initrd_at_the_top() {
    let l = LinuxLayout::plan(&kernel(), 3 * MIB + 5, 128 * MIB).unwrap();
    assert_eq!(l.kernel_gpa, 16 * MIB);
    assert_eq!(l.kernel_end, 24 * MIB);
    assert_eq!(l.initrd_gpa % 0x1000, 0);
    assert!(l.initrd_gpa >= l.kernel_end);
    assert!(l.initrd_gpa + l.initrd_len <= 128 * MIB);
    assert!(128 * MIB - (l.initrd_gpa + l.initrd_len) < 0x1000);
}

proptest! {
    /// The loader's check (`BzImage::memory_needed`) and the layout agree exactly.
    #[test]
    fn memory_needed_is_exactly_what_the_layout_needs(initrd in 0u64..(64 * MIB), extra_pages in 0u64..4) {
        let k = kernel();
        let need = k.memory_needed(initrd);
        prop_assert!(LinuxLayout::plan(&k, initrd, need + extra_pages * 0x1000).is_ok());
        prop_assert!(LinuxLayout::plan(&k, initrd, need - 0x1000).is_err());
    }
}

#[test]
fn initrd_stays_below_initrd_addr_max() {
    let mut f = bzimage();
    f[0x22c..0x230].copy_from_slice(&(64 * MIB as u32 - 1).to_le_bytes());
    let k = BzImage::parse(&f).unwrap();
    let l = LinuxLayout::plan(&k, MIB, 512 * MIB).unwrap();
    assert!(l.initrd_gpa + l.initrd_len <= 64 * MIB);
}

#[test]
fn what_does_not_fit_is_named_with_the_memory_needed() {
    let err = LinuxLayout::plan(&kernel(), 0, 20 * MIB).unwrap_err();
    assert!(matches!(err, LinuxBootError::DoesNotFit { need, .. } if need == 24 * MIB));
    let msg = alloc::format!("{err}");
    assert!(
        msg.contains("kernel") && msg.contains("24 MiB") && msg.contains("20 MiB"),
        "{msg}"
    );
    let err = LinuxLayout::plan(&kernel(), 10 * MIB, 30 * MIB).unwrap_err();
    assert!(
        matches!(err, LinuxBootError::DoesNotFit { what, need, .. } if what.contains("initrd") && need == 34 * MIB),
        "{err:?}"
    );
    assert_eq!(
        LinuxLayout::plan(&kernel(), 0, 0xfec0_1000),
        Err(LinuxBootError::RamOverlapsApic { ram: 0xfec0_1000 })
    );
}

#[test]
fn a_misaligned_relocatable_kernel_is_refused() {
    let mut f = bzimage();
    f[0x258..0x260].copy_from_slice(&(16 * MIB + 0x1000).to_le_bytes());
    let k = BzImage::parse(&f).unwrap();
    assert!(matches!(
        LinuxLayout::plan(&k, 0, 256 * MIB),
        Err(LinuxBootError::BadLoadAddress(_))
    ));
    f[0x258..0x260].copy_from_slice(&0x8_0000u64.to_le_bytes());
    let k = BzImage::parse(&f).unwrap();
    assert!(matches!(
        LinuxLayout::plan(&k, 0, 256 * MIB),
        Err(LinuxBootError::BadLoadAddress(0x8_0000))
    ));
}

fn assert_sorted_disjoint(map: &[E820Entry]) {
    for w in map.windows(2) {
        assert!(w[0].addr + w[0].size <= w[1].addr, "{map:x?}");
    }
    assert!(map.iter().all(|e| e.size > 0));
}

#[test]
fn e820_has_ram_the_legacy_hole_and_the_apic_pages() {
    let map = memory_map(256 * MIB, &[(0xd000_0000, 0x1000)]).unwrap();
    assert_sorted_disjoint(&map);
    let ram: u64 = map
        .iter()
        .filter(|e| e.kind == E820_RAM)
        .map(|e| e.size)
        .sum();
    assert_eq!(ram, 256 * MIB - (0x10_0000 - 0xa_0000));
    for reserved in [0xa_0000, 0xe_0000, 0xfec0_0000, 0xfee0_0000, 0xd000_0000] {
        assert!(
            map.iter().any(|e| e.kind == E820_RESERVED
                && e.addr <= reserved
                && reserved < e.addr + e.size),
            "{reserved:#x} not reserved: {map:x?}"
        );
    }
    assert!(matches!(
        memory_map(256 * MIB, &[(128 * MIB, 0x1000)]),
        Err(LinuxBootError::BadReservedWindow { .. })
    ));
    assert!(matches!(
        memory_map(256 * MIB, &[(0xfec0_0000, 0x1000)]),
        Err(LinuxBootError::BadReservedWindow { .. })
    ));
    assert!(memory_map(MIB, &[]).is_err());
}

proptest! {
    #[test]
    fn e820_is_sorted_and_disjoint_whatever_the_windows(
        ram_mib in 2u64..4000,
        windows in proptest::collection::vec((0u64..0x1_0000_0000, 1u64..0x10_0000), 0..6),
    ) {
        if let Ok(map) = memory_map(ram_mib * MIB, &windows) {
            assert_sorted_disjoint(&map);
            for &(start, len) in &windows {
                prop_assert!(map.iter().any(|e| e.addr == start && e.size == len && e.kind == E820_RESERVED));
            }
        }
    }
}

#[test]
fn zero_page_carries_header_initrd_cmdline_rsdp_and_map() {
    let file = bzimage();
    let k = kernel();
    let layout = LinuxLayout::plan(&k, 0x1234, 128 * MIB).unwrap();
    let map = memory_map(128 * MIB, &[]).unwrap();
    let p = super::zero_page::build(&file, &k, &layout, &map, 0xe_0000);
    assert_eq!(p.len(), ZERO_PAGE_LEN);
    assert_eq!(&p[0x202..0x206], b"HdrS");
    assert_eq!(p[0x1f1], 4, "setup_sects copied");
    assert_eq!(p[0x1ef], 0, "sentinel");
    assert_eq!(p[TYPE_OF_LOADER], 0xff);
    assert_eq!(u32_at(&p, RAMDISK_IMAGE) as u64, layout.initrd_gpa);
    assert_eq!(u32_at(&p, RAMDISK_SIZE), 0x1234);
    assert_eq!(u32_at(&p, EXT_RAMDISK_IMAGE), 0);
    assert_eq!(u32_at(&p, CMD_LINE_PTR) as u64, CMDLINE_GPA);
    assert_eq!(u64_at(&p, ACPI_RSDP_ADDR), 0xe_0000);
    assert_eq!(p[E820_ENTRIES] as usize, map.len());
    for (i, e) in map.iter().enumerate() {
        let at = E820_TABLE + 20 * i;
        assert_eq!(u64_at(&p, at), e.addr);
        assert_eq!(u64_at(&p, at + 8), e.size);
        assert_eq!(u32_at(&p, at + 16), e.kind);
    }
}

/// Walk the identity tables for `va` (SDM Vol. 3A §4.5, 4-level paging, 2 MiB pages).
fn translate(tables: &[u8], base: u64, va: u64) -> Option<u64> {
    let entry = |table: u64, index: u64| {
        let at = (table - base) as usize + index as usize * 8;
        u64_at(tables, at)
    };
    let pml4e = entry(base, (va >> 39) & 0x1ff);
    if pml4e & 1 == 0 {
        return None;
    }
    let pdpte = entry(pml4e & 0x000f_ffff_ffff_f000, (va >> 30) & 0x1ff);
    if pdpte & 1 == 0 {
        return None;
    }
    let pde = entry(pdpte & 0x000f_ffff_ffff_f000, (va >> 21) & 0x1ff);
    if pde & 1 == 0 || pde & (1 << 7) == 0 {
        return None;
    }
    Some((pde & 0x000f_ffff_ffe0_0000) | (va & 0x1f_ffff))
}

#[test]
fn page_tables_identity_map_the_first_4_gib() {
    let t = identity_page_tables(PAGE_TABLES_GPA);
    assert_eq!(t.len(), PAGE_TABLES_LEN);
    for va in [
        0,
        0x7000,
        16 * MIB + 0x200,
        0x1234_5678,
        0xfee0_0000,
        0xffff_ffff,
    ] {
        assert_eq!(translate(&t, PAGE_TABLES_GPA, va), Some(va), "{va:#x}");
    }
    assert_eq!(translate(&t, PAGE_TABLES_GPA, 0x1_0000_0000), None);
}

#[test]
fn gdt_has_a_64_bit_code_and_a_flat_data_segment() {
    let g = boot_gdt();
    let desc = |sel: u16| u64_at(&g, sel as usize);
    assert_eq!(desc(0), 0);
    let code = desc(BOOT_CS);
    assert_ne!(code & (1 << 53), 0, "L");
    assert_eq!(code & (1 << 54), 0, "D must be 0 with L");
    assert_ne!(code & (1 << 47), 0, "P");
    assert_eq!((code >> 40) & 0xf, 0xb, "execute/read, accessed");
    let data = desc(BOOT_DS);
    assert_eq!((data >> 40) & 0xf, 0x3, "read/write, accessed");
    assert_ne!(data & (1 << 47), 0, "P");
}

fn assert_disjoint_inside(boot: &LinuxBoot<'_>, ram: u64) {
    let mut spans: Vec<(u64, u64)> = boot
        .writes
        .iter()
        .filter(|w| !w.bytes.as_slice().is_empty())
        .map(|w| (w.gpa, w.gpa + w.bytes.as_slice().len() as u64))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping writes {spans:x?}");
    }
    assert!(spans.iter().all(|&(_, end)| end <= ram), "{spans:x?}");
    // Nothing written into the kernel's decompression room except the kernel itself.
    let l = boot.layout;
    for &(start, end) in &spans {
        if start != l.kernel_gpa {
            assert!(
                end <= l.kernel_gpa || start >= l.kernel_end,
                "{start:#x} in the kernel's room"
            );
        }
    }
}

#[test]
fn the_plan_enters_at_load_plus_0x200_with_rsi_at_the_zero_page() {
    let file = bzimage();
    let initrd = vec![0x5a; 100_000];
    let boot = LinuxBoot::prepare(&file, &initrd, "console=ttyS0", 64 * MIB, None).unwrap();
    assert_eq!(boot.entry.rip, 16 * MIB + 0x200);
    assert_eq!(boot.entry.rsi, ZERO_PAGE_GPA);
    assert_eq!(boot.entry.cr3, PAGE_TABLES_GPA);
    assert_eq!(boot.entry.gdt_base, GDT_GPA);
    assert_eq!(boot.entry.gdt_limit, 31);
    assert_disjoint_inside(&boot, 64 * MIB);
    let cmdline = boot.writes.iter().find(|w| w.gpa == CMDLINE_GPA).unwrap();
    assert_eq!(cmdline.bytes.as_slice(), b"console=ttyS0\0");
    let kernel = boot.writes.iter().find(|w| w.gpa == 16 * MIB).unwrap();
    assert_eq!(kernel.bytes.as_slice().len(), 0x1_0000);
}

#[test]
fn a_disk_is_reserved_in_e820_and_described_in_the_dsdt_only_when_there_is_one() {
    let file = bzimage();
    let disk = crate::vm::virtio_blk::placement::DISK_ACPI_DEVICE;
    let e820_of = |boot: &LinuxBoot| {
        let page = boot.writes.iter().find(|w| w.gpa == ZERO_PAGE_GPA).unwrap();
        let p = page.bytes.as_slice();
        (0..usize::from(p[E820_ENTRIES]))
            .map(|i| {
                let at = E820_TABLE + 20 * i;
                (u64_at(p, at), u64_at(p, at + 8), u32_at(p, at + 16))
            })
            .collect::<Vec<_>>()
    };
    let acpi_of = |boot: &LinuxBoot| {
        let tables = boot
            .writes
            .iter()
            .find(|w| w.gpa == guest_acpi::ACPI_TABLES_GPA)
            .unwrap();
        tables.bytes.as_slice().windows(8).any(|w| w == b"LNRO0005")
    };
    let with = LinuxBoot::prepare(&file, &[], "console=ttyS0", 64 * MIB, Some(disk)).unwrap();
    assert!(e820_of(&with).contains(&(0xfeb0_0000, 0x1000, E820_RESERVED)));
    assert!(acpi_of(&with));
    let without = LinuxBoot::prepare(&file, &[], "console=ttyS0", 64 * MIB, None).unwrap();
    assert!(!e820_of(&without).iter().any(|e| e.0 == 0xfeb0_0000));
    assert!(!acpi_of(&without));
}

#[test]
fn bad_command_lines_and_kernels_are_refused() {
    let file = bzimage();
    let long = "x".repeat(2048);
    assert_eq!(
        LinuxBoot::prepare(&file, &[], &long, 64 * MIB, None).unwrap_err(),
        LinuxBootError::BadCmdline { max: 2047 }
    );
    assert!(LinuxBoot::prepare(&file, &[], "a\0b", 64 * MIB, None).is_err());
    let mut not64 = bzimage();
    not64[0x236] = 0;
    assert!(matches!(
        LinuxBoot::prepare(&not64, &[], "", 64 * MIB, None),
        Err(LinuxBootError::Kernel(
            boot_proto::bzimage::BzImageError::Not64Bit
        ))
    ));
}

/// The Debian cloud kernel and tern's initramfs, when `cargo xtask build` made them.
#[test]
fn the_debian_kernel_and_initrd_fit_a_128_mib_vm() {
    extern crate std;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/linux");
    let (Ok(kernel), Ok(initrd)) = (
        std::fs::read(dir.join("vmlinuz")),
        std::fs::read(dir.join("initrd.cpio")),
    ) else {
        std::eprintln!("skipped: no {} (cargo xtask build)", dir.display());
        return;
    };
    let boot = LinuxBoot::prepare(&kernel, &initrd, "console=ttyS0", 128 * MIB, None).unwrap();
    assert_eq!(boot.entry.rip, 0x100_0200);
    assert_disjoint_inside(&boot, 128 * MIB);
    let err = LinuxBoot::prepare(&kernel, &initrd, "console=ttyS0", 48 * MIB, None).unwrap_err();
    assert!(matches!(err, LinuxBootError::DoesNotFit { .. }), "{err}");
}

proptest! {
    /// Whatever the kernel header says (any byte of it changed) and whatever the RAM size,
    /// preparing a boot never panics, and a plan it accepts writes only inside RAM, never
    /// twice to one byte, and nothing into the kernel's decompression room.
    #[test]
    fn no_header_or_ram_size_makes_a_bad_plan(
        changes in proptest::collection::vec((0x1f1usize..0x26c, any::<u8>()), 0..6),
        ram_mib in 1u64..512,
        initrd_len in 0usize..0x4_0000,
    ) {
        let mut file = bzimage();
        for (at, value) in changes {
            file[at] = value;
        }
        let initrd = vec![0u8; initrd_len];
        if let Ok(boot) = LinuxBoot::prepare(&file, &initrd, "console=ttyS0", ram_mib * MIB, None) {
            assert_disjoint_inside(&boot, ram_mib * MIB);
        }
    }
}
