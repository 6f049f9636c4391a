//! [`GuestMemory`] over a VM's real [`GuestRam`]: the adapter the exit-handler wiring will
//! hand to a virtio device on bare metal.
//!
//! Guest RAM is one host frame per guest page from guest-physical 0 up to its size, with
//! no holes, so "is RAM" is a bounds check and every access goes through `GuestRam`'s own
//! checked, page-by-page copy. A device therefore never dereferences a guest address.

use super::guest_memory::{GuestMemory, GuestMemoryError};
use crate::vm::guest_ram::GuestRam;
use crate::vmx::frames::FrameSource;

/// A VM's RAM together with the frame source that maps its frames.
pub struct GuestRamMemory<'a, S: FrameSource> {
    ram: &'a GuestRam,
    frames: &'a S,
}

impl<'a, S: FrameSource> GuestRamMemory<'a, S> {
    /// `ram` as reached through `frames`.
    pub fn new(ram: &'a GuestRam, frames: &'a S) -> Self {
        Self { ram, frames }
    }
}

impl<S: FrameSource> GuestMemory for GuestRamMemory<'_, S> {
    fn is_ram(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len)
            .is_some_and(|end| end <= self.ram.size())
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        self.ram
            .read(self.frames, gpa, buf)
            .map_err(|_| GuestMemoryError {
                gpa,
                len: buf.len() as u64,
            })
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), GuestMemoryError> {
        self.ram
            .write(self.frames, gpa, data)
            .map_err(|_| GuestMemoryError {
                gpa,
                len: data.len() as u64,
            })
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::vm::guest_ram::tests::FakeFrames;

    #[test]
    fn reads_and_writes_across_pages_and_refuses_outside_ram() {
        let mut frames = FakeFrames::new(8);
        let ram = GuestRam::allocate(&mut frames, 2 * 4096).unwrap();
        let mut mem = GuestRamMemory::new(&ram, &frames);
        assert!(mem.is_ram(0, 8192));
        assert!(!mem.is_ram(1, 8192));
        assert!(!mem.is_ram(u64::MAX, 2));
        mem.write(4090, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(mem.read_u64(4090).unwrap(), 0x0807_0605_0403_0201);
        let err = mem.write(8190, &[0; 4]).unwrap_err();
        assert_eq!(err, GuestMemoryError { gpa: 8190, len: 4 });
        let mut buf = vec![0u8; 3];
        assert!(mem.read(8192, &mut buf).is_err());
        ram.free(&mut frames);
    }
}
