use boot_proto::{MemoryKind, MemoryRegion};
use proptest::prelude::*;

use super::*;

const MIB: u64 = 1 << 20;

fn region(start: u64, len: u64, kind: MemoryKind) -> MemoryRegion {
    MemoryRegion {
        start,
        len,
        kind,
        _reserved: 0,
    }
}

#[test]
fn low_memory_and_reserved_overlaps_are_excluded() {
    let map = [
        region(0, 4 * MIB, MemoryKind::Usable),
        region(2 * MIB, MIB, MemoryKind::HypervisorImage),
        region(8 * MIB, 8 * MIB, MemoryKind::Usable),
        // Overlaps the usable range above: reserved wins.
        region(12 * MIB + 100, 10, MemoryKind::AcpiReclaimable),
    ];
    let a = FrameAllocator::from_regions(&map);
    assert_eq!(
        a.free_ranges(),
        &[
            PhysRange::new(MIB, 2 * MIB),
            PhysRange::new(3 * MIB, 4 * MIB),
            PhysRange::new(8 * MIB, 12 * MIB),
            PhysRange::new(12 * MIB + 4096, 16 * MIB),
        ]
    );
    assert_eq!(a.totals().managed_bytes, 2 * MIB + 8 * MIB - 4096);
    assert_eq!(a.totals().usable_reported_bytes, 12 * MIB);
    assert_eq!(a.totals().highest_address, 16 * MIB);
    assert_eq!(a.totals().reserved_bytes, MIB + 10);
    assert_eq!(a.totals().firmware_reserved_bytes, 0);
}

#[test]
fn firmware_reserved_and_loader_memory_are_counted_apart() {
    let map = [
        region(MIB, 8 * MIB, MemoryKind::Usable),
        region(9 * MIB, MIB, MemoryKind::BootData),
        region(9 * MIB, MIB, MemoryKind::LoaderUsed), // overlapping duplicate: counted once
        region(10 * MIB, MIB, MemoryKind::Reserved),
        region(0xe000_0000, 256 * MIB, MemoryKind::Reserved),
        region(12 * MIB, MIB, MemoryKind::Unusable),
    ];
    let t = FrameAllocator::from_regions(&map).totals();
    assert_eq!(t.reserved_bytes, MIB);
    assert_eq!(t.firmware_reserved_bytes, 258 * MIB);
    assert_eq!(t.managed_bytes, 8 * MIB);
}

#[test]
fn unsorted_unaligned_input_is_normalised() {
    let map = [
        region(20 * MIB + 1, 2 * MIB, MemoryKind::Usable),
        region(2 * MIB, 3 * MIB - 5, MemoryKind::Usable),
        region(4 * MIB, 2 * MIB, MemoryKind::Usable),
    ];
    let a = FrameAllocator::from_regions(&map);
    assert_eq!(
        a.free_ranges(),
        &[
            PhysRange::new(2 * MIB, 6 * MIB),
            PhysRange::new(20 * MIB + 4096, 22 * MIB)
        ]
    );
}

#[test]
fn contiguous_aligned_allocation_and_free_round_trip() {
    let map = [region(MIB, 63 * MIB, MemoryKind::Usable)];
    let mut a = FrameAllocator::from_regions(&map);
    let one = a.allocate_frame().expect("frame");
    assert_eq!(one, MIB);
    let big = a.allocate_contiguous(512, 2 * MIB).expect("2 MiB run");
    assert_eq!(big, 2 * MIB);
    assert_eq!(a.totals().free_bytes, 63 * MIB - 4096 - 2 * MIB);
    assert_eq!(a.free(big, 512), Ok(()));
    assert_eq!(
        a.free(big, 1),
        Err(FrameError::DoubleFree {
            addr: big,
            frames: 1
        })
    );
    assert_eq!(a.free(one, 1), Ok(()));
    assert_eq!(a.free_ranges(), &[PhysRange::new(MIB, 64 * MIB)]);
    assert_eq!(a.totals().free_bytes, 63 * MIB);
}

