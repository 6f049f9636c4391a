//! Physical frame allocator built from the loader's memory map.
//!
//! Only [`MemoryKind::Usable`] memory is ever handed out. The map comes from firmware via the
//! loader and is treated as untrusted input: entries may be unsorted, overlapping or unaligned.
//! The rules, in order:
//!
//! 1. every usable entry is shrunk inwards to 4 KiB boundaries and added;
//! 2. every non-usable entry (hypervisor image, boot data, modules, loader memory, ACPI,
//!    reserved, unusable) is grown outwards to 4 KiB boundaries and removed, so where a usable
//!    and a non-usable entry overlap, the non-usable one wins;
//! 3. everything below 1 MiB is removed (real-mode leftovers, BIOS data, and frame 0, whose
//!    address doubles as "null").
//!
//! The result is the set of *managed* memory. Free memory starts equal to it; allocation
//! removes from the free set, freeing puts back after checking that the frames are managed and
//! not already free (a double free is reported, not absorbed).

use boot_proto::{MemoryKind, MemoryRegion};

use super::range_set::{PhysRange, RangeSet};

/// Size of a frame (a 4 KiB page).
pub const FRAME_SIZE: u64 = 4096;
/// Memory below this is never allocated.
pub const LOW_MEMORY_LIMIT: u64 = 1 << 20;
/// Most disjoint free ranges tracked (one per hole in the map plus fragmentation).
pub const MAX_RANGES: usize = 1024;

const fn align_down(x: u64, a: u64) -> u64 {
    x & !(a - 1)
}

const fn align_up(x: u64, a: u64) -> Option<u64> {
    match x.checked_add(a - 1) {
        Some(v) => Some(v & !(a - 1)),
        None => None,
    }
}

/// Why an allocation or a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No free run of the requested size and alignment exists.
    OutOfMemory { frames: u64 },
    /// The request was for zero frames or a non-power-of-two alignment.
    BadRequest,
    /// The freed address is not 4 KiB aligned.
    Unaligned { addr: u64 },
    /// The freed frames were never managed by this allocator.
    NotManaged { addr: u64, frames: u64 },
    /// Some of the freed frames are already free.
    DoubleFree { addr: u64, frames: u64 },
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            FrameError::OutOfMemory { frames } => {
                write!(f, "out of physical memory: no free run of {frames} frames")
            }
            FrameError::BadRequest => write!(f, "bad frame request (zero frames or bad alignment)"),
            FrameError::Unaligned { addr } => {
                write!(f, "frame address {addr:#x} is not 4 KiB aligned")
            }
            FrameError::NotManaged { addr, frames } => {
                write!(f, "{frames} frames at {addr:#x} are not allocatable memory")
            }
            FrameError::DoubleFree { addr, frames } => {
                write!(f, "double free of {frames} frames at {addr:#x}")
            }
        }
    }
}

/// Figures for the memory report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryTotals {
    /// Bytes the allocator manages (usable after all exclusions).
    pub managed_bytes: u64,
    /// Bytes currently free.
    pub free_bytes: u64,
    /// Bytes of RAM in use by tern, the loader or ACPI tables (image, boot data, modules,
    /// loader memory, ACPI reclaimable): RAM that exists but is not allocatable.
    pub reserved_bytes: u64,
    /// Bytes the map marks `Reserved` or `Unusable`: firmware runtime memory, ACPI NVS and
    /// MMIO windows (which are address space, not RAM; the map does not tell them apart).
    pub firmware_reserved_bytes: u64,
    /// Bytes the map reports as usable before exclusions.
    pub usable_reported_bytes: u64,
    /// Highest end address of any entry (the physical address space in use).
    pub highest_address: u64,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct FrameAllocator {
    managed: RangeSet<MAX_RANGES>,
    free: RangeSet<MAX_RANGES>,
    totals: MemoryTotals,
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::empty()
    }
}

impl FrameAllocator {
    /// An allocator with no memory (a `const` for statics; fill it with [`Self::from_regions`]).
    pub const fn empty() -> FrameAllocator {
        FrameAllocator {
            managed: RangeSet::new(),
            free: RangeSet::new(),
            totals: MemoryTotals {
                managed_bytes: 0,
                free_bytes: 0,
                reserved_bytes: 0,
                firmware_reserved_bytes: 0,
                usable_reported_bytes: 0,
                highest_address: 0,
            },
        }
    }

