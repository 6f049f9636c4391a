//! The interrupt descriptor table: gates for the 32 architectural exception vectors, each to a
//! naked entry stub in [`super::exceptions`].
//!
//! External interrupts stay disabled (the kernel polls; see `kernel`), so vectors 32..255 are
//! left not-present: if one ever fires it becomes a #GP (IDT-referenced error code) and shows up
//! in a register dump instead of jumping somewhere random.
//!
//! The table is our own `repr(C)` layout (SDM Vol. 3A §6.14.1 "64-Bit Mode IDT") rather than
//! `x86_64::structures::idt`, whose typed entries expect `extern "x86-interrupt"` handlers
//! (unstable on our toolchain).

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

use super::exceptions::ENTRY_STUBS;
use super::gdt::{self, DOUBLE_FAULT_IST, MACHINE_CHECK_IST, NMI_IST};

/// One 16-byte gate descriptor (SDM Vol. 3A Figure 6-8 "64-Bit IDT Gate Descriptors").
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct GateRaw {
    offset_low: u16,
    selector: u16,
    /// Bits 2:0: IST index (0 = no stack switch, n = TSS.IST[n-1]).
    ist: u8,
    /// Present (bit 7), DPL (6:5), type (3:0; 0xE = 64-bit interrupt gate).
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

#[repr(C, align(16))]
struct IdtRaw([GateRaw; 256]);

static IDT: Once<IdtRaw> = Once::new();

/// Present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
const INTERRUPT_GATE: u8 = 0x8e;

fn gate(handler: u64, selector: u16, ist_slot: Option<u8>) -> GateRaw {
    GateRaw {
        offset_low: handler as u16,
        selector,
        ist: ist_slot.map_or(0, |s| s + 1),
        type_attr: INTERRUPT_GATE,
        offset_mid: (handler >> 16) as u16,
        offset_high: (handler >> 32) as u32,
        reserved: 0,
    }
}

/// Builds and loads the IDT. Requires [`gdt::init`] first (the gates name our code segment
/// and IST slots).
pub fn init() {
    let Some(selectors) = gdt::selectors() else {
        panic!("idt::init called before gdt::init");
    };
    let idt = IDT.call_once(|| {
        let mut idt = IdtRaw([GateRaw::default(); 256]);
        for (vector, stub) in ENTRY_STUBS.iter().enumerate() {
            let ist = match vector {
                2 => Some(NMI_IST),
                8 => Some(DOUBLE_FAULT_IST),
                18 => Some(MACHINE_CHECK_IST),
                _ => None,
            };
            idt.0[vector] = gate(*stub as usize as u64, selectors.code.0, ist);
        }
        idt
    });
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<IdtRaw>() - 1) as u16,
        base: VirtAddr::new(idt.0.as_ptr() as u64),
    };
    // SAFETY: the table lives in a static for the rest of the kernel's life, every present
    // gate points at an entry stub that never returns into undefined state, and the selector
    // is our loaded 64-bit code segment.
    unsafe { lidt(&pointer) };
}
