//! Bare-metal platform for the driver: BAR0 registers through the identity map, DMA memory
//! from physical frames that are mapped at their own address.

use core::ptr::NonNull;

use super::hal::{DmaError, DmaMemory, DmaRegion, RegisterAccess};

/// Size of the 82540EM register window (BAR0, 128 KiB).
const REGISTER_WINDOW: u64 = 128 * 1024;

/// The e1000 register window, memory-mapped.
pub struct MmioRegisters {
    base: usize,
}

impl MmioRegisters {
    /// Use the register window at physical address `bar0`, which must be identity-mapped.
    ///
    /// # Safety
    /// `bar0 .. bar0 + 128 KiB` must be this NIC's BAR0 with memory decoding enabled, mapped
    /// at the same virtual address with a caching type that does not cache or combine (UC:
    /// firmware's MTRRs mark the PCI hole uncacheable, which wins over a WB page mapping),
    /// and no other code may drive this NIC.
    pub unsafe fn new(bar0: u64) -> Self {
        Self {
            base: bar0 as usize,
        }
    }

    fn pointer(&self, offset: u32) -> *mut u32 {
        // Offsets come from `regs` constants, all dword aligned inside the window.
        assert!(u64::from(offset) + 4 <= REGISTER_WINDOW && offset.is_multiple_of(4));
        (self.base + offset as usize) as *mut u32
    }
}

impl RegisterAccess for MmioRegisters {
    fn read(&mut self, offset: u32) -> u32 {
        let pointer = self.pointer(offset);
        // SAFETY: inside the mapped, exclusively owned register window (see `new`), aligned.
        unsafe { pointer.read_volatile() }
    }

    fn write(&mut self, offset: u32, value: u32) {
        let pointer = self.pointer(offset);
        // SAFETY: as in `read`.
        unsafe { pointer.write_volatile(value) }
    }
}

/// DMA memory from a page-frame source whose frames are identity-mapped (virtual address ==
/// physical address), as all RAM below the loader's `identity_mapped_bytes` is.
pub struct IdentityDma<F: FnMut(usize) -> Option<u64>> {
    alloc_pages: F,
    identity_limit: u64,
}

impl<F: FnMut(usize) -> Option<u64>> IdentityDma<F> {
    /// `alloc_pages(n)` must return the physical address of `n` contiguous, 4 KiB-aligned,
    /// unused 4 KiB frames (or `None`), never to be reused by anything else.
    ///
    /// # Safety
    /// Every address `alloc_pages` returns, plus the requested length, must be ordinary RAM
    /// below `identity_limit`, identity-mapped writable, and owned by the caller from then on.
    pub unsafe fn new(alloc_pages: F, identity_limit: u64) -> Self {
        Self {
            alloc_pages,
            identity_limit,
        }
    }
}

impl<F: FnMut(usize) -> Option<u64>> DmaMemory for IdentityDma<F> {
    fn alloc_zeroed(&mut self, len: usize) -> Result<DmaRegion, DmaError> {
        let pages = len.max(1).div_ceil(4096);
        let error = DmaError::OutOfMemory { bytes: len };
        let phys = (self.alloc_pages)(pages).ok_or(error)?;
        let end = phys.checked_add((pages * 4096) as u64).ok_or(error)?;
        if end > self.identity_limit {
            return Err(error);
        }
        let virt = NonNull::new(phys as usize as *mut u8).ok_or(error)?;
        // SAFETY: `new`'s contract: the frames are RAM we own, identity-mapped writable.
        unsafe { core::ptr::write_bytes(virt.as_ptr(), 0, pages * 4096) };
        // SAFETY: valid for `pages * 4096 >= len` bytes for the rest of the hypervisor's life
        // (never returned), page aligned, and the device reaches it at `phys` because virtual
        // equals physical here.
        Ok(unsafe { DmaRegion::new(virt, phys, len) })
    }
}
