//! Version 3's page digest: what it must refuse before commit (a corrupted page, a page sent
//! but not written, a page never sent, a dirty page not sent again, a wrong accumulator) and
//! that an honest migration commits without any whole-memory pass.

mod common;

use common::rogue::RogueSource;
use common::*;
use migration_proto::dirty::DirtyBitmap;
use migration_proto::message::{AbortReason, Message, PageDigestMessage, PageRun};
use migration_proto::negotiation::Capabilities;
use migration_proto::page_digest::{PageDigestKey, PageDigestTable};
use migration_proto::session::{
    DestinationEvent, DestinationSession, DestinationState, SessionError, SourceEvent,
    SourceSession, SourceState, UsageError,
};
use migration_proto::wire::PAGE_SIZE;

const PAGES: usize = (MEM as usize) / PAGE_SIZE;

fn guest_memory(seed: u64) -> Vec<u8> {
    let mut mem = vec![0u8; MEM as usize];
    let mut rng = Rng(seed);
    // Half the pages data, half zero, like a real guest.
    for page in mem.chunks_mut(PAGE_SIZE).step_by(2) {
        rng.fill(page);
    }
    mem
}

fn send_all(src: &mut SourceSession, mem: &[u8]) {
    for (i, run) in mem.chunks(64 * PAGE_SIZE).enumerate() {
        src.send_pages((i * 64 * PAGE_SIZE) as u64, run, T0)
            .unwrap();
    }
}

/// Runs the destination's side of the commit: confirms when asked.
fn confirm(dst: &mut DestinationSession) {
    for ev in destination_events(dst) {
        if let DestinationEvent::CommitRequested { expected_digest } = ev {
            assert_eq!(expected_digest, None, "no whole-memory digest was sent");
            dst.confirm_commit(T0).unwrap();
        }
    }
}

#[test]
fn honest_migration_commits_on_the_page_digest_alone() {
    let (mut src, mut dst) = connect(source_config(MEM, 1), destination_config());
    assert!(src.uses_page_digest());
    let mut mem = guest_memory(1);
    let mut dst_mem = vec![0u8; MEM as usize];
    send_all(&mut src, &mem);
    // Round 2: pages 3 and 40 changed and are sent again; the last copy counts.
    mem[3 * PAGE_SIZE] ^= 0xff;
    mem[40 * PAGE_SIZE + 9] = 1;
    let mut dirty = DirtyBitmap::new(PAGES);
    dirty.set(3);
    dirty.set(40);
    src.mark_dirty(&dirty).unwrap();
    assert_eq!(src.stale_pages(), 2);
    for pfn in [3usize, 40] {
        src.send_pages(
            (pfn * PAGE_SIZE) as u64,
            &mem[pfn * PAGE_SIZE..][..PAGE_SIZE],
            T0,
        )
        .unwrap();
    }
    assert_eq!(src.stale_pages(), 0);
    src.send_vcpu_state(&vcpu_state(0), T0).unwrap();
    src.commit(None, T0).unwrap();
    pump_into(&mut src, &mut dst, &mut dst_mem);
    confirm(&mut dst);
    pump_into(&mut src, &mut dst, &mut dst_mem);
    assert_eq!(
        source_events(&mut src).last(),
        Some(&SourceEvent::Completed)
    );
    assert!(dst.may_run_vm());
    assert_eq!(dst_mem, mem);
}

#[test]
fn a_page_corrupted_after_hashing_is_refused_and_the_source_keeps_the_vm() {
    let (mut src, mut dst) = connect(source_config(MEM, 1), destination_config());
    let mem = guest_memory(2);
    let mut dst_mem = vec![0u8; MEM as usize];
    src.send_pages(0, &mem[..32 * PAGE_SIZE], T0).unwrap();
    // An encoder or memory bug on the way: the frame is authentic, its page is wrong.
    src.corrupt_next_run_for_testing();
    src.send_pages(32 * PAGE_SIZE as u64, &mem[32 * PAGE_SIZE..], T0)
        .unwrap();
    src.send_vcpu_state(&vcpu_state(0), T0).unwrap();
    src.commit(None, T0).unwrap();
    pump_into(&mut src, &mut dst, &mut dst_mem);
    assert_eq!(dst_failure(&mut dst), SessionError::PageDigestMismatch);
    assert!(!dst.may_run_vm());
    assert!(matches!(
        src_failure(&mut src),
        SessionError::PeerAborted {
            reason: AbortReason::DigestMismatch,
            ..
        }
    ));
}

#[test]
fn a_page_sent_but_not_written_is_refused() {
    // The destination's memory is not what the session believes: page 7 holds data although
    // nothing was written there (not zeroed at allocation, or written behind the session's
    // back). The source sends page 7 as a zero page, which the decoder skips on memory it
    // believes zero; the page digest, computed over the page as it stands, sees the data.
    let (mut src, mut dst) = connect(source_config(MEM, 1), destination_config());
    let mem = vec![0u8; MEM as usize];
    let mut dst_mem = vec![0u8; MEM as usize];
    dst_mem[7 * PAGE_SIZE + 100] = 0x5a;
    send_all(&mut src, &mem);
    src.send_vcpu_state(&vcpu_state(0), T0).unwrap();
    src.commit(None, T0).unwrap();
    pump_into(&mut src, &mut dst, &mut dst_mem);
    assert_eq!(dst_failure(&mut dst), SessionError::PageDigestMismatch);
}

