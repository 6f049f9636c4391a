use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;

/// Paging structures in heap memory, at made-up physical addresses.
struct FakeTables {
    frames: BTreeMap<u64, Box<Table>>,
    next: u64,
    limit: usize,
}

impl FakeTables {
    fn new() -> Self {
        Self::with_limit(usize::MAX)
    }

    fn with_limit(limit: usize) -> Self {
        Self {
            frames: BTreeMap::new(),
            next: 0x7000_0000,
            limit,
        }
    }
}

// SAFETY: every address handed out is a distinct key of `frames`, zero-filled when created,
// and only that frame is reachable through `table`/`table_mut`.
unsafe impl TableMemory for FakeTables {
    fn allocate_table(&mut self) -> Option<u64> {
        if self.frames.len() >= self.limit {
            return None;
        }
        let phys = self.next;
        self.next += PAGE_SIZE;
        self.frames.insert(phys, Box::new([0; ENTRIES]));
        Some(phys)
    }

    fn free_table(&mut self, phys: u64) {
        assert!(
            self.frames.remove(&phys).is_some(),
            "double free of {phys:#x}"
        );
    }

    fn table(&self, phys: u64) -> &Table {
        self.frames
            .get(&phys)
            .expect("walk reached an unknown table")
    }

    fn table_mut(&mut self, phys: u64) -> &mut Table {
        self.frames
            .get_mut(&phys)
            .expect("walk reached an unknown table")
    }
}

const MIB: u64 = 1 << 20;

#[test]
fn eptp_encoding() {
    // WB (6) | walk length 4 (3 << 3) | A/D (1 << 6) | PML4.
    assert_eq!(
        eptp(0x1234_5000, true),
        0x1234_5000 | 6 | (3 << 3) | (1 << 6)
    );
    assert_eq!(eptp(0x1234_5000, false), 0x1234_505e & !(1 << 6));
}

#[test]
fn map_translate_and_leaf_format() {
    let mut mem = FakeTables::new();
    let mut ept = EptTables::new(&mut mem).unwrap();
    ept.map(
        &mut mem,
        0x10_0000,
        0x4000_0000,
        2 * MIB,
        Permissions::RWX,
        MemoryType::WriteBack,
    )
    .unwrap();
    let t = ept.translate(&mem, 0x10_0123).unwrap();
    assert_eq!(t.host_phys, 0x4000_0123);
    assert_eq!(t.permissions, Permissions::RWX);
    assert_eq!(t.memory_type, Some(MemoryType::WriteBack));
    assert_eq!(
        ept.translate(&mem, 0x2f_ffff).unwrap().host_phys,
        0x401f_ffff
    );
    assert_eq!(ept.translate(&mem, 0x30_0000), None);
    assert_eq!(ept.translate(&mem, 0xf_ffff), None);
    assert_eq!(ept.translate(&mem, 0xfee0_0000), None);
    // 2 MiB from 1 MiB spans two page tables: PML4 + PDPT + PD + 2 PTs.
    assert_eq!(mem.frames.len(), 5);
    // Leaf: RWX (7) | WB << 3 (0x30) | ignore PAT (0x40).
    let pt = mem.frames.values().last().unwrap();
    assert!(pt.iter().any(|&e| e & 0xfff == 0x77));
}

#[test]
fn map_rejects_bad_input_without_side_effects() {
    let mut mem = FakeTables::new();
    let mut ept = EptTables::new(&mut mem).unwrap();
    let rw = Permissions::RWX;
    let wb = MemoryType::WriteBack;
    assert_eq!(
        ept.map(&mut mem, 0x1001, 0, 4096, rw, wb),
        Err(EptError::Unaligned(0x1001))
    );
    assert_eq!(
        ept.map(&mut mem, 0, 0x10, 4096, rw, wb),
        Err(EptError::Unaligned(0x10))
    );
    assert_eq!(
        ept.map(&mut mem, 0, 0, 100, rw, wb),
        Err(EptError::Unaligned(100))
    );
    assert_eq!(
        ept.map(&mut mem, GUEST_PHYS_LIMIT - 4096, 0, 8192, rw, wb),
        Err(EptError::GuestAddressTooHigh(GUEST_PHYS_LIMIT - 4096))
    );
    assert_eq!(
        ept.map(&mut mem, 0, HOST_PHYS_LIMIT, 4096, rw, wb),
        Err(EptError::HostAddressTooHigh(HOST_PHYS_LIMIT))
    );
    let write_only = Permissions {
        read: false,
        write: true,
        execute: false,
    };
    assert_eq!(
        ept.map(&mut mem, 0, 0, 4096, write_only, wb),
        Err(EptError::WriteWithoutRead)
    );
    ept.map(&mut mem, 0x5000, 0x9000, 4096, rw, wb).unwrap();
    assert_eq!(
        ept.map(&mut mem, 0x3000, 0x1_0000, 0x4000, rw, wb),
        Err(EptError::AlreadyMapped(0x5000))
    );
    assert_eq!(
        ept.translate(&mem, 0x3000),
        None,
        "failed map leaves nothing behind"
    );
    assert_eq!(ept.translate(&mem, 0x5000).unwrap().host_phys, 0x9000);
}

