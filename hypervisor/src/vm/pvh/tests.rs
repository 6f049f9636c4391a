use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;

/// Build a minimal ELF: one PT_LOAD of `code` at `paddr` with `bss` extra bytes, one PT_NOTE
/// holding the given notes.
fn make_elf(is64: bool, paddr: u64, code: &[u8], bss: u64, notes: &[u8]) -> Vec<u8> {
    let (ehsize, phentsize) = if is64 { (64u64, 56u64) } else { (52, 32) };
    let phoff = ehsize;
    let code_off = phoff + 2 * phentsize;
    let notes_off = code_off + code.len() as u64;
    let mut f = vec![0u8; code_off as usize];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = if is64 { 2 } else { 1 };
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&(if is64 { 62u16 } else { 3 }).to_le_bytes());
    let put = |f: &mut Vec<u8>, at: u64, bytes: &[u8]| {
        f[at as usize..at as usize + bytes.len()].copy_from_slice(bytes)
    };
    let phdrs = [
        (
            1u32,
            code_off,
            paddr,
            code.len() as u64,
            code.len() as u64 + bss,
        ),
        (4u32, notes_off, 0, notes.len() as u64, notes.len() as u64),
    ];
    if is64 {
        put(&mut f, 32, &phoff.to_le_bytes());
        put(&mut f, 54, &56u16.to_le_bytes());
        put(&mut f, 56, &2u16.to_le_bytes());
        for (i, (kind, off, pa, filesz, memsz)) in phdrs.iter().enumerate() {
            let at = phoff + i as u64 * 56;
            put(&mut f, at, &kind.to_le_bytes());
            put(&mut f, at + 8, &off.to_le_bytes());
            put(&mut f, at + 16, &pa.to_le_bytes());
            put(&mut f, at + 24, &pa.to_le_bytes());
            put(&mut f, at + 32, &filesz.to_le_bytes());
            put(&mut f, at + 40, &memsz.to_le_bytes());
        }
    } else {
        put(&mut f, 28, &(phoff as u32).to_le_bytes());
        put(&mut f, 42, &32u16.to_le_bytes());
        put(&mut f, 44, &2u16.to_le_bytes());
        for (i, (kind, off, pa, filesz, memsz)) in phdrs.iter().enumerate() {
            let at = phoff + i as u64 * 32;
            put(&mut f, at, &kind.to_le_bytes());
            put(&mut f, at + 4, &(*off as u32).to_le_bytes());
            put(&mut f, at + 8, &(*pa as u32).to_le_bytes());
            put(&mut f, at + 12, &(*pa as u32).to_le_bytes());
            put(&mut f, at + 16, &(*filesz as u32).to_le_bytes());
            put(&mut f, at + 20, &(*memsz as u32).to_le_bytes());
        }
    }
    f.extend_from_slice(code);
    f.extend_from_slice(notes);
    f
}

fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&(name.len() as u32).to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&kind.to_le_bytes());
    n.extend_from_slice(name);
    n.resize(n.len().next_multiple_of(4), 0);
    n.extend_from_slice(desc);
    n.resize(n.len().next_multiple_of(4), 0);
    n
}

const MIB: u64 = 1 << 20;

fn pvh_note(entry: u32) -> Vec<u8> {
    // An unrelated note first: the parser must skip it.
    let mut n = note(b"GNU\0", 3, &[1, 2, 3, 4, 5, 6, 7, 8]);
    n.extend(note(b"Xen\0", 18, &entry.to_le_bytes()));
    n
}

#[test]
fn parses_64_and_32_bit_images() {
    for is64 in [true, false] {
        let elf = make_elf(is64, MIB, &[0x90; 100], 0x2000, &pvh_note(MIB as u32 + 4));
        let img = parse_elf(&elf, 16 * MIB).unwrap();
        assert_eq!(img.entry, MIB as u32 + 4);
        assert_eq!(img.segments.len(), 1);
        let s = img.segments[0];
        assert_eq!(
            (s.guest_phys, s.file_size, s.mem_size),
            (MIB, 100, 100 + 0x2000)
        );
    }
}

#[test]
fn eight_byte_entry_note_is_accepted() {
    let notes = note(b"Xen\0", 18, &(MIB + 8).to_le_bytes());
    let elf = make_elf(true, MIB, &[0x90; 16], 0, &notes);
    assert_eq!(parse_elf(&elf, 16 * MIB).unwrap().entry, MIB as u32 + 8);
}

