//! Our own GDT and TSS (the firmware's are in memory we do not own).
//!
//! The TSS exists for its Interrupt Stack Table: #DF, NMI and #MC switch to dedicated stacks
//! so that a kernel stack overflow (or a fault with a corrupt RSP) still produces a register
//! dump instead of a silent triple fault. VT-x will also need the selectors for the VMCS host
//! state (SDM Vol. 3C §26.2.3 "Checks on Host Segment and Descriptor-Table Registers": TR must
//! not be null, CS not null).

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, FS, GS, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

use super::paging;

/// IST slot (0-based, as the IDT gate encodes it minus one) for #DF.
pub const DOUBLE_FAULT_IST: u8 = 0;
/// IST slot for NMI.
pub const NMI_IST: u8 = 1;
/// IST slot for #MC.
pub const MACHINE_CHECK_IST: u8 = 2;

const IST_STACK_SIZE: usize = 32 * 1024;
const GUARD_SIZE: usize = 4096;

/// An IST stack with an unmapped guard page below it, so a handler that overflows its stack
/// triple-faults (machine reset) rather than silently corrupting the neighbouring stack.
#[repr(C, align(4096))]
struct IstStack {
    guard: [u8; GUARD_SIZE],
    stack: [u8; IST_STACK_SIZE],
}

/// Written by the CPU only, through the addresses in the TSS; never referenced from Rust.
static mut IST_STACKS: [IstStack; 3] = [const {
    IstStack {
        guard: [0; GUARD_SIZE],
        stack: [0; IST_STACK_SIZE],
    }
}; 3];

/// The selectors the rest of the kernel (and the VMCS host state) uses.
#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    pub code: SegmentSelector,
    pub data: SegmentSelector,
    pub tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// Builds and loads the GDT and TSS and reloads every segment register. Call once, early.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let base = (&raw mut IST_STACKS) as u64;
        let each = core::mem::size_of::<IstStack>() as u64;
        let slots = [DOUBLE_FAULT_IST, NMI_IST, MACHINE_CHECK_IST];
        for (slot, index) in slots.into_iter().enumerate() {
            let start = base + slot as u64 * each;
            // SAFETY: the guard page is the first page of this IstStack (4 KiB aligned), never
            // used by the stack above it; the tables are the loader's identity-mapped ones.
            if let Err(e) = unsafe { paging::unmap_4k(start) } {
                log::warn!("IST stack {index} guard page not installed: {e}");
            }
            // Stacks grow down: the IST entry is one past the top of the slot's stack.
            tss.interrupt_stack_table[index as usize] = VirtAddr::new(start + each);
        }
        tss
    });
    let (gdt, selectors) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, which lives in a static forever; the
    // code segment is a 64-bit ring-0 segment so execution continues unchanged, and the TSS
    // descriptor is present and not busy (loaded exactly once, guarded by `Once`).
    unsafe {
        CS::set_reg(selectors.code);
        SS::set_reg(selectors.data);
        DS::set_reg(selectors.data);
        ES::set_reg(selectors.data);
        FS::set_reg(selectors.data);
        GS::set_reg(selectors.data);
        load_tss(selectors.tss);
    }
}

/// The selectors loaded by [`init`] (`None` before it ran).
pub fn selectors() -> Option<Selectors> {
    GDT.get().map(|(_, s)| *s)
}
