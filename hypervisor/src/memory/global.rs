//! The kernel's single frame allocator instance.

use spin::Mutex;

use super::frame_allocator::FrameAllocator;

/// All physical memory tern may hand out. Filled once at boot from the loader's memory map;
/// VM memory, EPT tables, NIC rings and the heap all come from here.
pub static FRAMES: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::empty());
