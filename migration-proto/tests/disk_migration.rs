//! Storage migration (section 4b of docs/migration-protocol.md): the manifest before the
//! offer, refusal for lack of room before anything moves, blocks and dirty rounds, the
//! per-region disk digest, and every way a block can go missing or stale, each refused
//! before the commit with the source keeping its VM.

mod common;

use common::rogue::RogueSource;
use common::*;
use migration_proto::dirty::DirtyBitmap;
use migration_proto::message::{AbortReason, DiskBlocks, DiskDescriptor, Message};
use migration_proto::negotiation::Capabilities;
use migration_proto::session::{
    DestinationConfig, DestinationEvent, DestinationSession, DestinationState, SessionError,
    SourceConfig, SourceSession, SourceState, UsageError,
};
use proptest::prelude::*;

/// The disk of these tests: 4 MiB of 512-byte blocks (four 1 MiB digest regions).
const DISK_BYTES: u64 = 4 << 20;
const BS: usize = 512;
/// Blocks per `DiskBlocks` run.
const RUN: usize = 256;

fn disk() -> DiskDescriptor {
    DiskDescriptor {
        disk_id: 3,
        name: "vda".into(),
        size_bytes: DISK_BYTES,
        block_size: BS as u32,
    }
}

fn source_with_disk() -> SourceConfig {
    let mut c = source_config(MEM, 1);
    c.disks = vec![disk()];
    c
}

fn destination_with_room(bytes: u64) -> DestinationConfig {
    let mut c = destination_config();
    c.max_disk_bytes = bytes;
    c
}

fn run(lba: usize, image: &[u8], blocks: usize) -> DiskBlocks {
    DiskBlocks {
        disk_id: 3,
        first_lba: lba as u64,
        block_size: BS as u32,
        data: image[lba * BS..(lba + blocks) * BS].to_vec(),
    }
}

/// The bulk pass: every block once, in runs.
fn bulk(src: &mut SourceSession, dst: &mut DestinationSession, image: &[u8], dst_disk: &mut [u8]) {
    for lba in (0..image.len() / BS).step_by(RUN) {
        src.send_disk_blocks(&run(lba, image, RUN), T0)
            .expect("send");
        deliver(src, dst, dst_disk);
    }
}

/// Moves bytes and writes received blocks into the destination's disk.
fn deliver(src: &mut SourceSession, dst: &mut DestinationSession, dst_disk: &mut [u8]) {
    pump(src, dst, T0);
    for ev in destination_events(dst) {
        if let DestinationEvent::DiskBlocks(b) = ev {
            let at = b.first_lba as usize * BS;
            dst_disk[at..at + b.data.len()].copy_from_slice(&b.data);
        }
    }
}

/// Memory, the vCPU, and the commit request.
fn finish(src: &mut SourceSession, dst: &mut DestinationSession) -> Result<(), UsageError> {
    let mem = vec![0u8; MEM as usize];
    src.send_pages(0, &mem, T0).expect("pages");
    src.send_vcpu_state(&vcpu_state(0), T0).expect("vcpu");
    src.commit(None, T0)?;
    pump(src, dst, T0);
    Ok(())
}

fn image(seed: u8) -> Vec<u8> {
    (0..DISK_BYTES as usize)
        .map(|i| (i / BS) as u8 ^ seed ^ (i % 7) as u8)
        .collect()
}

fn connected() -> (SourceSession, DestinationSession) {
    let (src, mut dst) = connect(source_with_disk(), destination_with_room(DISK_BYTES));
    assert_eq!(dst.state(), DestinationState::Receiving);
    assert_eq!(
        dst.disk_manifest().map(|m| m.disks.clone()),
        Some(vec![disk()])
    );
    destination_events(&mut dst);
    (src, dst)
}

