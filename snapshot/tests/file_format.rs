//! The snapshot file: round trip, and every way a damaged file must be refused.

mod common;

use snapshot::format::{FormatError, MAGIC, PREAMBLE_LEN, RecordKind, Snapshot, SnapshotSummary};

#[test]
fn a_written_snapshot_reads_back_identical() {
    let original = common::snapshot();
    let file = original.to_bytes().expect("encode");
    let back = Snapshot::from_bytes(&file).expect("decode");
    assert_eq!(back, original);
    // Zero runs are left out: the upper half of memory costs nothing.
    assert!(
        file.len() < common::MEMORY_BYTES / 2 + 64 * 1024,
        "{}",
        file.len()
    );
    let summary = SnapshotSummary::from_bytes(&file).expect("summary");
    assert_eq!(summary.identity.name, "hb1");
    assert_eq!(summary.header.devices.len(), 2);
    let text = summary.to_string();
    for needle in [
        "hb1",
        "2 MiB",
        "com1 (v1, 4 bytes)",
        "tsc-rate",
        "digest verified",
    ] {
        assert!(text.contains(needle), "info lacks {needle}:\n{text}");
    }
}

#[test]
fn every_truncation_is_refused_as_truncated() {
    let file = common::snapshot().to_bytes().expect("encode");
    for cut in [
        file.len() - 1,
        file.len() - 32,
        file.len() - 40,
        file.len() / 2,
        17,
        16,
    ] {
        match Snapshot::from_bytes(&file[..cut]) {
            Err(FormatError::Truncated { len }) => assert_eq!(len, cut as u64),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let message = Snapshot::from_bytes(&file[..file.len() / 2])
        .expect_err("truncated")
        .to_string();
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn any_altered_byte_is_refused_by_the_digest() {
    let file = common::snapshot().to_bytes().expect("encode");
    // A byte in the header, in a page run, in the vCPU state, and in the digest itself.
    for at in [
        PREAMBLE_LEN + 10,
        file.len() / 3,
        file.len() - 200,
        file.len() - 1,
    ] {
        let mut altered = file.clone();
        altered[at] ^= 0x01;
        match Snapshot::from_bytes(&altered) {
            Err(FormatError::DigestMismatch) => {}
            other => panic!("byte {at} altered: {other:?}"),
        }
        assert!(
            SnapshotSummary::from_bytes(&altered).is_err(),
            "info must refuse it too"
        );
    }
    let message = FormatError::DigestMismatch.to_string();
    assert!(message.contains("altered"), "{message}");
}

#[test]
fn appended_bytes_are_refused() {
    let mut file = common::snapshot().to_bytes().expect("encode");
    file.extend_from_slice(b"junk");
    assert!(matches!(
        Snapshot::from_bytes(&file),
        Err(FormatError::Truncated { .. })
    ));
}

#[test]
fn wrong_magic_and_versions_are_named() {
    let file = common::snapshot().to_bytes().expect("encode");
    let mut other = file.clone();
    other[0] = b'X';
    assert!(matches!(
        Snapshot::from_bytes(&other),
        Err(FormatError::NotASnapshot)
    ));
    assert!(matches!(
        Snapshot::from_bytes(b"hello"),
        Err(FormatError::NotASnapshot)
    ));
    let mut newer = file.clone();
    newer[8] = 3;
    assert!(matches!(
        Snapshot::from_bytes(&newer),
        Err(FormatError::UnsupportedVersion(3))
    ));
    let mut flagged = file;
    flagged[10] = 1;
    assert!(matches!(
        Snapshot::from_bytes(&flagged),
        Err(FormatError::UnknownFlags(1))
    ));
    assert_eq!(&MAGIC, b"TERNSNAP");
}

#[test]
fn a_resealed_file_with_wrong_memory_fails_the_memory_digest() {
    // Someone who recomputes the END digest (it is not keyed) still cannot change memory
    // unnoticed unless they also rewrite the header's memory digest.
    let mut snap = common::snapshot();
    snap.header.memory_digest[0] ^= 1;
    let file = snap.to_bytes().expect("encode");
    assert!(matches!(
        Snapshot::from_bytes(&file),
        Err(FormatError::MemoryDigestMismatch)
    ));
}

#[test]
fn a_resealed_file_with_a_bad_record_is_refused_with_its_offset() {
    let mut file = common::snapshot().to_bytes().expect("encode");
    // The first record's kind becomes unknown.
    file[PREAMBLE_LEN] = 0x77;
    common::reseal(&mut file);
    match Snapshot::from_bytes(&file) {
        Err(FormatError::BadRecord { offset, why }) => {
            assert_eq!(offset, PREAMBLE_LEN);
            assert!(why.contains("unknown record kind"), "{why}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_vcpu_or_device_states_are_refused() {
    let mut snap = common::snapshot();
    snap.vcpus.clear();
    let file = snap.to_bytes().expect("encode");
    assert!(matches!(
        Snapshot::from_bytes(&file),
        Err(FormatError::BadRecord { .. })
    ));

    let mut snap = common::snapshot();
    snap.devices.pop();
    let file = snap.to_bytes().expect("encode");
    let err = Snapshot::from_bytes(&file).expect_err("device list mismatch");
    assert!(err.to_string().contains("device list"), "{err}");
}

#[test]
fn files_on_disk_are_read_and_checked() {
    let dir = std::env::temp_dir().join(format!("tern-snapshot-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("hb1.snap");
    let snap = common::snapshot();
    std::fs::write(&path, snap.to_bytes().expect("encode")).expect("write");
    assert_eq!(Snapshot::read_file(&path).expect("read"), snap);
    let len = std::fs::metadata(&path).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(len - 100).expect("truncate");
    assert!(matches!(
        Snapshot::read_file(&path),
        Err(FormatError::Truncated { .. })
    ));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn resealed_random_damage_is_refused_without_panicking() {
    // The END digest is not keyed, so a crafted file gets past it: every decoder behind it
    // must refuse bad input with an error, never a panic.
    let mut snap = common::snapshot();
    snap.memory.truncate(64 * 1024);
    snap.identity.memory_bytes = 64 * 1024;
    snap.header.memory_digest = migration_proto::digest::digest_memory(&snap.memory);
    let file = snap.to_bytes().expect("encode");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let body = PREAMBLE_LEN..file.len() - 40;
    for _ in 0..1000 {
        let mut damaged = file.clone();
        for _ in 0..1 + next() % 4 {
            let at = body.start + (next() as usize) % body.len();
            damaged[at] = next() as u8;
        }
        common::reseal(&mut damaged);
        // Ok only if the damage left a valid snapshot (e.g. a byte set to its own value).
        if let Ok(back) = Snapshot::from_bytes(&damaged) {
            assert_eq!(back.memory.len(), 64 * 1024);
        }
        let _ = SnapshotSummary::from_bytes(&damaged);
    }
}

#[test]
fn a_snapshot_with_a_disk_reads_back_identical_and_info_lists_it() {
    let original = common::snapshot_with_disk();
    let file = original.to_bytes().expect("encode");
    let back = Snapshot::from_bytes(&file).expect("decode");
    assert_eq!(back, original);
    assert_eq!(back.disks[0].data, common::disk().data);
    let disk_records = common::records(&file)
        .iter()
        .filter(|(_, kind, _)| *kind == RecordKind::Disk as u16)
        .count();
    // 300 KiB of pattern = two 256 KiB runs; the zero middle is left out; the last run.
    assert_eq!(disk_records, 3);
    let text = SnapshotSummary::from_bytes(&file)
        .expect("summary")
        .to_string();
    for needle in [
        "snapshot format 2",
        "vda (id 0, 1 MiB = 1050112 bytes, 512-byte blocks)",
        "3 block runs stored",
        "lapic0",
        "cpu-model",
    ] {
        assert!(text.contains(needle), "info lacks {needle}:\n{text}");
    }
}

#[test]
fn every_device_state_a_tern_host_sends_is_kept_in_order() {
    // Interrupt and timer models, the CPU model and the disk's queue state travel as
    // opaque device states: the file keeps each, byte for byte and in arrival order (the
    // destination loads the timer models after `tsc-rate`).
    let mut snap = common::snapshot();
    snap.devices = common::tern_devices(255);
    snap.header.devices = Snapshot::device_entries(&snap.devices);
    let back = Snapshot::from_bytes(&snap.to_bytes().expect("encode")).expect("decode");
    assert_eq!(back.devices, snap.devices);
}

/// Offset and length of the first DISK record's payload.
fn first_disk_record(file: &[u8]) -> (usize, usize) {
    let (at, _, len) = *common::records(file)
        .iter()
        .find(|(_, kind, _)| *kind == RecordKind::Disk as u16)
        .expect("a disk record");
    (at, len)
}

#[test]
fn a_damaged_disk_record_is_refused() {
    let file = common::snapshot_with_disk().to_bytes().expect("encode");
    let (at, len) = first_disk_record(&file);
    // A flipped block byte: the END digest refuses the file.
    let mut damaged = file.clone();
    damaged[at + 8 + len - 1] ^= 0x40;
    assert!(matches!(
        Snapshot::from_bytes(&damaged),
        Err(FormatError::DigestMismatch)
    ));
    // Resealed, the disk's content digest still refuses it, naming the disk.
    common::reseal(&mut damaged);
    let err = Snapshot::from_bytes(&damaged).expect_err("disk digest");
    assert!(
        matches!(&err, FormatError::DiskDigestMismatch { disk } if disk == "vda"),
        "{err:?}"
    );
    assert!(err.to_string().contains("disk vda"), "{err}");
    // A run naming a disk the header does not list (disk_id is the payload's first u32).
    let mut damaged = file.clone();
    damaged[at + 8] = 7;
    common::reseal(&mut damaged);
    match Snapshot::from_bytes(&damaged) {
        Err(FormatError::BadRecord { offset, why }) => {
            assert_eq!(offset, at);
            assert!(why.contains("disk 7 is not in the header"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // A run moved onto blocks another run stored (first_lba 0 -> 512: the second run).
    let mut damaged = file.clone();
    damaged[at + 8 + 4 + 1] = 2; // first_lba = 0x200
    common::reseal(&mut damaged);
    let err = Snapshot::from_bytes(&damaged).expect_err("stored twice");
    assert!(err.to_string().contains("stored twice"), "{err}");
    // A run past the end of the disk.
    let mut damaged = file;
    damaged[at + 8 + 4 + 2] = 0x10; // first_lba = 0x100000
    common::reseal(&mut damaged);
    let err = Snapshot::from_bytes(&damaged).expect_err("outside");
    assert!(err.to_string().contains("outside disk vda"), "{err}");
}

#[test]
fn a_disk_whose_contents_differ_from_the_header_digest_is_refused() {
    let mut snap = common::snapshot_with_disk();
    snap.header.disks[0].digest[5] ^= 1;
    let file = snap.to_bytes().expect("encode");
    assert!(matches!(
        Snapshot::from_bytes(&file),
        Err(FormatError::DiskDigestMismatch { .. })
    ));
}

#[test]
fn format_1_files_still_read_and_may_not_hold_disks() {
    // Format 1 is format 2 without disks: the same bytes but the version.
    let mut old = common::snapshot().to_bytes().expect("encode");
    old[8] = 1;
    common::reseal(&mut old);
    assert_eq!(
        Snapshot::from_bytes(&old).expect("format 1"),
        common::snapshot()
    );
    let mut old = common::snapshot_with_disk().to_bytes().expect("encode");
    old[8] = 1;
    common::reseal(&mut old);
    let err = Snapshot::from_bytes(&old).expect_err("format 1 with a disk");
    assert!(err.to_string().contains("format 1 holds no disks"), "{err}");
}
