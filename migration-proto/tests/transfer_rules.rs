//! Transfer and commit rules, one scenario each: ordering, completeness, digest, replay,
//! backpressure, timeouts and the release; what must fail, with which error, the source
//! keeping its VM.

mod common;

use common::rogue::RogueSource;
use common::*;
use migration_proto::digest::digest_memory;
use migration_proto::framing::FrameError;
use migration_proto::message::{
    AbortReason, DiskBlocks, MemoryDigestMessage, Message, PageDigestMessage, PageRun,
};
use migration_proto::negotiation::{Capabilities, PROTOCOL_VERSION, VersionRange};
use migration_proto::session::{
    DestinationEvent, DestinationSession, DestinationState, Instant, SessionError, SourceEvent,
    SourceSession, SourceState, UsageError,
};
use migration_proto::wire::{MessageType, PAGE_SIZE};

#[test]
fn small_migration_completes_and_releases() {
    for encrypt in [false, true] {
        let mut sc = source_config(MEM, 2);
        if !encrypt {
            sc.offered = sc.offered.difference(Capabilities::ENCRYPTION);
        }
        let (mut src, mut dst) = connect(sc, destination_config());
        assert_eq!(
            source_events(&mut src),
            [SourceEvent::Accepted {
                version: PROTOCOL_VERSION,
                capabilities: if encrypt {
                    Capabilities::IMPLEMENTED
                } else {
                    Capabilities::IMPLEMENTED.difference(Capabilities::ENCRYPTION)
                }
            }]
        );
        let mut mem = vec![0u8; MEM as usize];
        mem[PAGE_SIZE * 3..PAGE_SIZE * 4].fill(7);
        for (i, run) in mem.chunks(64 * PAGE_SIZE).enumerate() {
            src.send_pages((i * 64 * PAGE_SIZE) as u64, run, T0)
                .unwrap();
        }
        src.end_round(0, T0).unwrap();
        src.send_vcpu_state(&vcpu_state(0), T0).unwrap();
        src.send_vcpu_state(&vcpu_state(1), T0).unwrap();
        src.send_device_state(&device_state(), T0).unwrap();
        src.commit(Some(digest_memory(&mem)), T0).unwrap();
        pump(&mut src, &mut dst, T0);
        let mut dst_mem = vec![0u8; MEM as usize];
        let mut expected = None;
        for ev in destination_events(&mut dst) {
            match ev {
                DestinationEvent::Pages { first_gpa, data } => dst_mem
                    [first_gpa as usize..first_gpa as usize + data.len()]
                    .copy_from_slice(&data),
                DestinationEvent::CommitRequested { expected_digest } => expected = expected_digest,
                _ => {}
            }
        }
        assert_eq!(expected, Some(digest_memory(&mem)));
        assert_eq!(dst.state(), DestinationState::AwaitingDigestCheck);
        assert!(!dst.may_run_vm());
        dst.report_digest(digest_memory(&dst_mem), T0).unwrap();
        pump(&mut src, &mut dst, T0);
        assert_eq!(src.state(), SourceState::Completed);
        assert!(!src.owns_vm());
        assert_eq!(source_events(&mut src), [SourceEvent::Completed]);
        assert!(dst.may_run_vm());
        assert_eq!(
            destination_events(&mut dst),
            [DestinationEvent::Committed, DestinationEvent::Released]
        );
    }
}

