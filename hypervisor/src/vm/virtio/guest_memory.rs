//! Guest memory as a virtio device model sees it: bytes at guest-physical addresses.
//!
//! Why a trait: the split virtqueue lives in guest RAM, so every device model reads and
//! writes guest memory. Behind this trait the models run on the host against
//! `FakeGuestMemory` (tests) and on bare metal against the VM's `GuestRam` (through
//! `guest_ram_memory`). Every access names its full range and fails cleanly
//! when any byte of it is outside RAM: a guest-chosen address never reaches a raw pointer
//! unchecked.

use core::fmt;

/// An access that is not entirely inside guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestMemoryError {
    /// First guest-physical address of the access.
    pub gpa: u64,
    /// Its length in bytes.
    pub len: u64,
}

impl fmt::Display for GuestMemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guest access {:#x}+{:#x} is outside guest RAM",
            self.gpa, self.len
        )
    }
}

/// Byte access to a VM's RAM by guest-physical address.
///
/// Implementations must make writes visible to the guest in program order (the used ring's
/// index is published after its element; SDM Vol. 3A 9.2.2: x86 stores are not reordered
/// with other stores, so a compiler barrier suffices on bare metal).
pub trait GuestMemory {
    /// Whether `[gpa, gpa + len)` lies entirely in guest RAM (false on overflow).
    fn is_ram(&self, gpa: u64, len: u64) -> bool;

    /// Copy guest RAM at `gpa` into `buf`; nothing is read when any byte is outside RAM.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError>;

    /// Copy `data` into guest RAM at `gpa`; nothing is written when any byte is outside RAM.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), GuestMemoryError>;

    /// A little-endian `u16` at `gpa`.
    fn read_u16(&self, gpa: u64) -> Result<u16, GuestMemoryError> {
        let mut b = [0; 2];
        self.read(gpa, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// A little-endian `u32` at `gpa`.
    fn read_u32(&self, gpa: u64) -> Result<u32, GuestMemoryError> {
        let mut b = [0; 4];
        self.read(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// A little-endian `u64` at `gpa`.
    fn read_u64(&self, gpa: u64) -> Result<u64, GuestMemoryError> {
        let mut b = [0; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Guest RAM as one byte vector starting at guest-physical 0 (host tests).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeGuestMemory {
    /// The RAM contents.
    pub bytes: alloc::vec::Vec<u8>,
}

#[cfg(test)]
impl FakeGuestMemory {
    /// `size` bytes of zeroed RAM.
    pub fn new(size: usize) -> Self {
        Self {
            bytes: alloc::vec![0; size],
        }
    }

    fn range(&self, gpa: u64, len: usize) -> Result<core::ops::Range<usize>, GuestMemoryError> {
        let err = GuestMemoryError {
            gpa,
            len: len as u64,
        };
        let start = usize::try_from(gpa).map_err(|_| err)?;
        let end = start.checked_add(len).ok_or(err)?;
        if end > self.bytes.len() {
            return Err(err);
        }
        Ok(start..end)
    }
}

#[cfg(test)]
impl GuestMemory for FakeGuestMemory {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        usize::try_from(len).is_ok_and(|len| self.range(gpa, len).is_ok())
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        let r = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), GuestMemoryError> {
        let r = self.range(gpa, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }
}