#[test]
fn rejects_malformed_images() {
    let good = make_elf(true, MIB, &[0x90; 64], 0, &pvh_note(MIB as u32));
    let ram = 16 * MIB;
    assert_eq!(
        parse_elf(&good[..10], ram),
        Err(PvhError::Truncated("ELF header"))
    );
    let mut bad = good.clone();
    bad[1] = b'X';
    assert_eq!(parse_elf(&bad, ram), Err(PvhError::NotElf));
    let mut bad = good.clone();
    bad[4] = 3;
    assert_eq!(parse_elf(&bad, ram), Err(PvhError::BadClass(3)));
    let mut bad = good.clone();
    bad[18] = 40;
    assert_eq!(parse_elf(&bad, ram), Err(PvhError::BadMachine(40)));
    let mut bad = good.clone();
    bad[16] = 3;
    assert_eq!(parse_elf(&bad, ram), Err(PvhError::NotExecutable(3)));
    assert_eq!(
        parse_elf(&good[..good.len() - 4], ram),
        Err(PvhError::SegmentOutsideFile { paddr: 0 })
    );
    // No PVH note.
    let elf = make_elf(true, MIB, &[0x90; 64], 0, &note(b"GNU\0", 18, &[0; 4]));
    assert_eq!(parse_elf(&elf, ram), Err(PvhError::NoPvhNote));
    // Entry outside the image.
    let elf = make_elf(true, MIB, &[0x90; 64], 0, &pvh_note(0x5000));
    assert_eq!(
        parse_elf(&elf, ram),
        Err(PvhError::EntryOutsideImage(0x5000))
    );
    // Segment beyond RAM.
    assert_eq!(
        parse_elf(&good, MIB + 32),
        Err(PvhError::SegmentOutsideRam {
            paddr: MIB,
            size: 64
        })
    );
    // Segment over the boot parameter page.
    let elf = make_elf(true, 0x6800, &[0x90; 64], 0, &pvh_note(0x6800));
    assert_eq!(
        parse_elf(&elf, ram),
        Err(PvhError::SegmentOverlapsBootParams { paddr: 0x6800 })
    );
    // Note descriptor running past the segment.
    let mut notes = note(b"Xen\0", 18, &[0; 4]);
    notes[4] = 200;
    let elf = make_elf(true, MIB, &[0x90; 64], 0, &notes);
    assert_eq!(parse_elf(&elf, ram), Err(PvhError::MalformedNote));
    // Entry note of a strange size.
    let elf = make_elf(true, MIB, &[0x90; 64], 0, &note(b"Xen\0", 18, &[0; 2]));
    assert_eq!(parse_elf(&elf, ram), Err(PvhError::BadEntryNoteSize(2)));
}

#[test]
fn load_copies_and_zeroes() {
    let elf = make_elf(false, MIB, &[1, 2, 3, 4], 4, &pvh_note(MIB as u32));
    let img = parse_elf(&elf, 2 * MIB).unwrap();
    let ram = core::cell::RefCell::new(vec![0xeeu8; 2 * MIB as usize]);
    img.load(
        &elf,
        |gpa, bytes| {
            ram.borrow_mut()[gpa as usize..gpa as usize + bytes.len()].copy_from_slice(bytes);
            Ok::<(), ()>(())
        },
        |gpa, len| {
            ram.borrow_mut()[gpa as usize..(gpa + len) as usize].fill(0);
            Ok(())
        },
    )
    .unwrap();
    let ram = ram.into_inner();
    assert_eq!(
        &ram[MIB as usize..MIB as usize + 9],
        &[1, 2, 3, 4, 0, 0, 0, 0, 0xee]
    );
}

#[test]
fn boot_params_layout() {
    let p = build_boot_params(64 * MIB, "hb.wss_mib=8").unwrap();
    assert_eq!(p.gpa, START_INFO_GPA);
    let b = &p.bytes;
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    assert_eq!(u32_at(0), START_INFO_MAGIC);
    assert_eq!(u32_at(4), 1);
    let memmap = u64_at(40);
    assert_eq!(u32_at(48), 3);
    let m = (memmap - START_INFO_GPA) as usize;
    assert_eq!(
        (u64_at(m), u64_at(m + 8), u32_at(m + 16)),
        (0, 0xa0000, E820_RAM)
    );
    assert_eq!(u32_at(m + 24 + 16), E820_RESERVED);
    assert_eq!(
        (u64_at(m + 48), u64_at(m + 56), u32_at(m + 64)),
        (MIB, 63 * MIB, E820_RAM)
    );
    let c = (u64_at(24) - START_INFO_GPA) as usize;
    assert_eq!(&b[c..], b"hb.wss_mib=8\0");
    assert!(b.len() <= 4096);
}

#[test]
fn boot_params_reject_bad_input() {
    assert_eq!(build_boot_params(MIB, ""), Err(PvhError::RamTooSmall(MIB)));
    assert_eq!(
        build_boot_params(8 * MIB, "a\0b"),
        Err(PvhError::BadCmdline)
    );
    let long = "x".repeat(MAX_CMDLINE_LEN + 1);
    assert_eq!(build_boot_params(8 * MIB, &long), Err(PvhError::BadCmdline));
    let max = "x".repeat(MAX_CMDLINE_LEN);
    assert!(build_boot_params(8 * MIB, &max).unwrap().bytes.len() <= 4096);
}

proptest! {
    /// Arbitrary bytes, and arbitrary corruptions of a good image, never panic the parser;
    /// whatever it accepts has its segments inside RAM and the entry inside a segment.
    #[test]
    fn parser_never_panics(
        garbage in proptest::collection::vec(any::<u8>(), 0..512),
        flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..8),
        ram in 0u64..(64 * MIB),
    ) {
        let _ = parse_elf(&garbage, ram);
        let mut elf = make_elf(true, MIB, &[0x90; 64], 0x100, &pvh_note(MIB as u32 + 1));
        for (at, v) in flips {
            let at = at % elf.len();
            elf[at] = v;
        }
        if let Ok(img) = parse_elf(&elf, ram) {
            for s in &img.segments {
                prop_assert!(s.guest_phys + s.mem_size <= ram);
            }
            let e = u64::from(img.entry);
            prop_assert!(img.segments.iter().any(|s| (s.guest_phys..s.guest_phys + s.mem_size).contains(&e)));
        }
    }
}

/// Parses the real heartbeat guest when `TERN_HEARTBEAT_ELF` names it (set by system tests);
/// skipped otherwise.
#[test]
fn parses_heartbeat_guest_when_available() {
    let Ok(path) = std::env::var("TERN_HEARTBEAT_ELF") else {
        return;
    };
    let elf = std::fs::read(&path).expect("TERN_HEARTBEAT_ELF names a readable file");
    let img = parse_elf(&elf, 64 * MIB).expect("heartbeat is a valid PVH image");
    assert_eq!(img.entry, 0x10_0000);
    assert!(img.segments.len() >= 3);
    std::println!("{img:?}");
}
