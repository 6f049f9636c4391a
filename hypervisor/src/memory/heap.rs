//! The kernel heap: one physically contiguous run of frames from the frame allocator,
//! accessed through the identity map and managed by `linked_list_allocator`.
//!
//! Sizing: 1/8 of managed memory, clamped to [4 MiB, 32 MiB]. The heap holds kernel
//! bookkeeping (console, smoltcp buffers, migration state); guest RAM never comes from it but
//! straight from the frame allocator. An allocation failure ends in the default alloc error
//! handler, which panics (a register dump and halt, see `kernel::panic`).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use spin::Mutex;

use super::frame_allocator::{FRAME_SIZE, FrameAllocator, FrameError};
use super::phys_to_ptr;

/// Smallest heap we boot with.
pub const MIN_HEAP_BYTES: u64 = 4 << 20;
/// Largest heap we take.
pub const MAX_HEAP_BYTES: u64 = 32 << 20;

struct KernelHeap(Mutex<Heap>);

// SAFETY: `alloc` hands out blocks from the heap region that no one else uses (it was taken
// from the frame allocator), `dealloc` returns them; the mutex serialises all access.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with this `layout`.
            unsafe { self.0.lock().deallocate(ptr, layout) }
        }
    }
}

#[cfg(not(test))]
#[global_allocator]
static HEAP: KernelHeap = KernelHeap(Mutex::new(Heap::empty()));

/// Where the heap lives, for the memory report.
#[derive(Clone, Copy, Debug)]
pub struct HeapInfo {
    pub phys: u64,
    pub bytes: u64,
}

/// Chooses the heap size for `managed_bytes` of allocatable memory.
pub fn heap_size_for(managed_bytes: u64) -> u64 {
    (managed_bytes / 8).clamp(MIN_HEAP_BYTES, MAX_HEAP_BYTES) / FRAME_SIZE * FRAME_SIZE
}

/// Takes the heap's frames and hands them to the global allocator. Call once, before the
/// first allocation.
pub fn init(
    frames: &mut FrameAllocator,
    identity_mapped_bytes: u64,
) -> Result<HeapInfo, FrameError> {
    let bytes = heap_size_for(frames.totals().managed_bytes);
    let phys = frames.allocate_contiguous(bytes / FRAME_SIZE, 2 << 20)?;
    if phys + bytes > identity_mapped_bytes {
        // Not reachable through the identity map: give it back and refuse.
        let _ = frames.free(phys, bytes / FRAME_SIZE);
        return Err(FrameError::OutOfMemory {
            frames: bytes / FRAME_SIZE,
        });
    }
    // SAFETY: the frames were just taken from the allocator (nobody else owns them), lie below
    // the identity-map limit (checked above) and so are mapped writable at `phys`; the heap is
    // initialised once (the caller's contract), before any allocation.
    unsafe { HEAP.0.lock().init(phys_to_ptr::<u8>(phys), bytes as usize) };
    Ok(HeapInfo { phys, bytes })
}

/// (used, size) of the heap in bytes.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.0.lock();
    (heap.used(), heap.size())
}
