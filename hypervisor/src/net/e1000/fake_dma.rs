//! Fake DMA memory for host tests: heap allocations that the fake device reaches by a
//! made-up "physical" address distinct from the pointer, so that a driver handing the device
//! a virtual address instead of a physical one is caught.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::cell::RefCell;
use core::ptr::NonNull;

use super::hal::{DmaError, DmaMemory, DmaRegion};

struct Allocation {
    phys: u64,
    ptr: NonNull<u8>,
    layout: Layout,
}

struct Memory {
    allocations: Vec<Allocation>,
    next_phys: u64,
    budget: usize,
}

impl Drop for Memory {
    fn drop(&mut self) {
        for allocation in &self.allocations {
            // SAFETY: allocated in `alloc_zeroed` with exactly this layout and freed only
            // here, once, when the last handle (driver and device side) is gone.
            unsafe { std::alloc::dealloc(allocation.ptr.as_ptr(), allocation.layout) }
        }
    }
}

/// Shared fake physical memory; clones refer to the same memory.
#[derive(Clone)]
pub struct FakeDma {
    memory: Rc<RefCell<Memory>>,
}

impl FakeDma {
    /// Memory with room for `budget` bytes of allocations.
    pub fn with_budget(budget: usize) -> Self {
        Self {
            memory: Rc::new(RefCell::new(Memory {
                allocations: Vec::new(),
                next_phys: 0x4000_0000,
                budget,
            })),
        }
    }

    /// Plenty of memory.
    pub fn new() -> Self {
        Self::with_budget(64 << 20)
    }

    fn locate(&self, phys: u64, len: usize) -> Option<*mut u8> {
        let memory = self.memory.borrow();
        memory.allocations.iter().find_map(|a| {
            let end = a.phys + a.layout.size() as u64;
            (phys >= a.phys && phys + len as u64 <= end)
                // SAFETY: the offset is inside the allocation (checked just above).
                .then(|| unsafe { a.ptr.as_ptr().add((phys - a.phys) as usize) })
        })
    }

    /// Device-side read of `out.len()` bytes at `phys`; `false` if outside any allocation.
    pub fn read(&self, phys: u64, out: &mut [u8]) -> bool {
        match self.locate(phys, out.len()) {
            Some(source) => {
                // SAFETY: `locate` checked the range lies inside a live allocation; `out` is
                // a distinct buffer. The driver touches this memory only through raw
                // pointers, never through references that this could invalidate.
                unsafe { core::ptr::copy_nonoverlapping(source, out.as_mut_ptr(), out.len()) };
                true
            }
            None => false,
        }
    }

    /// Device-side write of `data` at `phys`; `false` if outside any allocation.
    pub fn write(&self, phys: u64, data: &[u8]) -> bool {
        match self.locate(phys, data.len()) {
            Some(target) => {
                // SAFETY: as in `read`.
                unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), target, data.len()) };
                true
            }
            None => false,
        }
    }
}

impl Default for FakeDma {
    fn default() -> Self {
        Self::new()
    }
}

impl DmaMemory for FakeDma {
    fn alloc_zeroed(&mut self, len: usize) -> Result<DmaRegion, DmaError> {
        let mut memory = self.memory.borrow_mut();
        let size = len.max(1).next_multiple_of(4096);
        if size > memory.budget {
            return Err(DmaError::OutOfMemory { bytes: len });
        }
        let layout = Layout::from_size_align(size, 4096)
            .map_err(|_| DmaError::OutOfMemory { bytes: len })?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })
            .ok_or(DmaError::OutOfMemory { bytes: len })?;
        memory.budget -= size;
        let phys = memory.next_phys;
        // Leave a guard gap between allocations so overruns do not land in a neighbour.
        memory.next_phys += size as u64 + 4096;
        memory.allocations.push(Allocation { phys, ptr, layout });
        // SAFETY: the allocation is valid, 4096-aligned, zeroed, lives until the last
        // `FakeDma` clone drops (the driver owns one), and the fake device reaches it at
        // `phys` through `read`/`write`.
        Ok(unsafe { DmaRegion::new(ptr, phys, len) })
    }
}