#[test]
fn a_disk_with_dirty_rounds_arrives_whole_and_verified() {
    let (mut src, mut dst) = connected();
    let mut source_disk = image(1);
    let mut dst_disk = vec![0u8; DISK_BYTES as usize];
    bulk(&mut src, &mut dst, &source_disk, &mut dst_disk);
    // The guest writes blocks during the bulk pass: harvested, declared, sent again.
    let mut dirty = DirtyBitmap::new(DISK_BYTES as usize / BS);
    for lba in [5usize, 2100, 8191] {
        source_disk[lba * BS..(lba + 1) * BS].fill(0xee);
        dirty.set(lba);
    }
    src.mark_disk_dirty(3, &dirty).expect("mark");
    assert_eq!(src.stale_disk_blocks(), 3);
    for lba in dirty.iter_set() {
        src.send_disk_blocks(&run(lba, &source_disk, 1), T0)
            .expect("resend");
    }
    deliver(&mut src, &mut dst, &mut dst_disk);
    finish(&mut src, &mut dst).expect("commit");
    assert!(
        destination_events(&mut dst)
            .iter()
            .any(|e| matches!(e, DestinationEvent::CommitRequested { .. }))
    );
    dst.confirm_commit(T0).expect("confirm");
    pump(&mut src, &mut dst, T0);
    assert_eq!(src.state(), SourceState::Completed);
    assert!(dst.may_run_vm());
    assert_eq!(dst_disk, source_disk);
}

#[test]
fn no_room_is_refused_before_the_offer_and_any_block() {
    for room in [0, DISK_BYTES - 512] {
        let mut src = SourceSession::new(source_with_disk(), [1; 32], T0);
        let mut dst = DestinationSession::new(destination_with_room(room), [2; 32], T0);
        pump(&mut src, &mut dst, T0);
        assert_eq!(
            dst_failure(&mut dst),
            SessionError::NoRoomForDisks {
                needed: DISK_BYTES,
                available: room
            }
        );
        assert!(
            destination_events(&mut dst)
                .iter()
                .all(|e| matches!(e, DestinationEvent::Failed(_)))
        );
        match src_failure(&mut src) {
            SessionError::PeerAborted { reason, detail } => {
                assert_eq!(reason, AbortReason::ResourceExhausted);
                assert!(detail.contains("no disk backend with room"), "{detail}");
            }
            other => panic!("{other}"),
        }
    }
}

#[test]
fn a_destination_without_storage_migration_is_refused_by_capability() {
    let mut dc = destination_with_room(DISK_BYTES);
    dc.offered = Capabilities::IMPLEMENTED.difference(Capabilities::DISK_MIGRATION);
    let mut src = SourceSession::new(source_with_disk(), [1; 32], T0);
    let mut dst = DestinationSession::new(dc, [2; 32], T0);
    pump(&mut src, &mut dst, T0);
    assert!(matches!(
        dst_failure(&mut dst),
        SessionError::MissingCapabilities(c) if c == Capabilities::DISK_MIGRATION
    ));
    assert!(matches!(
        src_failure(&mut src),
        SessionError::PeerAborted { .. }
    ));
}

#[test]
fn the_source_refuses_to_commit_an_unfinished_bulk_pass_or_stale_blocks() {
    let (mut src, mut dst) = connected();
    let source_disk = image(2);
    let mut dst_disk = vec![0u8; DISK_BYTES as usize];
    src.send_disk_blocks(&run(0, &source_disk, RUN), T0)
        .expect("send");
    assert_eq!(
        finish(&mut src, &mut dst),
        Err(UsageError::DiskNotCopied {
            disk_id: 3,
            first_lba: RUN as u64
        })
    );
    let (mut src, mut dst) = connected();
    bulk(&mut src, &mut dst, &source_disk, &mut dst_disk);
    let mut dirty = DirtyBitmap::new(DISK_BYTES as usize / BS);
    dirty.set(77);
    src.mark_disk_dirty(3, &dirty).expect("mark");
    assert_eq!(
        finish(&mut src, &mut dst),
        Err(UsageError::StaleDiskBlocks {
            disk_id: 3,
            count: 1,
            first_lba: 77
        })
    );
    assert!(src.owns_vm());
}

/// A block lost on the way in the bulk pass: the destination never received it.
#[test]
fn a_lost_block_is_refused_before_commit() {
    let (mut src, mut dst) = connected();
    let source_disk = image(3);
    let mut dst_disk = vec![0u8; DISK_BYTES as usize];
    src.drop_next_disk_run_for_testing();
    bulk(&mut src, &mut dst, &source_disk, &mut dst_disk);
    finish(&mut src, &mut dst).expect("the source believes it sent everything");
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::MissingDiskBlocks {
            disk_id: 3,
            missing: RUN as u64,
            first_lba: 0
        }
    );
    assert!(matches!(
        src_failure(&mut src),
        SessionError::PeerAborted { .. }
    ));
}

