//! `block_migrate` against a RAM disk and a host-disk region on the fake ATA drive: the
//! target ends equal to the source under guest writes between (and during) steps; cancel,
//! a failing target and a corrupted target all keep the source; no guest completion is lost
//! across the swap.

use alloc::format;
use alloc::string::ToString;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use spin::Mutex;

use super::ata::fake_device::{FakeChannel, FakeDrive};
use super::ata::{AtaDisk, DriveSlot};
use super::host_disk::{HostDiskRegion, SharedAtaDisk};
use super::mirror::{CHUNK_BYTES, MirrorOutcome, MirrorPhase};
use super::region::parse_region;
use super::vm_disk::{DynAtaPorts, VmDisk};
use crate::vm::virtio_blk::RamDisk;
use crate::vm::virtio_blk::backend::{BlockBackend, BlockOp};

const DISK: usize = 1 << 20;

/// A fake channel behind the boxed port type, with a handle on its drive's contents.
struct Shared(Arc<Mutex<FakeChannel>>);

impl super::ata::AtaPorts for Shared {
    fn read_reg(&mut self, o: u16) -> u8 {
        self.0.lock().read_reg(o)
    }
    fn write_reg(&mut self, o: u16, v: u8) {
        self.0.lock().write_reg(o, v)
    }
    fn read_data(&mut self) -> u16 {
        self.0.lock().read_data()
    }
    fn write_data(&mut self, v: u16) {
        self.0.lock().write_data(v)
    }
    fn read_alt_status(&mut self) -> u8 {
        self.0.lock().read_alt_status()
    }
    fn write_control(&mut self, v: u8) {
        self.0.lock().write_control(v)
    }
}

struct Rig {
    chan: Arc<Mutex<FakeChannel>>,
    disk: SharedAtaDisk<DynAtaPorts>,
}

fn rig() -> Rig {
    let chan = Arc::new(Mutex::new(FakeChannel::new(
        Some(FakeDrive::new(4 * DISK / 512)),
        None,
    )));
    let ports: DynAtaPorts = alloc::boxed::Box::new(Shared(chan.clone()));
    let slot = DriveSlot::parse("ata1-master").expect("slot");
    let disk = Arc::new(Mutex::new(AtaDisk::probe(ports, slot).expect("probe")));
    Rig { chan, disk }
}

impl Rig {
    fn region(&self) -> VmDisk {
        let r = parse_region("1M@1M").expect("region");
        VmDisk::Host(HostDiskRegion::new(self.disk.clone(), r).expect("fits"))
    }

    fn raw_region(&self) -> Vec<u8> {
        let chan = self.chan.lock();
        chan.drives[0].as_ref().expect("drive").data[DISK..2 * DISK].to_vec()
    }
}

fn ram(seed: u8) -> VmDisk {
    let image = (0..DISK).map(|i| (i / 512) as u8 ^ seed).collect();
    VmDisk::Ram(RamDisk::from_image(image, 512, false).expect("ram"))
}

fn contents(d: &VmDisk) -> Vec<u8> {
    let mut out = vec![0; DISK];
    d.read_bytes(0, &mut out).expect("read");
    out
}

fn write(d: &mut VmDisk, tag: u64, sector: u64, byte: u8) {
    d.submit(
        tag,
        BlockOp::Write {
            sector,
            data: vec![byte; 1024],
        },
    );
    let c = d.poll_completion().expect("completion");
    assert_eq!((c.tag, c.result.is_ok()), (tag, true));
}

fn run_to_end(d: &mut VmDisk) -> MirrorOutcome {
    for _ in 0..10_000 {
        if let Some(o) = d.step(CHUNK_BYTES) {
            return o;
        }
    }
    panic!("the move did not end: {:?}", d.mirror_progress());
}

#[test]
fn ram_to_host_under_writes_cuts_over_with_every_write() {
    let r = rig();
    let mut d = ram(3);
    d.start_mirror(r.region()).expect("start");
    assert_eq!(d.kind(), "ram->host");
    let mut tag = 0;
    // Writes ahead of, behind and inside the bulk cursor, between steps.
    // 20 chunk-steps: the bulk pass (16 chunks) ends and verification starts under writes.
    for step in 0..20u64 {
        assert_eq!(d.step(CHUNK_BYTES / 2), None);
        for sector in [step * 50 % 2046, 2046 - step, step * 7] {
            write(&mut d, tag, sector, step as u8 + 1);
            tag += 1;
        }
    }
    let expected = contents(&d);
    let outcome = run_to_end(&mut d);
    assert!(
        matches!(outcome, MirrorOutcome::CutOver { mirrored_writes, .. } if mirrored_writes == 60),
        "{outcome:?}"
    );
    assert_eq!(d.kind(), "host");
    assert_eq!(contents(&d), expected);
    assert_eq!(r.raw_region(), expected);
    // The VM keeps writing to its new home.
    write(&mut d, tag, 5, 0xee);
    assert_eq!(r.raw_region()[5 * 512], 0xee);
    assert!(format!("{outcome}").contains("digests verified, cut over"));
}

#[test]
fn host_to_ram_and_back() {
    let r = rig();
    let mut d = ram(9);
    d.start_mirror(r.region()).expect("to host");
    run_to_end(&mut d);
    let on_host = contents(&d);
    let blank = VmDisk::Ram(RamDisk::from_image(vec![0; DISK], 512, false).expect("ram"));
    d.start_mirror(blank).expect("to ram");
    assert_eq!(d.kind(), "host->ram");
    let outcome = run_to_end(&mut d);
    assert!(matches!(
        outcome,
        MirrorOutcome::CutOver {
            kind: "host->ram",
            ..
        }
    ));
    assert_eq!(d.kind(), "ram");
    assert_eq!(contents(&d), on_host);
}