/// A version-2 (N-1) rogue source that committed with a whole-memory digest.
fn committed_rogue(vcpus: u32) -> (RogueSource, DestinationSession, Vec<u8>) {
    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let n_minus_one = VersionRange {
        min: PROTOCOL_VERSION - 1,
        max: PROTOCOL_VERSION - 1,
    };
    let mut rogue = RogueSource::connect_with_versions(
        &mut dst,
        MEM,
        vcpus,
        Capabilities::IMPLEMENTED,
        n_minus_one,
    );
    let mem = vec![0x42u8; MEM as usize];
    rogue.send(
        &mut dst,
        &Message::Pages(PageRun {
            first_gpa: 0,
            data: mem[..PAGE_SIZE].to_vec(),
        }),
    );
    for i in 0..vcpus {
        rogue.send(&mut dst, &Message::VcpuState(Box::new(vcpu_state(i))));
    }
    rogue.send(
        &mut dst,
        &Message::MemoryDigest(MemoryDigestMessage {
            memory_bytes: MEM,
            digest: digest_memory(&mem),
        }),
    );
    rogue.send(&mut dst, &Message::Commit);
    assert_eq!(dst.state(), DestinationState::AwaitingDigestCheck);
    (rogue, dst, mem)
}

#[test]
fn pages_after_commit_second_commit_and_late_state_are_refused() {
    let (mut rogue, mut dst, _) = committed_rogue(1);
    rogue.send(
        &mut dst,
        &Message::Pages(PageRun {
            first_gpa: 0,
            data: vec![0; PAGE_SIZE],
        }),
    );
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::AfterCommit(MessageType::Pages)
    );

    let (mut rogue, mut dst, _) = committed_rogue(1);
    rogue.send(&mut dst, &Message::Commit);
    assert_eq!(dst_failure(&mut dst), SessionError::Duplicate("commit"));

    let (mut rogue, mut dst, _) = committed_rogue(1);
    rogue.send(&mut dst, &Message::DeviceState(device_state()));
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::AfterCommit(MessageType::DeviceState)
    );
}

#[test]
fn digest_mismatch_fails_and_source_keeps_vm() {
    let (mut rogue, mut dst, mem) = committed_rogue(1);
    let _ = &mut rogue;
    let mut wrong = mem.clone();
    wrong[5] ^= 1;
    dst.report_digest(digest_memory(&wrong), T0).unwrap();
    assert!(matches!(
        dst_failure(&mut dst),
        SessionError::DigestMismatch { .. }
    ));
    assert!(!dst.may_run_vm());

    // Same through real sessions: the source learns it and keeps the VM.
    let (mut src, mut dst) = connect(source_config(MEM, 1), destination_config());
    source_events(&mut src);
    src.send_pages(0, &mem[..64 * PAGE_SIZE], T0).unwrap();
    src.send_vcpu_state(&vcpu_state(0), T0).unwrap();
    src.commit(Some(digest_memory(&wrong)), T0).unwrap();
    pump(&mut src, &mut dst, T0);
    let mut dst_mem = vec![0u8; MEM as usize];
    for ev in destination_events(&mut dst) {
        if let DestinationEvent::Pages { first_gpa, data } = ev {
            dst_mem[first_gpa as usize..][..data.len()].copy_from_slice(&data);
        }
    }
    dst.report_digest(digest_memory(&dst_mem), T0).unwrap();
    pump(&mut src, &mut dst, T0);
    assert!(matches!(
        src_failure(&mut src),
        SessionError::PeerAborted {
            reason: AbortReason::DigestMismatch,
            ..
        }
    ));
}

#[test]
fn commit_requires_digest_and_every_vcpu() {
    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let mut rogue = RogueSource::connect(&mut dst, MEM, 2, Capabilities::IMPLEMENTED);
    rogue.send(&mut dst, &Message::Commit);
    assert_eq!(dst_failure(&mut dst), SessionError::MissingDigest);

    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let mut rogue = RogueSource::connect(&mut dst, MEM, 2, Capabilities::IMPLEMENTED);
    rogue.send(&mut dst, &Message::VcpuState(Box::new(vcpu_state(0))));
    rogue.send(
        &mut dst,
        &Message::PageDigest(PageDigestMessage {
            memory_bytes: MEM,
            accumulator: [0; 16],
        }),
    );
    rogue.send(&mut dst, &Message::Commit);
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::MissingVcpuState {
            received: 1,
            expected: 2
        }
    );

    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let mut rogue = RogueSource::connect(&mut dst, MEM, 2, Capabilities::IMPLEMENTED);
    rogue.send(&mut dst, &Message::VcpuState(Box::new(vcpu_state(5))));
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::VcpuOutOfRange { index: 5, count: 2 }
    );
}

