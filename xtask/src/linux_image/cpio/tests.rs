//! The writer checked against the format by an independent reader, and one header byte for
//! byte.

use super::*;

/// One entry as a reader sees it.
#[derive(Debug, PartialEq)]
struct Parsed {
    name: String,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: Vec<u8>,
}

fn hex(field: &[u8]) -> u32 {
    u32::from_str_radix(std::str::from_utf8(field).expect("ascii"), 16).expect("hex")
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parse a newc archive up to its trailer; panics on any format error.
fn parse(archive: &[u8]) -> Vec<Parsed> {
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        assert_eq!(at % 4, 0, "entry not 4-aligned");
        let header = &archive[at..at + 110];
        assert_eq!(&header[..6], b"070701");
        let field = |i: usize| hex(&header[6 + 8 * i..6 + 8 * (i + 1)]);
        let (mode, nlink, size, rmaj, rmin, namesize, check) = (
            field(1),
            field(4),
            field(6) as usize,
            field(9),
            field(10),
            field(11) as usize,
            field(12),
        );
        assert_eq!(check, 0);
        assert_eq!((field(2), field(3), field(5)), (0, 0, 0), "uid, gid, mtime");
        let name_end = at + 110 + namesize;
        assert_eq!(archive[name_end - 1], 0, "name not NUL-terminated");
        let name = String::from_utf8(archive[at + 110..name_end - 1].to_vec()).expect("utf8");
        let data_at = align4(name_end);
        assert!(archive[name_end..data_at].iter().all(|&b| b == 0));
        let data = archive[data_at..data_at + size].to_vec();
        at = align4(data_at + size);
        if name == "TRAILER!!!" {
            assert_eq!(at, archive.len(), "bytes after the trailer");
            return entries;
        }
        entries.push(Parsed {
            name,
            mode,
            nlink,
            rdev: (rmaj, rmin),
            data,
        });
    }
}

#[test]
fn every_kind_of_entry_reads_back() {
    let mut w = CpioWriter::new();
    w.add("bin", 0o755, EntryKind::Directory).unwrap();
    w.add("bin/busybox", 0o755, EntryKind::File(b"\x7fELF12345"))
        .unwrap();
    w.add("bin/sh", 0o777, EntryKind::Symlink("busybox"))
        .unwrap();
    w.add(
        "dev/console",
        0o600,
        EntryKind::CharDevice { major: 5, minor: 1 },
    )
    .unwrap();
    w.add("init", 0o755, EntryKind::File(b"#!/bin/sh\n"))
        .unwrap();
    let entries = parse(&w.finish());
    assert_eq!(
        entries,
        vec![
            Parsed {
                name: "bin".into(),
                mode: 0o040755,
                nlink: 2,
                rdev: (0, 0),
                data: vec![]
            },
            Parsed {
                name: "bin/busybox".into(),
                mode: 0o100755,
                nlink: 1,
                rdev: (0, 0),
                data: b"\x7fELF12345".to_vec()
            },
            Parsed {
                name: "bin/sh".into(),
                mode: 0o120777,
                nlink: 1,
                rdev: (0, 0),
                data: b"busybox".to_vec()
            },
            Parsed {
                name: "dev/console".into(),
                mode: 0o020600,
                nlink: 1,
                rdev: (5, 1),
                data: vec![]
            },
            Parsed {
                name: "init".into(),
                mode: 0o100755,
                nlink: 1,
                rdev: (0, 0),
                data: b"#!/bin/sh\n".to_vec()
            },
        ]
    );
}

#[test]
fn a_header_byte_for_byte() {
    let mut w = CpioWriter::new();
    w.add("a", 0o644, EntryKind::File(b"xyz")).unwrap();
    let archive = w.finish();
    let expected_header = "070701\
        00000001\
        000081a4\
        00000000\
        00000000\
        00000001\
        00000000\
        00000003\
        00000000\
        00000000\
        00000000\
        00000000\
        00000002\
        00000000";
    assert_eq!(&archive[..110], expected_header.as_bytes());
    // Name "a\0" ends at 112, already aligned; data "xyz" then one pad byte.
    assert_eq!(&archive[110..116], b"a\0xyz\0");
    assert_eq!(archive.len() % 4, 0);
}

#[test]
fn names_of_every_length_keep_alignment() {
    for len in 1..12 {
        let name = "n".repeat(len);
        for data_len in 0..6 {
            let data = vec![0xAB; data_len];
            let mut w = CpioWriter::new();
            w.add(&name, 0o644, EntryKind::File(&data)).unwrap();
            w.add("z", 0o644, EntryKind::File(b"1")).unwrap();
            let entries = parse(&w.finish());
            assert_eq!(entries[0].name, name);
            assert_eq!(entries[0].data, data);
            assert_eq!(entries[1].name, "z");
        }
    }
}

#[test]
fn bad_entries_are_refused() {
    let mut w = CpioWriter::new();
    assert!(matches!(
        w.add("/abs", 0o644, EntryKind::Directory),
        Err(CpioError::BadName(_))
    ));
    assert!(matches!(
        w.add("", 0o644, EntryKind::Directory),
        Err(CpioError::BadName(_))
    ));
    assert!(matches!(
        w.add("a\0b", 0o644, EntryKind::Directory),
        Err(CpioError::BadName(_))
    ));
    assert!(matches!(
        w.add("TRAILER!!!", 0o644, EntryKind::Directory),
        Err(CpioError::BadName(_))
    ));
    assert!(matches!(
        w.add("x", 0o10644, EntryKind::Directory),
        Err(CpioError::BadPermissions { .. })
    ));
    // Refused entries leave no trace.
    assert!(parse(&w.finish()).is_empty());
}

#[test]
fn inode_numbers_are_distinct() {
    let mut w = CpioWriter::new();
    for i in 0..5 {
        w.add(&format!("f{i}"), 0o644, EntryKind::File(b""))
            .unwrap();
    }
    let archive = w.finish();
    let mut inodes = Vec::new();
    let mut at = 0;
    while at < archive.len() {
        let header = &archive[at..at + 110];
        inodes.push(hex(&header[6..14]));
        let namesize = hex(&header[94..102]) as usize;
        at = align4(align4(at + 110 + namesize) + hex(&header[54..62]) as usize);
    }
    inodes.pop(); // trailer
    let mut sorted = inodes.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 5);
}