#[test]
fn a_dirty_page_not_sent_again_blocks_the_commit_on_the_source() {
    let (mut src, _dst) = connect(source_config(MEM, 1), destination_config());
    let mem = guest_memory(3);
    send_all(&mut src, &mem);
    let mut dirty = DirtyBitmap::new(PAGES);
    dirty.set(9);
    dirty.set(20);
    src.mark_dirty(&dirty).unwrap();
    src.send_pages(
        20 * PAGE_SIZE as u64,
        &mem[20 * PAGE_SIZE..][..PAGE_SIZE],
        T0,
    )
    .unwrap();
    src.send_vcpu_state(&vcpu_state(0), T0).unwrap();
    assert_eq!(
        src.commit(None, T0),
        Err(UsageError::StalePages {
            count: 1,
            first_pfn: 9
        })
    );
    assert_eq!(src.state(), SourceState::Transferring);
    assert_eq!(
        src.mark_dirty(&DirtyBitmap::new(PAGES + 1)),
        Err(UsageError::BitmapSize {
            pages: PAGES + 1,
            expected: PAGES
        })
    );
}

#[test]
fn the_source_can_check_a_clean_page_against_what_it_sent() {
    let (mut src, _dst) = connect(source_config(MEM, 1), destination_config());
    let mut mem = guest_memory(4);
    send_all(&mut src, &mem);
    assert_eq!(
        src.page_matches_sent(5, &mem[5 * PAGE_SIZE..][..PAGE_SIZE]),
        Some(true)
    );
    // Written without the dirty tracking noticing.
    mem[5 * PAGE_SIZE + 1] ^= 1;
    assert_eq!(
        src.page_matches_sent(5, &mem[5 * PAGE_SIZE..][..PAGE_SIZE]),
        Some(false)
    );
    assert_eq!(src.page_matches_sent(PAGES, &mem[..PAGE_SIZE]), None);
}

/// A version-3 rogue that sent `pages` of `mem` and the vCPU state.
fn rogue_with_pages(mem: &[u8], pages: usize) -> (RogueSource, DestinationSession) {
    let mut dst = DestinationSession::new(destination_config(), [2; 32], T0);
    let mut rogue = RogueSource::connect(&mut dst, MEM, 1, Capabilities::IMPLEMENTED);
    for pfn in 0..pages {
        rogue.send(
            &mut dst,
            &Message::Pages(PageRun {
                first_gpa: (pfn * PAGE_SIZE) as u64,
                data: mem[pfn * PAGE_SIZE..][..PAGE_SIZE].to_vec(),
            }),
        );
    }
    rogue.send(&mut dst, &Message::VcpuState(Box::new(vcpu_state(0))));
    (rogue, dst)
}

fn honest_accumulator(rogue: &RogueSource, mem: &[u8], pages: usize) -> [u8; 16] {
    let mut table = PageDigestTable::new(PageDigestKey(rogue.page_digest_key), PAGES);
    table.record_run(0, &mem[..pages * PAGE_SIZE]);
    table.accumulator()
}

#[test]
fn a_page_never_sent_is_refused_even_with_a_matching_accumulator() {
    let mem = guest_memory(5);
    let (mut rogue, mut dst) = rogue_with_pages(&mem, PAGES - 1);
    let accumulator = honest_accumulator(&rogue, &mem, PAGES - 1);
    rogue.send(
        &mut dst,
        &Message::PageDigest(PageDigestMessage {
            memory_bytes: MEM,
            accumulator,
        }),
    );
    rogue.send(&mut dst, &Message::Commit);
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::MissingPages {
            missing: 1,
            first_gpa: ((PAGES - 1) * PAGE_SIZE) as u64
        }
    );
}

#[test]
fn accumulator_rules_size_duplicate_and_value() {
    let mem = guest_memory(6);

    let (mut rogue, mut dst) = rogue_with_pages(&mem, PAGES);
    let accumulator = honest_accumulator(&rogue, &mem, PAGES);
    rogue.send(
        &mut dst,
        &Message::PageDigest(PageDigestMessage {
            memory_bytes: MEM,
            accumulator,
        }),
    );
    rogue.send(&mut dst, &Message::Commit);
    assert_eq!(dst.state(), DestinationState::AwaitingDigestCheck);

    let (mut rogue, mut dst) = rogue_with_pages(&mem, PAGES);
    let mut accumulator = honest_accumulator(&rogue, &mem, PAGES);
    accumulator[0] ^= 1;
    rogue.send(
        &mut dst,
        &Message::PageDigest(PageDigestMessage {
            memory_bytes: MEM,
            accumulator,
        }),
    );
    rogue.send(&mut dst, &Message::Commit);
    assert_eq!(dst_failure(&mut dst), SessionError::PageDigestMismatch);

    let (mut rogue, mut dst) = rogue_with_pages(&mem, PAGES);
    let digest = Message::PageDigest(PageDigestMessage {
        memory_bytes: MEM,
        accumulator: [0; 16],
    });
    rogue.send(&mut dst, &digest);
    rogue.send(&mut dst, &digest);
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::Duplicate("page digest")
    );

    let (mut rogue, mut dst) = rogue_with_pages(&mem, PAGES);
    rogue.send(
        &mut dst,
        &Message::PageDigest(PageDigestMessage {
            memory_bytes: MEM * 2,
            accumulator: [0; 16],
        }),
    );
    assert_eq!(
        dst_failure(&mut dst),
        SessionError::DigestSizeMismatch {
            digest_bytes: MEM * 2,
            memory_bytes: MEM
        }
    );
}
