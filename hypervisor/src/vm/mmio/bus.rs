//! The guest-physical MMIO bus: which device answers at which address.
//!
//! Why a bus of borrowed handlers: device models live in the VM (`Machine`) beside
//! everything else they are wired to (interrupt lines, guest RAM for virtio queues). At an
//! MMIO exit the VM lends the ones with MMIO windows to an [`MmioBus`] for the duration of
//! one access, so a handler can itself borrow whatever it needs (e.g. a virtio transport
//! together with guest memory), and nothing is shared or reference-counted.
//!
//! Using it from a new device:
//!
//! ```ignore
//! struct MyDeviceWindow<'a> { dev: &'a mut MyDevice }
//! impl MmioHandler for MyDeviceWindow<'_> {
//!     fn read(&mut self, offset: u64, size: u8) -> u64 { self.dev.read(offset, size) }
//!     fn write(&mut self, offset: u64, size: u8, value: u64) { self.dev.write(offset, size, value) }
//! }
//! let mut bus = MmioBus::new();
//! bus.add(MmioRegion { base: 0xd000_0000, len: 0x1000 }, &mut MyDeviceWindow { dev })?;
//! ```
//!
//! Handlers see offsets from their region's base and an access size of 1, 2, 4 or 8; an
//! access that is not entirely inside one region reaches no handler (reads return all
//! ones, writes are dropped), as on a bus where nothing decodes the address.

use core::fmt;

/// A device's MMIO registers.
pub trait MmioHandler {
    /// A guest read of `size` bytes at `offset` from the region base; the value is
    /// truncated to `size` by the caller.
    fn read(&mut self, offset: u64, size: u8) -> u64;
    /// A guest write of `size` bytes (`value` already truncated to `size`).
    fn write(&mut self, offset: u64, size: u8, value: u64);
}

/// A guest-physical address range `[base, base + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioRegion {
    /// First guest-physical address.
    pub base: u64,
    /// Length in bytes (not 0).
    pub len: u64,
}

impl MmioRegion {
    /// Whether `[gpa, gpa + size)` lies inside the region.
    pub fn contains(&self, gpa: u64, size: u64) -> bool {
        gpa >= self.base
            && gpa
                .checked_add(size)
                .is_some_and(|end| end - self.base <= self.len)
    }

    fn overlaps(&self, other: &MmioRegion) -> bool {
        self.base < other.base.saturating_add(other.len)
            && other.base < self.base.saturating_add(self.len)
    }
}

/// Most regions one bus holds.
pub const MAX_REGIONS: usize = 8;

/// Why a region could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioBusError {
    /// The region is empty or wraps around the address space.
    BadRegion(MmioRegion),
    /// It overlaps a region already on the bus.
    Overlap(MmioRegion),
    /// The bus already holds [`MAX_REGIONS`].
    Full,
}

impl fmt::Display for MmioBusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRegion(r) => write!(f, "bad MMIO region {:#x}+{:#x}", r.base, r.len),
            Self::Overlap(r) => write!(
                f,
                "MMIO region {:#x}+{:#x} overlaps another device",
                r.base, r.len
            ),
            Self::Full => write!(f, "more than {MAX_REGIONS} MMIO regions"),
        }
    }
}

/// Guest-physical ranges mapped to borrowed device handlers.
pub struct MmioBus<'a> {
    regions: [Option<(MmioRegion, &'a mut dyn MmioHandler)>; MAX_REGIONS],
}

impl Default for MmioBus<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> MmioBus<'a> {
    /// A bus with no devices.
    pub fn new() -> Self {
        Self {
            regions: [const { None }; MAX_REGIONS],
        }
    }

    /// Put `handler` at `region`.
    pub fn add(
        &mut self,
        region: MmioRegion,
        handler: &'a mut dyn MmioHandler,
    ) -> Result<(), MmioBusError> {
        if region.len == 0 || region.base.checked_add(region.len).is_none() {
            return Err(MmioBusError::BadRegion(region));
        }
        if self
            .regions
            .iter()
            .flatten()
            .any(|(r, _)| r.overlaps(&region))
        {
            return Err(MmioBusError::Overlap(region));
        }
        let slot = self
            .regions
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(MmioBusError::Full)?;
        *slot = Some((region, handler));
        Ok(())
    }

    /// Whether some region contains the byte at `gpa`.
    pub fn covers(&self, gpa: u64) -> bool {
        self.regions
            .iter()
            .flatten()
            .any(|(r, _)| r.contains(gpa, 1))
    }

    fn find(&mut self, gpa: u64, size: u8) -> Option<(u64, &mut &'a mut dyn MmioHandler)> {
        self.regions
            .iter_mut()
            .flatten()
            .find(|(r, _)| r.contains(gpa, u64::from(size)))
            .map(|(r, h)| (gpa - r.base, h))
    }

    /// A read of `size` bytes at `gpa`; `None` when no region holds the whole access.
    pub fn read(&mut self, gpa: u64, size: u8) -> Option<u64> {
        let (offset, handler) = self.find(gpa, size)?;
        Some(handler.read(offset, size) & super::decode::size_mask(size))
    }

    /// A write of `size` bytes at `gpa`; false when no region holds the whole access.
    pub fn write(&mut self, gpa: u64, size: u8, value: u64) -> bool {
        match self.find(gpa, size) {
            Some((offset, handler)) => {
                handler.write(offset, size, value & super::decode::size_mask(size));
                true
            }
            None => false,
        }
    }
}