#[test]
fn pages_outside_memory_or_in_unnegotiated_encoding_are_refused() {
    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let mut rogue = RogueSource::connect(&mut dst, MEM, 1, Capabilities::IMPLEMENTED);
    rogue.send(
        &mut dst,
        &Message::Pages(PageRun {
            first_gpa: MEM,
            data: vec![1; PAGE_SIZE],
        }),
    );
    assert!(matches!(
        dst_failure(&mut dst),
        SessionError::PageOutOfRange { .. }
    ));

    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let mut rogue = RogueSource::connect(&mut dst, MEM, 1, Capabilities::NONE);
    // The rogue encodes with zero pages although none were negotiated.
    rogue.caps = Capabilities::ZERO_PAGES;
    rogue.send(
        &mut dst,
        &Message::Pages(PageRun {
            first_gpa: 0,
            data: vec![0; PAGE_SIZE],
        }),
    );
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::EncodingNotNegotiated(Capabilities::ZERO_PAGES)
    );
}

/// Found by the `sealed_source` fuzz target: the source sent a device's state twice when
/// asked to, and the destination then aborted the migration (`Duplicate`). The source now
/// refuses the second send, as it does for a vCPU.
#[test]
fn a_device_state_sent_twice_is_refused_by_the_source() {
    let (mut src, mut dst) = connect(source_config(MEM, 1), destination_config());
    src.send_device_state(&device_state(), T0).unwrap();
    assert_eq!(
        src.send_device_state(&device_state(), T0),
        Err(UsageError::AlreadySent("device state"))
    );
    pump(&mut src, &mut dst, T0);
    assert_eq!(dst.state(), DestinationState::Receiving);
    assert_eq!(src.state(), SourceState::Transferring);
}

/// Found while writing the `sealed_session` fuzz harness's rules: the destination took
/// `DiskBlocks` (and handed them to its caller) in a session where the disk capability
/// (then DISK_BLOCKS, now DISK_MIGRATION) was not negotiated, although the source never
/// sends them then.
#[test]
fn disk_blocks_without_the_capability_are_refused() {
    for offered_by_destination in [true, false] {
        let mut config = destination_config();
        if !offered_by_destination {
            config.offered = Capabilities::IMPLEMENTED.difference(Capabilities::DISK_MIGRATION);
        }
        let mut dst = DestinationSession::new(config, [2; 32], T0);
        let offered = if offered_by_destination {
            Capabilities::IMPLEMENTED.difference(Capabilities::DISK_MIGRATION)
        } else {
            Capabilities::IMPLEMENTED
        };
        let mut rogue = RogueSource::connect(&mut dst, MEM, 1, offered);
        rogue.send(
            &mut dst,
            &Message::DiskBlocks(DiskBlocks {
                disk_id: 0,
                first_lba: 0,
                block_size: 512,
                data: vec![1; 512],
            }),
        );
        assert_eq!(
            dst_failure(&mut dst),
            SessionError::EncodingNotNegotiated(Capabilities::DISK_MIGRATION)
        );
        assert!(
            !destination_events(&mut dst)
                .iter()
                .any(|e| matches!(e, DestinationEvent::DiskBlocks(_)))
        );
    }
}

#[test]
fn replayed_frame_is_detected() {
    let (mut src, mut dst) = connect(source_config(MEM, 1), destination_config());
    src.send_pages(0, &vec![5u8; PAGE_SIZE], T0).unwrap();
    let frame = src.pending_output().to_vec();
    src.consume_output(frame.len());
    dst.handle_input(&frame, T0);
    dst.handle_input(&frame, T0);
    assert!(matches!(
        dst_failure(&mut dst),
        SessionError::Frame(FrameError::Sequence {
            expected: 4,
            found: 3
        })
    ));
}