#[test]
fn out_of_memory_rolls_back() {
    // PML4 + PDPT + PD + one PT: the second PT (crossing 2 MiB) cannot be allocated.
    let mut mem = FakeTables::with_limit(4);
    let mut ept = EptTables::new(&mut mem).unwrap();
    let r = ept.map(
        &mut mem,
        MIB,
        0x100_0000,
        2 * MIB,
        Permissions::RWX,
        MemoryType::WriteBack,
    );
    assert_eq!(r, Err(EptError::OutOfMemory));
    for page in (MIB..3 * MIB).step_by(4096) {
        assert_eq!(ept.translate(&mem, page), None);
    }
}

#[test]
fn unmap_counts_and_removes() {
    let mut mem = FakeTables::new();
    let mut ept = EptTables::new(&mut mem).unwrap();
    ept.map(
        &mut mem,
        0,
        0x80_0000,
        16 * 4096,
        Permissions::RWX,
        MemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(ept.unmap(&mut mem, 4 * 4096, 8 * 4096).unwrap(), 8);
    assert_eq!(ept.unmap(&mut mem, 4 * 4096, 8 * 4096).unwrap(), 0);
    assert!(ept.translate(&mem, 3 * 4096).is_some());
    assert!(ept.translate(&mem, 4 * 4096).is_none());
    assert!(ept.translate(&mem, 12 * 4096).is_some());
    // Unmapped pages can be mapped again.
    ept.map(
        &mut mem,
        4 * 4096,
        0x90_0000,
        4096,
        Permissions::RX,
        MemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(
        ept.translate(&mem, 4 * 4096).unwrap().permissions,
        Permissions::RX
    );
}

#[test]
fn write_protect_and_dirty_harvest() {
    let mut mem = FakeTables::new();
    let mut ept = EptTables::new(&mut mem).unwrap();
    ept.map(
        &mut mem,
        0,
        0x100_0000,
        8 * 4096,
        Permissions::RWX,
        MemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(ept.write_protect(&mut mem, 0, 8 * 4096).unwrap(), 8);
    assert_eq!(ept.write_protect(&mut mem, 0, 8 * 4096).unwrap(), 0);
    assert_eq!(
        ept.translate(&mem, 0x2000).unwrap().permissions,
        Permissions::RX
    );
    assert_eq!(
        ept.set_permissions(&mut mem, 0x2000, 4096, Permissions::RWX)
            .unwrap(),
        1
    );

    // Simulate the CPU setting A/D flags on pages 1 and 5 (bits 8 and 9, SDM §29.3.4).
    ept.for_each_leaf(&mut mem, 0, 8 * 4096, |page, e| {
        if page == 0x1000 || page == 0x5000 {
            e.0 |= (1 << 8) | (1 << 9);
        } else if page == 0x6000 {
            e.0 |= 1 << 8;
        }
    })
    .unwrap();
    assert!(ept.translate(&mem, 0x5000).unwrap().dirty);
    let mut dirty = Vec::new();
    assert_eq!(
        ept.harvest_dirty(&mut mem, 0, 8 * 4096, |p| dirty.push(p))
            .unwrap(),
        2
    );
    assert_eq!(dirty, [0x1000, 0x5000]);
    let t = ept.translate(&mem, 0x6000).unwrap();
    assert!(!t.dirty && !t.accessed, "harvest clears A/D");
    assert_eq!(ept.harvest_dirty(&mut mem, 0, 8 * 4096, |_| {}).unwrap(), 0);
}

#[test]
fn walk_visits_sparse_leaves_in_order_and_destroy_frees_all() {
    let mut mem = FakeTables::new();
    let mut ept = EptTables::new(&mut mem).unwrap();
    let wb = MemoryType::WriteBack;
    let spots = [
        0u64,
        0x3fff_f000,
        0x4000_0000,
        0x80_0000_0000,
        0xffff_ffff_f000,
    ];
    for (i, gpa) in spots.iter().enumerate() {
        ept.map(
            &mut mem,
            *gpa,
            (i as u64 + 1) << 20,
            4096,
            Permissions::RWX,
            wb,
        )
        .unwrap();
    }
    let mut seen = Vec::new();
    ept.for_each_leaf(&mut mem, 0, GUEST_PHYS_LIMIT, |gpa, _| seen.push(gpa))
        .unwrap();
    assert_eq!(seen, spots);
    seen.clear();
    ept.for_each_leaf(&mut mem, 0x3fff_f000, 0x2000, |gpa, _| seen.push(gpa))
        .unwrap();
    assert_eq!(seen, [0x3fff_f000, 0x4000_0000]);
    ept.destroy(&mut mem);
    assert!(mem.frames.is_empty(), "every paging structure freed");
}

#[test]
fn large_page_entries_are_reported_not_walked() {
    let mut mem = FakeTables::new();
    let mut ept = EptTables::new(&mut mem).unwrap();
    ept.map(
        &mut mem,
        0,
        0x100_0000,
        4096,
        Permissions::RWX,
        MemoryType::WriteBack,
    )
    .unwrap();
    // Turn PD entry 1 (2 MiB..4 MiB) into a 2 MiB page by hand.
    let pdpt = EptEntry(mem.table(ept.pml4())[0]).address();
    let pd = EptEntry(mem.table(pdpt)[0]).address();
    mem.table_mut(pd)[1] = 0x20_0000 | (1 << 7) | 7;
    assert_eq!(ept.translate(&mem, 0x20_1234).unwrap().host_phys, 0x20_1234);
    assert_eq!(
        ept.for_each_leaf(&mut mem, 0, 4 * MIB, |_, _| {}),
        Err(EptError::UnexpectedLargePage(0x20_0000))
    );
    assert_eq!(
        ept.map(
            &mut mem,
            0x20_0000,
            0,
            4096,
            Permissions::RWX,
            MemoryType::WriteBack
        ),
        Err(EptError::UnexpectedLargePage(0x20_0000))
    );
}

proptest! {
    /// Map disjoint random runs, then every page translates to where it was mapped and no
    /// other page translates at all.
    #[test]
    fn map_then_translate(runs in proptest::collection::vec((0u64..1 << 24, 1u64..16), 1..12)) {
        let mut mem = FakeTables::new();
        let mut ept = EptTables::new(&mut mem).unwrap();
        let mut expected = BTreeMap::new();
        let mut next_host = 0x1_0000_0000u64;
        for (page, count) in runs {
            let gpa = page * 4096;
            let len = count * 4096;
            let overlaps = expected.range(gpa..gpa + len).next().is_some();
            let r = ept.map(&mut mem, gpa, next_host, len, Permissions::RWX, MemoryType::WriteBack);
            if overlaps {
                prop_assert!(matches!(r, Err(EptError::AlreadyMapped(_))));
                continue;
            }
            prop_assert_eq!(r, Ok(()));
            for i in 0..count {
                expected.insert(gpa + i * 4096, next_host + i * 4096);
            }
            next_host += len;
        }
        for (gpa, hpa) in &expected {
            prop_assert_eq!(ept.translate(&mem, gpa + 8).map(|t| t.host_phys), Some(hpa + 8));
            prop_assert_eq!(ept.translate(&mem, gpa + 4096).is_some(), expected.contains_key(&(gpa + 4096)));
        }
        let mut seen = Vec::new();
        ept.for_each_leaf(&mut mem, 0, GUEST_PHYS_LIMIT, |gpa, _| seen.push(gpa)).unwrap();
        prop_assert_eq!(seen, expected.keys().copied().collect::<Vec<_>>());
    }
}
