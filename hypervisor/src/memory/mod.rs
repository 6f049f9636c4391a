//! Physical memory: the frame allocator (portable, host-tested) and, on bare metal, the
//! global instances of it and of the kernel heap.
//!
//! Addressing: the loader identity-maps physical memory (see `boot_proto::BootInfo`), so on
//! bare metal a physical address below `identity_mapped_bytes` is also a valid virtual
//! address. [`phys_to_ptr`] is the one place that encodes that rule.

pub mod frame_allocator;
pub mod range_set;

#[cfg(target_os = "none")]
pub mod global;
#[cfg(target_os = "none")]
pub mod heap;

pub use frame_allocator::{FRAME_SIZE, FrameAllocator, FrameError, MemoryTotals};
pub use range_set::PhysRange;

/// The virtual address at which physical address `phys` is mapped (identity map).
///
/// Dereferencing the pointer is only sound if `phys` is below the identity-mapped limit and the
/// memory there is owned by the caller; that is the caller's `unsafe` to argue.
pub fn phys_to_ptr<T>(phys: u64) -> *mut T {
    phys as usize as *mut T
}