#[test]
fn bad_frees_and_requests_are_refused() {
    let map = [region(MIB, MIB, MemoryKind::Usable)];
    let mut a = FrameAllocator::from_regions(&map);
    assert_eq!(
        a.free(0x1000, 1),
        Err(FrameError::NotManaged {
            addr: 0x1000,
            frames: 1
        })
    );
    assert_eq!(
        a.free(MIB + 1, 1),
        Err(FrameError::Unaligned { addr: MIB + 1 })
    );
    assert_eq!(
        a.free(MIB, 1),
        Err(FrameError::DoubleFree {
            addr: MIB,
            frames: 1
        })
    );
    assert_eq!(
        a.free(!0xfffu64, 2),
        Err(FrameError::NotManaged {
            addr: !0xfffu64,
            frames: 2
        })
    );
    assert_eq!(a.allocate_contiguous(0, 4096), Err(FrameError::BadRequest));
    assert_eq!(a.allocate_contiguous(1, 3000), Err(FrameError::BadRequest));
    assert_eq!(
        a.allocate_contiguous(257, 4096),
        Err(FrameError::OutOfMemory { frames: 257 })
    );
    assert_eq!(a.allocate_contiguous(256, 4096), Ok(MIB));
    assert_eq!(
        a.allocate_frame(),
        Err(FrameError::OutOfMemory { frames: 1 })
    );
}

#[test]
fn huge_and_wrapping_entries_do_not_panic() {
    let map = [
        region(u64::MAX - 10, 100, MemoryKind::Usable),
        region(u64::MAX - 4096 * 4, 4096 * 8, MemoryKind::Reserved),
        region(MIB, u64::MAX, MemoryKind::Usable),
    ];
    let a = FrameAllocator::from_regions(&map);
    assert!(a.totals().managed_bytes > 0);
    for r in a.free_ranges() {
        assert!(r.start >= MIB && r.start % FRAME_SIZE == 0 && r.end % FRAME_SIZE == 0);
    }
}

fn kind_strategy() -> impl Strategy<Value = MemoryKind> {
    prop_oneof![
        4 => Just(MemoryKind::Usable),
        1 => Just(MemoryKind::HypervisorImage),
        1 => Just(MemoryKind::BootData),
        1 => Just(MemoryKind::Module),
        1 => Just(MemoryKind::AcpiReclaimable),
        1 => Just(MemoryKind::Reserved),
        1 => Just(MemoryKind::Unusable),
        1 => Just(MemoryKind::LoaderUsed),
    ]
}

fn map_strategy() -> impl Strategy<Value = Vec<MemoryRegion>> {
    prop::collection::vec(
        (0u64..64 * MIB, 1u64..16 * MIB, kind_strategy()).prop_map(|(s, l, k)| region(s, l, k)),
        0..24,
    )
}

fn frame_is_allowed(map: &[MemoryRegion], frame: u64) -> bool {
    let end = frame + FRAME_SIZE;
    let inside_usable = map
        .iter()
        .any(|r| r.kind == MemoryKind::Usable && r.start <= frame && r.end() >= end);
    let touches_other = map
        .iter()
        .any(|r| r.kind != MemoryKind::Usable && r.start < end && frame < r.end());
    frame >= LOW_MEMORY_LIMIT && inside_usable && !touches_other
}

proptest! {
    #[test]
    fn every_allocated_frame_is_usable_and_unique(
        map in map_strategy(),
        requests in prop::collection::vec((1u64..64, 0u32..10), 1..40),
    ) {
        let mut a = FrameAllocator::from_regions(&map);
        let initial_free = a.totals().free_bytes;
        let mut held: Vec<(u64, u64)> = Vec::new();
        for (frames, align_log) in requests {
            let align = FRAME_SIZE << align_log;
            if let Ok(start) = a.allocate_contiguous(frames, align) {
                prop_assert_eq!(start % align, 0);
                for f in 0..frames {
                    let frame = start + f * FRAME_SIZE;
                    // A frame of a contiguous run may straddle two adjacent usable entries, so
                    // check per frame against the union of usable entries.
                    let covered = map.iter().any(|r| r.kind == MemoryKind::Usable
                        && r.start <= frame && r.end() >= frame + FRAME_SIZE)
                        || frame_is_allowed(&map, frame);
                    prop_assert!(covered, "frame {:#x} not in usable memory", frame);
                    prop_assert!(frame >= LOW_MEMORY_LIMIT);
                    prop_assert!(!map.iter().any(|r| r.kind != MemoryKind::Usable
                        && r.start < frame + FRAME_SIZE && frame < r.end()),
                        "frame {:#x} overlaps a reserved entry", frame);
                }
                for &(s, n) in &held {
                    let overlap = start < s + n * FRAME_SIZE && s < start + frames * FRAME_SIZE;
                    prop_assert!(!overlap, "runs overlap");
                }
                held.push((start, frames));
            }
        }
        let held_bytes: u64 = held.iter().map(|&(_, n)| n * FRAME_SIZE).sum();
        prop_assert_eq!(a.totals().free_bytes + held_bytes, initial_free);
        for (s, n) in held {
            prop_assert_eq!(a.free(s, n), Ok(()));
        }
        prop_assert_eq!(a.totals().free_bytes, initial_free);
        prop_assert_eq!(a.free_ranges(), a.managed_ranges());
    }
}