#[test]
fn backpressure_bounds_the_output_buffer() {
    let mut sc = source_config(1 << 24, 1);
    sc.output_limit = 300 * 1024;
    let (mut src, _dst) = connect(sc, destination_config());
    let mut rng = Rng(1);
    let mut run = vec![0u8; 64 * PAGE_SIZE];
    rng.fill(&mut run);
    let mut sent = 0;
    while src.can_send_pages() {
        src.send_pages(sent * run.len() as u64, &run, T0).unwrap();
        sent += 1;
    }
    assert_eq!(sent, 2);
    assert_eq!(src.send_pages(0, &run, T0), Err(UsageError::OutputFull));
    assert!(src.pending_output().len() < 300 * 1024 + run.len() + 1024);
    let n = src.pending_output().len();
    src.consume_output(n);
    assert!(src.can_send_pages());
}

#[test]
fn reject_cancel_timeout_and_cut_connection_end_cleanly() {
    // Rejection by the destination's operator.
    let now = T0;
    let mut src = SourceSession::new(source_config(MEM, 1), [1; 32], now);
    let mut dst = DestinationSession::new(destination_config(), [2; 32], now);
    pump(&mut src, &mut dst, now);
    dst.reject_offer("no room", now).unwrap();
    pump(&mut src, &mut dst, now);
    assert!(matches!(
        src_failure(&mut src),
        SessionError::PeerAborted {
            reason: AbortReason::Rejected,
            ..
        }
    ));

    // Cancellation by the source's operator.
    let (mut src, mut dst) = connect(source_config(MEM, 1), destination_config());
    src.cancel(now);
    pump(&mut src, &mut dst, now);
    assert_eq!(src_failure(&mut src), SessionError::Cancelled);
    assert_eq!(dst_failure(&mut dst), SessionError::PeerCancelled);

    // A silent destination: the source times out waiting for the commit acknowledgement.
    let (mut src, mut dst) = connect(source_config(MEM, 1), destination_config());
    src.send_vcpu_state(&vcpu_state(0), now).unwrap();
    src.commit(Some([0; 32]), now).unwrap();
    let deadline = src.poll_timeout().unwrap();
    src.handle_timeout(Instant::from_micros(deadline.as_micros() - 1));
    assert_eq!(src.state(), SourceState::AwaitingCommitAck);
    src.handle_timeout(deadline);
    assert_eq!(
        src_failure(&mut src),
        SessionError::Timeout {
            state: "AwaitingCommitAck"
        }
    );

    // The connection is cut inside a frame.
    let frame = src.pending_output().to_vec();
    dst.handle_input(&frame[..frame.len().min(30)], now);
    dst.connection_closed(now);
    assert!(
        matches!(dst_failure(&mut dst), SessionError::ConnectionClosed { partial_frame_bytes } if partial_frame_bytes > 0)
    );
}

/// A session in which the destination acknowledged the commit; the acknowledgement is
/// returned, not yet delivered to the source.
fn acknowledged_commit() -> (SourceSession, DestinationSession, Vec<u8>) {
    let (mut src, mut dst) = connect(source_config(MEM, 1), destination_config());
    let mem = vec![0u8; MEM as usize];
    src.send_pages(0, &mem, T0).unwrap();
    src.send_vcpu_state(&vcpu_state(0), T0).unwrap();
    src.commit(None, T0).unwrap();
    pump(&mut src, &mut dst, T0);
    destination_events(&mut dst);
    dst.confirm_commit(T0).unwrap();
    let ack = dst.pending_output().to_vec();
    dst.consume_output(ack.len());
    (src, dst, ack)
}

