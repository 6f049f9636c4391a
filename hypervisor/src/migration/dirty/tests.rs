//! Host tests of both trackers, with a tiny model of what the CPU does on a guest write.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::*;
use crate::vmx::ept::EptTables;
use crate::vmx::ept::{ENTRIES, EptEntry, MemoryType, PAGE_SIZE, Permissions, Table, TableMemory};

struct HeapTables {
    frames: BTreeMap<u64, Box<Table>>,
    next: u64,
}

// SAFETY: every address handed out is a distinct, zero-filled key of `frames`, and only
// that frame is reachable through `table`/`table_mut`.
unsafe impl TableMemory for HeapTables {
    fn allocate_table(&mut self) -> Option<u64> {
        let phys = self.next;
        self.next += PAGE_SIZE;
        self.frames.insert(phys, Box::new([0; ENTRIES]));
        Some(phys)
    }
    fn free_table(&mut self, phys: u64) {
        self.frames.remove(&phys);
    }
    fn table(&self, phys: u64) -> &Table {
        &self.frames[&phys]
    }
    fn table_mut(&mut self, phys: u64) -> &mut Table {
        self.frames.get_mut(&phys).expect("known table")
    }
}

const RAM: u64 = 4 << 20; // 1024 pages: spans two page tables
const PAGES: usize = (RAM / PAGE_SIZE) as usize;

fn guest() -> (HeapTables, EptTables) {
    let mut mem = HeapTables {
        frames: BTreeMap::new(),
        next: 0x10_0000,
    };
    let mut ept = EptTables::new(&mut mem).unwrap();
    ept.map(
        &mut mem,
        0,
        0x4000_0000,
        RAM,
        Permissions::RWX,
        MemoryType::WriteBack,
    )
    .unwrap();
    (mem, ept)
}

/// What the CPU does for a guest write: an EPT violation if the leaf is read-only (the
/// write does not happen yet), else it sets A/D and, with PML, logs a 0 -> 1 dirty flag.
enum Write {
    Violation,
    Done,
}

struct Cpu {
    pml: Option<([u64; PML_ENTRIES], u16)>,
}

impl Cpu {
    fn write(&mut self, mem: &mut HeapTables, ept: &EptTables, gpa: u64) -> Write {
        let mut result = Write::Done;
        let pml = &mut self.pml;
        ept.for_each_leaf(mem, gpa & !(PAGE_SIZE - 1), PAGE_SIZE, |_, e| {
            if !e.permissions().write {
                result = Write::Violation;
                return;
            }
            if !e.dirty()
                && let Some((log, index)) = pml
            {
                assert!(*index != 0xffff, "log-full exit should have happened");
                log[usize::from(*index)] = gpa & !(PAGE_SIZE - 1);
                *index = index.wrapping_sub(1);
            }
            *e = EptEntry(e.0 | (1 << 8) | (1 << 9));
        })
        .unwrap();
        result
    }
}

#[test]
fn write_protect_records_first_write_once_per_round() {
    let (mut mem, ept) = guest();
    let (mut wp, invept) = EptWriteProtect::start(&ept, &mut mem, RAM).unwrap();
    assert_eq!(invept, InveptRequired(true));
    let mut cpu = Cpu { pml: None };
    let mut exits = 0;
    for gpa in [0x1000, 0x1008, 0x20_0000, 0x3f_f000, 0x1010] {
        if let Write::Violation = cpu.write(&mut mem, &ept, gpa) {
            exits += 1;
            assert!(matches!(
                wp.on_write_fault(&ept, &mut mem, gpa).unwrap(),
                WriteFault::Recorded { .. }
            ));
            assert!(matches!(cpu.write(&mut mem, &ept, gpa), Write::Done));
        }
    }
    assert_eq!(exits, 3, "one exit per page, not per write");
    let (dirty, invept) = wp.harvest(&ept, &mut mem).unwrap();
    assert_eq!(invept, InveptRequired(true));
    assert_eq!(dirty.iter_set().collect::<Vec<_>>(), [1, 0x200, 0x3ff]);
    // Re-protected: the next write faults again; untouched pages stay clean.
    assert!(matches!(
        cpu.write(&mut mem, &ept, 0x1000),
        Write::Violation
    ));
    let (dirty, invept) = EptWriteProtect::harvest(&mut wp, &ept, &mut mem).unwrap();
    assert_eq!(dirty.count(), 0);
    assert_eq!(invept, InveptRequired(false));
    assert_eq!(wp.faults(), 3);
}

