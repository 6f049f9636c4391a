//! What the e1000 driver needs from its platform: register access and DMA memory.
//!
//! Why: on bare metal the registers are MMIO in BAR0 and DMA memory is identity-mapped
//! frames; in host tests both are provided by [`super::fake`], which also plays the device.
//! The same driver code runs in both.

use core::fmt;
use core::ptr::NonNull;

/// Access to the NIC's register window. Reads may have side effects (clear-on-read
/// registers), hence `&mut self` for both.
pub trait RegisterAccess {
    /// Read the 32-bit register at byte offset `offset`.
    fn read(&mut self, offset: u32) -> u32;
    /// Write the 32-bit register at byte offset `offset`.
    fn write(&mut self, offset: u32, value: u32);
}

/// Why DMA memory could not be provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaError {
    /// No physically contiguous memory of the requested size is left.
    OutOfMemory {
        /// Requested size in bytes.
        bytes: usize,
    },
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfMemory { bytes } => write!(f, "out of DMA memory ({bytes} bytes)"),
        }
    }
}

/// A source of zeroed, physically contiguous, page-aligned memory the device can reach.
/// The driver never frees what it allocates (it lives as long as the hypervisor).
pub trait DmaMemory {
    /// Allocate `len` bytes (rounded up to whole pages by the implementation if it likes).
    fn alloc_zeroed(&mut self, len: usize) -> Result<DmaRegion, DmaError>;
}

/// A region of memory shared with the device: the CPU sees it at `virt`, the device at
/// `phys`. All accesses are volatile because the device changes it behind our back.
#[derive(Debug)]
pub struct DmaRegion {
    virt: NonNull<u8>,
    phys: u64,
    len: usize,
}

impl DmaRegion {
    /// Wrap a region.
    ///
    /// # Safety
    /// `virt .. virt + len` must be valid for reads and writes for as long as this value and
    /// the device use it, be 16-byte aligned, not be accessed through Rust references
    /// elsewhere, and be what the device reaches at `phys`.
    pub unsafe fn new(virt: NonNull<u8>, phys: u64, len: usize) -> Self {
        Self { virt, phys, len }
    }

    /// Device-visible address of byte 0.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: usize, len: usize) {
        // The driver computes every offset from its own ring indices; an out-of-range access
        // is a driver bug, never something a device or peer controls.
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "DMA access {offset:#x}+{len:#x} outside region of {:#x} bytes",
            self.len
        );
    }

    /// Volatile read of a `u64` at `offset`.
    pub fn read_u64(&self, offset: usize) -> u64 {
        self.check(offset, 8);
        assert!(
            offset.is_multiple_of(8),
            "unaligned DMA quadword at {offset:#x}"
        );
        // SAFETY: in bounds and 8-byte aligned (checked; the region base is 16-byte aligned
        // per `new`), region valid per `new`.
        unsafe { self.virt.as_ptr().add(offset).cast::<u64>().read_volatile() }
    }

    /// Volatile write of a `u64` at `offset`.
    pub fn write_u64(&self, offset: usize, value: u64) {
        self.check(offset, 8);
        assert!(
            offset.is_multiple_of(8),
            "unaligned DMA quadword at {offset:#x}"
        );
        // SAFETY: as in `read_u64`.
        unsafe {
            self.virt
                .as_ptr()
                .add(offset)
                .cast::<u64>()
                .write_volatile(value)
        }
    }

    /// Copy `out.len()` bytes starting at `offset` out of the region.
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) {
        self.check(offset, out.len());
        // SAFETY: source in bounds (checked) and valid per `new`; `out` is a distinct Rust
        // buffer, so the ranges do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.virt.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            )
        }
    }

    /// Copy `data` into the region starting at `offset`.
    pub fn copy_in(&self, offset: usize, data: &[u8]) {
        self.check(offset, data.len());
        // SAFETY: destination in bounds (checked) and valid per `new`; `data` is a distinct
        // Rust buffer.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.virt.as_ptr().add(offset),
                data.len(),
            )
        }
    }
}