/// A dirty block whose new copy is lost: the destination holds the stale one, which the
/// region's digest names.
#[test]
fn a_stale_block_is_refused_before_commit_with_its_region() {
    let (mut src, mut dst) = connected();
    let mut source_disk = image(4);
    let mut dst_disk = vec![0u8; DISK_BYTES as usize];
    bulk(&mut src, &mut dst, &source_disk, &mut dst_disk);
    let lba = 3 * 2048 + 9; // in region 3 (bytes 3 MiB..4 MiB)
    source_disk[lba * BS..(lba + 1) * BS].fill(0x11);
    let mut dirty = DirtyBitmap::new(DISK_BYTES as usize / BS);
    dirty.set(lba);
    src.mark_disk_dirty(3, &dirty).expect("mark");
    src.drop_next_disk_run_for_testing();
    src.send_disk_blocks(&run(lba, &source_disk, 1), T0)
        .expect("resend");
    deliver(&mut src, &mut dst, &mut dst_disk);
    finish(&mut src, &mut dst).expect("commit requested");
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::DiskDigestMismatch {
            disk_id: 3,
            offset: 3 << 20,
            len: 1 << 20
        }
    );
    match src_failure(&mut src) {
        SessionError::PeerAborted { reason, .. } => assert_eq!(reason, AbortReason::DigestMismatch),
        other => panic!("{other}"),
    }
}

/// A block changed between the source's read and the wire (the frame is authentic).
#[test]
fn a_corrupted_block_is_refused_before_commit() {
    let (mut src, mut dst) = connected();
    let source_disk = image(5);
    let mut dst_disk = vec![0u8; DISK_BYTES as usize];
    src.corrupt_next_run_for_testing();
    bulk(&mut src, &mut dst, &source_disk, &mut dst_disk);
    finish(&mut src, &mut dst).expect("commit requested");
    assert!(matches!(
        dst_failure(&mut dst),
        SessionError::DiskDigestMismatch {
            disk_id: 3,
            offset: 0,
            ..
        }
    ));
}

#[test]
fn disk_messages_outside_the_manifest_are_refused() {
    for (msg, expected) in [
        (
            DiskBlocks {
                disk_id: 4,
                first_lba: 0,
                block_size: 512,
                data: vec![0; 512],
            },
            SessionError::UnknownDisk(4),
        ),
        (
            DiskBlocks {
                disk_id: 0,
                first_lba: 0,
                block_size: 512,
                data: vec![0; 512],
            },
            SessionError::UnknownDisk(0),
        ),
    ] {
        let mut dst = DestinationSession::new(destination_with_room(DISK_BYTES), [2; 32], T0);
        let mut rogue = RogueSource::connect(&mut dst, MEM, 1, Capabilities::IMPLEMENTED);
        rogue.send(&mut dst, &Message::DiskBlocks(msg));
        assert_eq!(dst_failure(&mut dst), expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the guest writes during the copy, in whatever order the rounds resend
    /// blocks, a source that resends every harvested block commits and the destination's
    /// disk equals the source's.
    #[test]
    fn dirty_rounds_in_any_order_converge(
        rounds in proptest::collection::vec(
            proptest::collection::vec((0usize..8192, any::<u8>()), 0..40), 0..4),
        reverse in any::<bool>(),
    ) {
        let (mut src, mut dst) = connected();
        let mut source_disk = image(6);
        let mut dst_disk = vec![0u8; DISK_BYTES as usize];
        bulk(&mut src, &mut dst, &source_disk, &mut dst_disk);
        for writes in rounds {
            let mut dirty = DirtyBitmap::new(DISK_BYTES as usize / BS);
            for (lba, byte) in writes {
                source_disk[lba * BS..(lba + 1) * BS].fill(byte);
                dirty.set(lba);
            }
            src.mark_disk_dirty(3, &dirty).expect("mark");
            let mut lbas: Vec<usize> = dirty.iter_set().collect();
            if reverse {
                lbas.reverse();
            }
            for lba in lbas {
                src.send_disk_blocks(&run(lba, &source_disk, 1), T0).expect("resend");
            }
            deliver(&mut src, &mut dst, &mut dst_disk);
        }
        finish(&mut src, &mut dst).expect("commit");
        dst.confirm_commit(T0).expect("confirm");
        pump(&mut src, &mut dst, T0);
        prop_assert_eq!(src.state(), SourceState::Completed);
        prop_assert!(dst_disk == source_disk);
    }
}