#[test]
fn lost_release_leaves_destination_in_doubt_not_running() {
    let (mut src, mut dst, ack) = acknowledged_commit();
    src.handle_input(&ack, T0);
    assert_eq!(src.state(), SourceState::Completed);
    // The Release frame is lost; the destination times out.
    let later = dst.poll_timeout().unwrap();
    dst.handle_timeout(later);
    assert!(matches!(dst_failure(&mut dst), SessionError::InDoubt(_)));
    assert!(!dst.may_run_vm());
}

#[test]
fn keepalive_keeps_a_slow_transfer_alive() {
    let (mut src, mut dst) = connect(source_config(MEM, 1), destination_config());
    let mut now;
    for _ in 0..20 {
        now = src.poll_timeout().unwrap();
        src.handle_timeout(now);
        pump(&mut src, &mut dst, now);
        dst.handle_timeout(now);
    }
    assert_eq!(dst.state(), DestinationState::Receiving);
    assert!(
        destination_events(&mut dst)
            .iter()
            .all(|e| matches!(e, DestinationEvent::Progress(_)))
    );
    assert_eq!(src.state(), SourceState::Transferring);
}

#[test]
fn page_events_are_decoded_lazily_and_all_delivered_in_order() {
    const RUNS: u64 = 200; // 50 MiB of zero pages in ~40 KiB of frames
    let memory = RUNS * 64 * PAGE_SIZE as u64;
    let mut dc = destination_config();
    dc.max_memory_bytes = memory;
    let (mut src, mut dst) = connect(source_config(memory, 1), dc);
    let zeros = vec![0u8; 64 * PAGE_SIZE];
    for i in 0..RUNS {
        src.send_pages(i * zeros.len() as u64, &zeros, T0).unwrap();
    }
    src.send_vcpu_state(&vcpu_state(0), T0).unwrap();
    src.commit(Some([0; 32]), T0).unwrap();
    let wire = src.pending_output().to_vec();
    assert!(wire.len() < 64 * 1024);
    dst.handle_input(&wire, T0);
    let mut next_gpa = 0;
    let mut commit_requested = false;
    while let Some(ev) = dst.poll_event() {
        match ev {
            DestinationEvent::Pages { first_gpa, data } => {
                assert_eq!(first_gpa, next_gpa);
                next_gpa += data.len() as u64;
                dst.recycle_page_buffer(data);
            }
            DestinationEvent::CommitRequested { .. } => commit_requested = true,
            _ => {}
        }
    }
    assert_eq!(next_gpa, memory);
    assert!(commit_requested);
    assert_eq!(dst.state(), DestinationState::AwaitingDigestCheck);
}

#[test]
fn connection_closed_first_decodes_frames_held_back() {
    let (mut src, mut dst) = connect(source_config(MEM, 1), destination_config());
    // 1.5 MiB of decoded pages: more than the destination queues before holding frames back.
    let zeros = vec![0u8; 64 * PAGE_SIZE];
    for _ in 0..6 {
        src.send_pages(0, &zeros, T0).unwrap();
    }
    src.cancel(T0);
    let wire = src.pending_output().to_vec();
    dst.handle_input(&wire, T0);
    dst.connection_closed(T0);
    // The Cancel at the end of the stream was seen, not reported as a cut frame.
    assert_eq!(dst_failure(&mut dst), SessionError::PeerCancelled);
}

#[test]
fn a_cancel_after_the_acknowledgement_settles_the_commit_like_an_abort() {
    // The source cancels while its CommitAck is in flight: it never saw it and keeps the VM
    // (it only sends Cancel or Abort while it owns the VM), so the destination discards its
    // copy instead of holding it in doubt (found by the sealed_source fuzz target).
    let (mut src, mut dst, _ack_in_flight) = acknowledged_commit();
    src.cancel(T0);
    assert!(src.owns_vm(), "the source never saw the acknowledgement");
    let cancel = src.pending_output().to_vec();
    dst.handle_input(&cancel, T0);
    assert_eq!(dst_failure(&mut dst), SessionError::PeerCancelled);
    assert!(!dst.may_run_vm());
}