#[test]
fn write_protect_rejects_non_ram_and_flags_spurious() {
    let (mut mem, ept) = guest();
    let (mut wp, _) = EptWriteProtect::start(&ept, &mut mem, RAM).unwrap();
    assert_eq!(
        wp.on_write_fault(&ept, &mut mem, RAM),
        Err(TrackingError::NotRam(RAM))
    );
    wp.on_write_fault(&ept, &mut mem, 0x5000).unwrap();
    assert_eq!(
        wp.on_write_fault(&ept, &mut mem, 0x5000).unwrap(),
        WriteFault::Spurious
    );
    assert_eq!(wp.pending(), 1);
}

#[test]
fn write_protect_stop_restores_write_everywhere() {
    let (mut mem, ept) = guest();
    let (wp, _) = EptWriteProtect::start(&ept, &mut mem, RAM).unwrap();
    wp.stop(&ept, &mut mem).unwrap();
    let mut writable = 0;
    ept.for_each_leaf(&mut mem, 0, RAM, |_, e| {
        writable += usize::from(e.permissions().write)
    })
    .unwrap();
    assert_eq!(writable, PAGES);
}

#[test]
fn pml_logs_and_dirty_flags_are_harvested_and_cleared() {
    let (mut mem, ept) = guest();
    // Dirty flags set before tracking must not be reported.
    let mut cpu = Cpu { pml: None };
    cpu.write(&mut mem, &ept, 0x7000);
    let (mut pml, invept) = PageModificationLog::start(&ept, &mut mem, RAM).unwrap();
    assert_eq!(invept, InveptRequired(true));
    cpu.pml = Some(([0; PML_ENTRIES], PML_INDEX_RESET));
    for gpa in [0x2000, 0x2004, 0x10_0000, 0x2000] {
        assert!(matches!(cpu.write(&mut mem, &ept, gpa), Write::Done));
    }
    let (log, index) = cpu.pml.take().unwrap();
    assert_eq!(
        index,
        PML_INDEX_RESET - 2,
        "one log entry per 0 -> 1 dirty flag"
    );
    let (dirty, new_index, _) = pml.harvest(&ept, &mut mem, &log, index).unwrap();
    assert_eq!(new_index, PML_INDEX_RESET);
    assert_eq!(dirty.iter_set().collect::<Vec<_>>(), [2, 0x100]);
    let (dirty, _, _) = pml
        .harvest(&ept, &mut mem, &[0; PML_ENTRIES], PML_INDEX_RESET)
        .unwrap();
    assert_eq!(
        dirty.count(),
        0,
        "flags were cleared by the previous harvest"
    );
}

#[test]
fn pml_log_full_drains_all_512_entries() {
    let (mut mem, ept) = guest();
    let (mut pml, _) = PageModificationLog::start(&ept, &mut mem, RAM).unwrap();
    let mut cpu = Cpu {
        pml: Some(([0; PML_ENTRIES], PML_INDEX_RESET)),
    };
    for page in 0..PML_ENTRIES as u64 {
        cpu.write(&mut mem, &ept, page * PAGE_SIZE);
    }
    let (log, index) = cpu.pml.unwrap();
    assert_eq!(index, 0xffff, "log full");
    assert_eq!(pml.on_log_full(&log, index).unwrap(), PML_INDEX_RESET);
    assert_eq!(pml.logged(), 512);
    assert_eq!(pml.log_full_exits(), 1);
    assert_eq!(
        pml.drain_log(&log, 600),
        Err(TrackingError::BadPmlIndex(600))
    );
    let (dirty, _, _) = pml.harvest(&ept, &mut mem, &log, PML_INDEX_RESET).unwrap();
    assert_eq!(dirty.count(), 512);
}

#[test]
fn mode_names_round_trip() {
    for mode in [DirtyTrackingMode::WriteProtect, DirtyTrackingMode::Pml] {
        assert_eq!(DirtyTrackingMode::parse(mode.name()), Some(mode));
    }
    assert_eq!(DirtyTrackingMode::parse("ad"), None);
}
