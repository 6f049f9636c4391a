//! DELTA_PAGES (version 3): a page sent again goes as the LZ4 block of its XOR with the copy
//! sent before, applied by the destination to the copy it holds.

mod common;

use common::*;
use migration_proto::dirty::DirtyBitmap;
use migration_proto::negotiation::Capabilities;
use migration_proto::session::{DestinationEvent, SessionError, SourceEvent, SourceSession};
use migration_proto::wire::PAGE_SIZE;

const PAGES: usize = (MEM as usize) / PAGE_SIZE;

fn random_memory(seed: u64) -> Vec<u8> {
    let mut mem = vec![0u8; MEM as usize];
    Rng(seed).fill(&mut mem);
    mem
}

/// Round 2 of a migration whose guest changed one word in each of `pages` pages; returns
/// the pages sent as deltas and the wire bytes of the round.
fn second_round(src: &mut SourceSession, mem: &mut [u8], pages: usize) -> (u64, usize) {
    let mut dirty = DirtyBitmap::new(PAGES);
    for pfn in 0..pages {
        mem[pfn * PAGE_SIZE + 64..][..8].copy_from_slice(&(pfn as u64 + 7).to_le_bytes());
        dirty.set(pfn);
    }
    src.mark_dirty(&dirty).unwrap();
    let before = src.pending_output().len();
    let counts = src.send_pages(0, &mem[..pages * PAGE_SIZE], T0).unwrap();
    (counts.delta, src.pending_output().len() - before)
}

#[test]
fn partly_rewritten_pages_go_as_deltas_and_land_intact() {
    let mut sc = source_config(MEM, 1);
    sc.delta_cache_bytes = MEM as usize;
    let (mut src, mut dst) = connect(sc, destination_config());
    assert!(
        src.negotiated()
            .unwrap()
            .1
            .contains(Capabilities::DELTA_PAGES)
    );
    let mut mem = random_memory(1);
    let mut dst_mem = vec![0u8; MEM as usize];
    for (i, run) in mem.chunks(64 * PAGE_SIZE).enumerate() {
        src.send_pages((i * 64 * PAGE_SIZE) as u64, run, T0)
            .unwrap();
    }
    pump_into(&mut src, &mut dst, &mut dst_mem);
    let (deltas, wire) = second_round(&mut src, &mut mem, 10);
    assert_eq!(deltas, 10);
    assert!(wire < 10 * PAGE_SIZE / 20, "10 pages in {wire} bytes");
    src.send_vcpu_state(&vcpu_state(0), T0).unwrap();
    src.commit(None, T0).unwrap();
    pump_into(&mut src, &mut dst, &mut dst_mem);
    for ev in destination_events(&mut dst) {
        if let DestinationEvent::CommitRequested { .. } = ev {
            dst.confirm_commit(T0).unwrap();
        }
    }
    pump_into(&mut src, &mut dst, &mut dst_mem);
    assert_eq!(
        source_events(&mut src).last(),
        Some(&SourceEvent::Completed)
    );
    assert_eq!(dst_mem, mem);
}

#[test]
fn no_deltas_without_a_cache_or_without_the_destination_agreeing() {
    let (mut src, _dst) = connect(source_config(MEM, 1), destination_config());
    let mut mem = random_memory(2);
    src.send_pages(0, &mem[..PAGE_SIZE * 4], T0).unwrap();
    assert_eq!(second_round(&mut src, &mut mem, 4).0, 0, "no cache");

    let mut sc = source_config(MEM, 1);
    sc.delta_cache_bytes = MEM as usize;
    let mut dc = destination_config();
    dc.offered = dc.offered.difference(Capabilities::DELTA_PAGES);
    let (mut src, _dst) = connect(sc, dc);
    assert!(
        !src.negotiated()
            .unwrap()
            .1
            .contains(Capabilities::DELTA_PAGES)
    );
    src.send_pages(0, &mem[..PAGE_SIZE * 4], T0).unwrap();
    assert_eq!(second_round(&mut src, &mut mem, 4).0, 0, "not negotiated");
}

#[test]
fn a_destination_decoding_into_events_refuses_a_delta_page() {
    // It offered DELTA_PAGES although it has no memory to apply a delta to: a
    // misconfigured caller. The page is refused, nothing is guessed.
    let mut sc = source_config(MEM, 1);
    sc.delta_cache_bytes = MEM as usize;
    let (mut src, mut dst) = connect(sc, destination_config());
    let mut mem = random_memory(3);
    src.send_pages(0, &mem[..PAGE_SIZE], T0).unwrap();
    second_round(&mut src, &mut mem, 1);
    pump(&mut src, &mut dst, T0);
    assert!(
        matches!(dst_failure(&mut dst), SessionError::Frame(e) if e.to_string().contains("delta_without_guest_memory")),
    );
}
