//! The kernel's single frame allocator instance and the identity-map limit, with the helpers
//! other subsystems use to get memory (VMCS/VMXON regions, EPT tables, guest RAM, NIC rings).

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use super::frame_allocator::{FRAME_SIZE, FrameAllocator, FrameError};
use super::phys_to_ptr;

/// All physical memory tern may hand out. Filled once at boot from the loader's memory map.
pub static FRAMES: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::empty());

static IDENTITY_LIMIT: AtomicU64 = AtomicU64::new(0);

/// Records how far the loader's identity map reaches (boot only).
pub fn set_identity_limit(bytes: u64) {
    IDENTITY_LIMIT.store(bytes, Ordering::Relaxed);
}

/// Physical addresses below this are mapped at `virt == phys`.
pub fn identity_limit() -> u64 {
    IDENTITY_LIMIT.load(Ordering::Relaxed)
}

/// Allocates `frames` contiguous frames aligned to `align` bytes, zeroed, reachable through the
/// identity map. Returns the physical (= virtual) address.
pub fn allocate_zeroed(frames: u64, align: u64) -> Result<u64, FrameError> {
    let phys = FRAMES.lock().allocate_contiguous(frames, align)?;
    let bytes = frames * FRAME_SIZE;
    if phys + bytes > identity_limit() {
        let _ = FRAMES.lock().free(phys, frames);
        return Err(FrameError::OutOfMemory { frames });
    }
    // SAFETY: the frames were just allocated (exclusively ours) and lie inside the identity
    // map (checked above), which maps them writable at `phys`.
    unsafe { core::ptr::write_bytes(phys_to_ptr::<u8>(phys), 0, bytes as usize) };
    Ok(phys)
}

/// Returns frames obtained from [`allocate_zeroed`] (or `FRAMES` directly).
pub fn free(phys: u64, frames: u64) -> Result<(), FrameError> {
    FRAMES.lock().free(phys, frames)
}
