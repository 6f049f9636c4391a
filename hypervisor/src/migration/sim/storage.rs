//! Storage migration in simulation (`migrate -b`): the guest writes its disk while its
//! disk and memory move together; the destination's guest finds every block as it last
//! wrote it and goes on writing. Failures before the commit leave the VM and its disk
//! running, authoritative, on the source.

use std::string::ToString;

use super::disk::FakeDisk;
use super::guest::FakeGuest;
use super::scenarios::{assert_line, assert_moved, assert_stayed, dump};
use super::{Setup, migrate};
use crate::migration::destination::DestinationOutcome;
use crate::migration::params::FaultInjection;
use crate::migration::source::SourceOutcome;

const PAGES: usize = 512; // 2 MiB
const BLOCKS: usize = 4096; // 2 MiB of 512-byte blocks

fn guest_with_disk(writes_per_ms: u64) -> FakeGuest {
    let mut guest = FakeGuest::new(PAGES, 20);
    guest.disk = Some(FakeDisk::new(BLOCKS, writes_per_ms));
    guest
}

fn block_setup() -> Setup {
    let mut setup = Setup::new();
    setup.params.block_migration = true;
    setup
}

#[test]
fn a_disk_under_continuous_writes_moves_with_memory() {
    let mut guest = guest_with_disk(3);
    let run = migrate(&mut guest, block_setup());
    assert_line(
        &run,
        "migrate: copying disk vda (2048 KiB, 512-byte blocks)",
    );
    assert_line(&run, "[dst] migrate: incoming disk vda (2048 KiB)");
    let source_disk = guest.disk.as_ref().expect("source disk");
    let writes = source_disk.writes;
    let arrived = run
        .moved
        .as_ref()
        .and_then(|m| m.disk.as_ref())
        .expect("the disk moved");
    assert!(
        arrived.bytes == source_disk.bytes,
        "disk == source at pause"
    );
    assert_eq!(arrived.writes, writes, "the block sequence continues");
    arrived.verify().unwrap();
    // `assert_moved` runs the moved guest for 100 ms: 3 block writes each.
    let moved = assert_moved(&guest, run);
    let disk = moved.disk.as_ref().expect("disk");
    assert_eq!(disk.writes, writes + 300);
    disk.verify().unwrap();
}

#[test]
fn without_block_migration_the_disk_stays_behind_and_says_so() {
    // Plain `migrate` of a VM with a disk: the kernel refuses it (`migrate -b`); the
    // engine itself sends no disk then.
    let mut guest = guest_with_disk(1);
    let run = migrate(&mut guest, Setup::new());
    let moved = run.moved.as_ref().expect("memory moved");
    assert!(moved.disk.is_none(), "{}", dump(&run));
}

#[test]
fn a_destination_without_room_refuses_before_anything_moves() {
    let mut guest = guest_with_disk(2);
    let mut setup = block_setup();
    setup.factory.disk_limit_bytes = (BLOCKS * 512 / 2) as u64;
    let run = migrate(&mut guest, setup);
    assert_stayed(&mut guest, &run);
    let SourceOutcome::Failed(why) = &run.source else {
        unreachable!()
    };
    assert!(
        why.to_string().contains("no disk backend with room"),
        "{why}"
    );
    assert_eq!(run.factory.created, 0, "no VM was even built");
    guest.disk.as_ref().expect("disk").verify().unwrap();
}

#[test]
fn a_lost_block_is_refused_before_commit_and_the_source_disk_stays_authoritative() {
    let mut guest = guest_with_disk(2);
    let mut setup = block_setup();
    setup.params.fault_inject = FaultInjection::DropDiskBlock;
    let run = migrate(&mut guest, setup);
    assert_stayed(&mut guest, &run);
    let Some(DestinationOutcome::Failed(why)) = &run.destination else {
        panic!("{}", dump(&run));
    };
    assert!(why.to_string().contains("were never received"), "{why}");
    let disk = guest.disk.as_ref().expect("disk");
    disk.verify().unwrap();
    let before = disk.writes;
    for _ in 0..10 {
        guest.tick();
    }
    let disk = guest.disk.as_ref().expect("disk");
    assert_eq!(
        disk.writes,
        before + 20,
        "the guest goes on writing on the source"
    );
    disk.verify().unwrap();
}

#[test]
fn a_cut_link_during_the_copy_leaves_the_disk_on_the_source() {
    let mut guest = guest_with_disk(2);
    let mut setup = block_setup();
    setup.fault = super::Fault::CutAt(200);
    let run = migrate(&mut guest, setup);
    assert_stayed(&mut guest, &run);
    guest.disk.as_ref().expect("disk").verify().unwrap();
}
