//! Where VMX structures get their memory: a small trait the kernel implements with its
//! frame allocator, so that VMXON regions, VMCSs, bitmaps and EPT tables never live in the
//! hypervisor image (whose virtual addresses are not physical addresses) and this module
//! does not depend on the kernel's allocator.

use super::ept::{PAGE_SIZE, Table, TableMemory};

/// A source of zeroed 4 KiB frames addressed physically.
///
/// # Safety
/// `allocate_zeroed` must return the physical address of a 4 KiB-aligned frame, filled with
/// zeros, used by nothing else until it is passed to `free`; `phys_to_virt` must return a
/// pointer through which the hypervisor can read and write that whole frame (on tern the
/// identity map: virt == phys).
pub unsafe trait FrameSource {
    /// A zeroed frame, or `None` when memory is exhausted.
    fn allocate_zeroed(&mut self) -> Option<u64>;
    /// Give a frame back.
    fn free(&mut self, phys: u64);
    /// The hypervisor's pointer to the frame at `phys`.
    fn phys_to_virt(&self, phys: u64) -> *mut u8;
}

/// EPT table memory on top of any [`FrameSource`].
pub struct FrameTables<'a, F: FrameSource>(pub &'a mut F);

// SAFETY: every table comes from `FrameSource::allocate_zeroed`, which by its contract is a
// zeroed, exclusively owned, 4 KiB-aligned frame reachable through `phys_to_virt`.
unsafe impl<F: FrameSource> TableMemory for FrameTables<'_, F> {
    fn allocate_table(&mut self) -> Option<u64> {
        self.0.allocate_zeroed()
    }

    fn free_table(&mut self, phys: u64) {
        self.0.free(phys);
    }

    fn table(&self, phys: u64) -> &Table {
        debug_assert_eq!(phys % PAGE_SIZE, 0);
        // SAFETY: `phys` is a table frame this hierarchy allocated (the EPT code only follows
        // addresses it wrote), reachable and 8-byte aligned through `phys_to_virt`.
        unsafe { &*(self.0.phys_to_virt(phys) as *const Table) }
    }

    fn table_mut(&mut self, phys: u64) -> &mut Table {
        debug_assert_eq!(phys % PAGE_SIZE, 0);
        // SAFETY: as in `table`; `&mut self` makes this the only live reference.
        unsafe { &mut *(self.0.phys_to_virt(phys) as *mut Table) }
    }
}