    /// Builds the allocator from a memory map (see the module documentation for the rules).
    pub fn from_regions(regions: &[MemoryRegion]) -> FrameAllocator {
        let mut a = FrameAllocator::empty();
        a.reset_from(regions);
        a
    }

    /// Rebuilds the allocator in place from a memory map, forgetting all previous state (for
    /// the global instance, which is too large to build on the boot stack and move).
    pub fn reset_from(&mut self, regions: &[MemoryRegion]) {
        *self = FrameAllocator::empty();
        // Unions, so overlapping entries are not counted twice.
        let mut reserved = RangeSet::<MAX_RANGES>::new();
        let mut firmware = RangeSet::<MAX_RANGES>::new();
        for r in regions {
            let end = r.end();
            self.totals.highest_address = self.totals.highest_address.max(end);
            if r.kind == MemoryKind::Usable {
                self.totals.usable_reported_bytes =
                    self.totals.usable_reported_bytes.saturating_add(r.len);
                let start = align_up(r.start, FRAME_SIZE).unwrap_or(u64::MAX);
                let end = align_down(end, FRAME_SIZE);
                self.managed.insert(PhysRange::new(start, end));
            }
        }
        for r in regions {
            if r.kind != MemoryKind::Usable {
                let start = align_down(r.start, FRAME_SIZE);
                let end = align_up(r.end(), FRAME_SIZE).unwrap_or(u64::MAX);
                self.managed.remove(PhysRange::new(start, end));
                let range = PhysRange::new(r.start, r.end());
                match r.kind {
                    MemoryKind::Reserved | MemoryKind::Unusable => firmware.insert(range),
                    _ => reserved.insert(range),
                }
            }
        }
        self.managed.remove(PhysRange::new(0, LOW_MEMORY_LIMIT));
        self.free = self.managed.clone();
        self.totals.reserved_bytes = reserved.total_bytes();
        self.totals.firmware_reserved_bytes = firmware.total_bytes();
        self.totals.managed_bytes = self.managed.total_bytes();
        self.totals.free_bytes = self.totals.managed_bytes;
    }

    pub fn totals(&self) -> MemoryTotals {
        self.totals
    }

    /// The free ranges, sorted (for diagnostics and tests).
    pub fn free_ranges(&self) -> &[PhysRange] {
        self.free.as_slice()
    }

    /// The managed ranges, sorted.
    pub fn managed_ranges(&self) -> &[PhysRange] {
        self.managed.as_slice()
    }

    /// Allocates one 4 KiB frame; returns its physical address.
    pub fn allocate_frame(&mut self) -> Result<u64, FrameError> {
        self.allocate_contiguous(1, FRAME_SIZE)
    }

    /// Allocates `frames` physically contiguous frames whose start is aligned to `align` bytes
    /// (a power of two, at least 4 KiB; smaller values mean 4 KiB). First fit, lowest address.
    pub fn allocate_contiguous(&mut self, frames: u64, align: u64) -> Result<u64, FrameError> {
        if frames == 0 || !align.is_power_of_two() {
            return Err(FrameError::BadRequest);
        }
        let align = align.max(FRAME_SIZE);
        let bytes = frames
            .checked_mul(FRAME_SIZE)
            .ok_or(FrameError::OutOfMemory { frames })?;
        let found = self.free.as_slice().iter().find_map(|r| {
            let start = align_up(r.start, align)?;
            let end = start.checked_add(bytes)?;
            (end <= r.end).then_some(start)
        });
        let start = found.ok_or(FrameError::OutOfMemory { frames })?;
        self.free.remove(PhysRange::new(start, start + bytes));
        self.totals.free_bytes -= bytes;
        Ok(start)
    }

    /// Returns `frames` frames starting at `addr` to the free set.
    pub fn free(&mut self, addr: u64, frames: u64) -> Result<(), FrameError> {
        if frames == 0 {
            return Err(FrameError::BadRequest);
        }
        if !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Unaligned { addr });
        }
        let end = frames
            .checked_mul(FRAME_SIZE)
            .and_then(|b| addr.checked_add(b))
            .ok_or(FrameError::NotManaged { addr, frames })?;
        let range = PhysRange::new(addr, end);
        if !self.managed.contains(&range) {
            return Err(FrameError::NotManaged { addr, frames });
        }
        if self.free.overlaps(&range) {
            return Err(FrameError::DoubleFree { addr, frames });
        }
        self.free.insert(range);
        self.totals.free_bytes += range.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