#[test]
fn cancel_keeps_the_source_with_the_guest_writes() {
    let r = rig();
    let mut d = ram(1);
    d.start_mirror(r.region()).expect("start");
    d.step(CHUNK_BYTES * 3);
    write(&mut d, 1, 100, 0x77);
    let progress = d.mirror_progress().expect("running");
    assert_eq!(progress.phase, MirrorPhase::Copying);
    assert_eq!(progress.copied_bytes, CHUNK_BYTES * 3);
    assert!(format!("{progress}").starts_with("block_migrate ram->host: copying 18%"));
    d.cancel_mirror().expect("cancel");
    let outcome = d.step(CHUNK_BYTES).expect("ended");
    assert_eq!(
        outcome,
        MirrorOutcome::SourceKept {
            kind: "ram->host",
            why: "cancelled".into()
        }
    );
    assert_eq!(d.kind(), "ram");
    assert_eq!(contents(&d)[100 * 512], 0x77);
    assert_eq!(
        d.cancel_mirror(),
        Err("no block migration is running".to_string())
    );
}

#[test]
fn a_failing_target_keeps_the_source_and_the_guest_never_notices() {
    let r = rig();
    r.chan.lock().drives[0].as_mut().expect("drive").bad_lba = Some(2048 + 600);
    let mut d = ram(2);
    d.start_mirror(r.region()).expect("start");
    write(&mut d, 1, 10, 0x55);
    let outcome = run_to_end(&mut d);
    let MirrorOutcome::SourceKept { why, .. } = &outcome else {
        panic!("{outcome:?}");
    };
    assert!(why.contains("writing the target"), "{why}");
    assert_eq!(d.kind(), "ram");
    assert_eq!(contents(&d)[10 * 512], 0x55);
}

#[test]
fn a_target_corrupted_behind_our_back_fails_verification() {
    let r = rig();
    let mut d = ram(4);
    d.start_mirror(r.region()).expect("start");
    // Finish the bulk pass, then flip a byte on the drive before verification reads it.
    while d.mirror_progress().expect("running").phase == MirrorPhase::Copying {
        d.step(CHUNK_BYTES);
    }
    r.chan.lock().drives[0].as_mut().expect("drive").data[DISK + 700_000] ^= 1;
    let outcome = run_to_end(&mut d);
    let MirrorOutcome::SourceKept { why, .. } = &outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        why.contains("digest mismatch in the 64 KiB at byte 655360"),
        "{why}"
    );
    assert_eq!(d.kind(), "ram");
}

#[test]
fn no_swap_while_a_guest_completion_waits() {
    let r = rig();
    let mut d = ram(5);
    d.start_mirror(r.region()).expect("start");
    while d
        .mirror_progress()
        .is_some_and(|p| p.phase != MirrorPhase::Verified)
    {
        d.step(CHUNK_BYTES);
        if d.mirror_progress().is_none() {
            break;
        }
        if d.mirror_progress()
            .is_some_and(|p| p.phase == MirrorPhase::Verifying)
        {
            d.submit(
                42,
                BlockOp::Read {
                    sector: 0,
                    len: 512,
                },
            );
            break;
        }
    }
    for _ in 0..100 {
        assert_eq!(
            d.step(CHUNK_BYTES),
            None,
            "swapped with a completion pending"
        );
    }
    assert_eq!(d.poll_completion().map(|c| c.tag), Some(42));
    assert!(matches!(
        d.step(CHUNK_BYTES),
        Some(MirrorOutcome::CutOver { .. })
    ));
}

#[test]
fn sizes_must_match_and_one_move_at_a_time() {
    let r = rig();
    let mut d = VmDisk::Ram(RamDisk::from_image(vec![0; DISK / 2], 512, false).expect("ram"));
    let err = d.start_mirror(r.region()).unwrap_err();
    assert_eq!(
        err,
        "the target holds 1024 KiB, the disk 512 KiB: sizes must match"
    );
    let mut d = ram(0);
    d.start_mirror(r.region()).expect("start");
    let err = d.start_mirror(ram(0)).unwrap_err();
    assert_eq!(err, "a block migration (ram->host) is already running");
}

#[test]
fn byte_access_for_cross_host_migration_on_every_backend() {
    let r = rig();
    let mut d = ram(6);
    d.write_bytes(512, &[9; 1024]).expect("ram write");
    let mut out = [0u8; 1024];
    d.read_bytes(512, &mut out).expect("ram read");
    assert_eq!(out, [9; 1024]);
    assert!(d.read_bytes(DISK as u64 - 512, &mut out).is_err());
    assert!(d.write_bytes(u64::MAX, &[0; 512]).is_err());

    d.start_mirror(r.region()).expect("start");
    // While moving: reads come from the source, writes outside the guest path are refused.
    d.read_bytes(512, &mut out).expect("mirror read");
    assert_eq!(out, [9; 1024]);
    assert_eq!(
        d.write_bytes(0, &[0; 512]),
        Err("a block migration is running on this disk".to_string())
    );
    run_to_end(&mut d);

    d.write_bytes(2048, &[7; 512]).expect("host write");
    let mut one = [0u8; 512];
    d.read_bytes(2048, &mut one).expect("host read");
    assert_eq!(one, [7; 512]);
    assert_eq!(r.raw_region()[2048], 7);
    assert!(d.read_bytes(100, &mut one).is_err(), "not sector-aligned");
    assert!(
        d.read_bytes(DISK as u64, &mut one).is_err(),
        "past the region"
    );
}
