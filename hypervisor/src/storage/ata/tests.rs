//! The driver against the fake channel: probing every kind of slot, LBA48 register order,
//! multi-command transfers, and every failure ending in an error an operator can read.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::driver::{AtaDisk, AtaError};
use super::fake_device::{FakeChannel, FakeDrive};
use super::identify::IdentifyError;
use super::ports::DriveSlot;
use super::regs::{self, command, reg};

fn slot(name: &str) -> DriveSlot {
    DriveSlot::parse(name).expect("slot name")
}

fn disk_with(sectors: usize) -> AtaDisk<FakeChannel> {
    let chan = FakeChannel::new(None, Some(FakeDrive::new(sectors)));
    AtaDisk::probe(chan, slot("ata0-slave")).expect("probe")
}

#[test]
fn drive_names_round_trip_and_bad_ones_are_refused() {
    for n in ["ata0-master", "ata0-slave", "ata1-master", "ata1-slave"] {
        assert_eq!(format!("{}", slot(n)), n);
    }
    for bad in ["ata2-master", "ata1", "ata1-middle", "", "hda"] {
        assert!(DriveSlot::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn probe_reads_size_and_model() {
    let disk = disk_with(4096);
    assert_eq!(disk.sectors(), 4096);
    assert_eq!(disk.identity().model, "TERN FAKE DISK");
}

#[test]
fn probe_refuses_missing_atapi_and_non_lba48_drives() {
    let s = slot("ata1-master");
    let none = AtaDisk::probe(FakeChannel::new(None, None), s).unwrap_err();
    assert_eq!(none, AtaError::NoDrive(s));
    assert_eq!(format!("{none}"), "no drive at ata1-master");

    let mut cd = FakeDrive::new(8);
    cd.atapi = true;
    let err = AtaDisk::probe(FakeChannel::new(Some(cd), None), s).unwrap_err();
    assert_eq!(err, AtaError::NotAtaDisk(s));

    let mut old = FakeDrive::new(8);
    old.no_lba48 = true;
    let err = AtaDisk::probe(FakeChannel::new(Some(old), None), s).unwrap_err();
    assert_eq!(err, AtaError::Identify(s, IdentifyError::NoLba48));
    assert!(format!("{err}").contains("LBA48"));
}

#[test]
fn lba48_registers_are_written_high_bytes_first() {
    let seq = regs::lba48_sequence(0x0123_4567_89ab, 0x0102);
    assert_eq!(
        seq,
        [
            (reg::SECTOR_COUNT, 0x01),
            (reg::LBA_LOW, 0x45),
            (reg::LBA_MID, 0x23),
            (reg::LBA_HIGH, 0x01),
            (reg::SECTOR_COUNT, 0x02),
            (reg::LBA_LOW, 0xab),
            (reg::LBA_MID, 0x89),
            (reg::LBA_HIGH, 0x67),
        ]
    );
    // 65536 sectors is count 0.
    assert_eq!(regs::lba48_sequence(0, 65536)[0].1, 0);
    assert_eq!(regs::lba48_sequence(0, 65536)[4].1, 0);
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn writes_land_where_reads_find_them_across_command_boundaries() {
    let mut disk = disk_with(2048);
    // 600 sectors: three commands (256 + 256 + 88).
    let data = pattern(600 * 512, 7);
    disk.write(100, &data).expect("write");
    let mut back = vec![0; data.len()];
    disk.read(100, &mut back).expect("read");
    assert_eq!(back, data);
    let drive = disk.ports_mut().drives[1].as_ref().expect("slave");
    assert_eq!(&drive.data[100 * 512..700 * 512], &data[..]);
    assert!(drive.data[..100 * 512].iter().all(|&b| b == 0));
    let cmds = &disk.ports_mut().commands;
    let writes = cmds
        .iter()
        .filter(|&&c| c == command::WRITE_SECTORS_EXT)
        .count();
    assert_eq!(writes, 3);
}

#[test]
fn flush_issues_flush_cache_ext() {
    let mut disk = disk_with(16);
    disk.flush().expect("flush");
    let drive = disk.ports_mut().drives[1].as_ref().expect("slave");
    assert_eq!(drive.flushes, 1);
}

#[test]
fn requests_outside_the_disk_or_partial_sectors_are_refused_before_any_command() {
    let mut disk = disk_with(16);
    let before = disk.ports_mut().commands.len();
    let mut buf = vec![0; 1024];
    assert_eq!(
        disk.read(15, &mut buf),
        Err(AtaError::BadRequest { lba: 15, len: 1024 })
    );
    assert!(disk.write(0, &[0; 100]).is_err());
    assert!(disk.write(u64::MAX, &[0; 512]).is_err());
    assert!(disk.read(0, &mut []).is_err());
    assert_eq!(disk.ports_mut().commands.len(), before);
}

#[test]
fn a_bad_sector_is_a_device_error_not_a_hang() {
    let mut drive = FakeDrive::new(64);
    drive.bad_lba = Some(10);
    let s = slot("ata1-master");
    let mut disk = AtaDisk::probe(FakeChannel::new(Some(drive), None), s).expect("probe");
    let mut buf = vec![0; 8 * 512];
    let err = disk.read(8, &mut buf).unwrap_err();
    assert!(
        matches!(err, AtaError::Device { error: 0x40, .. }),
        "{err:?}"
    );
    assert!(disk.write(8, &buf).is_err());
    // The drive still works afterwards.
    disk.read(20, &mut buf).expect("read elsewhere");
}

#[test]
fn a_drive_that_stays_busy_times_out() {
    let s = slot("ata1-master");
    let mut disk =
        AtaDisk::probe(FakeChannel::new(Some(FakeDrive::new(8)), None), s).expect("probe");
    disk.ports_mut().drives[0]
        .as_mut()
        .expect("drive")
        .stuck_busy = true;
    let err = disk.flush().unwrap_err();
    assert_eq!(
        err,
        AtaError::Timeout {
            slot: s,
            waiting_for: "the flush to complete"
        }
    );
    assert_eq!(
        format!("{}", disk.flush().unwrap_err()),
        "ata1-master timed out waiting for the drive to be idle"
    );
}
