//! Guest RAM: one host frame per guest page, from guest-physical 0 up to the VM's size.
//!
//! Why frame by frame rather than one contiguous block: the host's free memory is
//! fragmented after boot, migration needs per-page granularity anyway (dirty tracking,
//! page transfer), and EPT maps each guest page with its own 4 KiB leaf. The frames come
//! from a [`FrameSource`] and are reachable through its `phys_to_virt`, which is how the
//! loader copies images in and how migration will read and write pages.

use alloc::vec::Vec;
use core::fmt;

use crate::vmx::ept::{EptError, EptTables, MemoryType, PAGE_SIZE, Permissions, TableMemory};
use crate::vmx::frames::FrameSource;

/// Errors of guest RAM operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestRamError {
    /// Not enough host frames for the requested size.
    OutOfMemory {
        /// Frames obtained before running out.
        got: u64,
        /// Frames needed.
        needed: u64,
    },
    /// The size is zero or not a multiple of 4 KiB.
    BadSize(u64),
    /// An access reaches past the end of guest RAM.
    OutOfRange {
        /// First guest-physical address of the access.
        gpa: u64,
        /// Its length.
        len: u64,
    },
}

impl fmt::Display for GuestRamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfMemory { got, needed } => {
                write!(
                    f,
                    "out of host memory for guest RAM ({got} of {needed} frames)"
                )
            }
            Self::BadSize(s) => write!(
                f,
                "guest RAM size {s:#x} is not a non-zero multiple of 4 KiB"
            ),
            Self::OutOfRange { gpa, len } => {
                write!(f, "guest access {gpa:#x}+{len:#x} is outside guest RAM")
            }
        }
    }
}

/// The host frames backing a VM's RAM.
#[derive(Debug)]
pub struct GuestRam {
    frames: Vec<u64>,
}

impl GuestRam {
    /// Allocate `bytes` of zeroed guest RAM.
    pub fn allocate(src: &mut impl FrameSource, bytes: u64) -> Result<Self, GuestRamError> {
        if bytes == 0 || !bytes.is_multiple_of(PAGE_SIZE) {
            return Err(GuestRamError::BadSize(bytes));
        }
        let needed = bytes / PAGE_SIZE;
        let mut frames = Vec::new();
        if frames.try_reserve_exact(needed as usize).is_err() {
            return Err(GuestRamError::OutOfMemory { got: 0, needed });
        }
        for _ in 0..needed {
            match src.allocate_zeroed() {
                Some(f) => frames.push(f),
                None => {
                    let got = frames.len() as u64;
                    for f in frames {
                        src.free(f);
                    }
                    return Err(GuestRamError::OutOfMemory { got, needed });
                }
            }
        }
        Ok(Self { frames })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.frames.len() as u64 * PAGE_SIZE
    }

    /// The host frame backing guest page `gpa`.
    pub fn host_frame(&self, gpa: u64) -> Option<u64> {
        usize::try_from(gpa / PAGE_SIZE)
            .ok()
            .and_then(|i| self.frames.get(i))
            .copied()
    }

    fn check(&self, gpa: u64, len: u64) -> Result<(), GuestRamError> {
        match gpa.checked_add(len) {
            Some(end) if end <= self.size() => Ok(()),
            _ => Err(GuestRamError::OutOfRange { gpa, len }),
        }
    }

    /// Visit the host bytes of `[gpa, gpa + len)` page piece by page piece.
    fn pieces(
        &self,
        src: &impl FrameSource,
        gpa: u64,
        len: u64,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> Result<(), GuestRamError> {
        self.check(gpa, len)?;
        let mut done = 0u64;
        while done < len {
            let at = gpa + done;
            let offset = at % PAGE_SIZE;
            let chunk = (PAGE_SIZE - offset).min(len - done);
            let frame = self.frames[(at / PAGE_SIZE) as usize];
            // Offsets and chunk are below 4096.
            f(
                src.phys_to_virt(frame).wrapping_add(offset as usize),
                chunk as usize,
                done as usize,
            );
            done += chunk;
        }
        Ok(())
    }

    /// Copy `data` into guest RAM at `gpa`.
    pub fn write(
        &self,
        src: &impl FrameSource,
        gpa: u64,
        data: &[u8],
    ) -> Result<(), GuestRamError> {
        self.pieces(src, gpa, data.len() as u64, |dst, n, from| {
            // SAFETY: `dst..dst+n` lies inside one frame owned by this VM (FrameSource
            // contract), and `data[from..from+n]` is in bounds by construction.
            unsafe { core::ptr::copy_nonoverlapping(data.as_ptr().add(from), dst, n) }
        })
    }

    /// The host bytes of the guest page at `gpa` (page aligned), for the hypervisor to write
    /// an incoming page in place. `&mut self` makes the borrow exclusive on the host side;
    /// the caller must hold the VM stopped (an incoming VM never ran), so the guest cannot
    /// write the frame through EPT meanwhile.
    pub fn page_mut<'a>(&'a mut self, src: &impl FrameSource, gpa: u64) -> Option<&'a mut [u8]> {
        if !gpa.is_multiple_of(PAGE_SIZE) {
            return None;
        }
        let frame = self.host_frame(gpa)?;
        let page = src.phys_to_virt(frame);
        // SAFETY: `frame` is a 4 KiB frame owned by this VM and reachable at `page`
        // (FrameSource contract); no other host reference to it exists while `self` is
        // borrowed mutably, and the caller keeps the guest from running (see above).
        Some(unsafe { core::slice::from_raw_parts_mut(page, PAGE_SIZE as usize) })
    }

    /// Fill `[gpa, gpa + len)` with `byte`.
    pub fn fill(
        &self,
        src: &impl FrameSource,
        gpa: u64,
        len: u64,
        byte: u8,
    ) -> Result<(), GuestRamError> {
        self.pieces(src, gpa, len, |dst, n, _| {
            // SAFETY: as in `write`.
            unsafe { core::ptr::write_bytes(dst, byte, n) }
        })
    }

    /// Copy guest RAM at `gpa` into `buf`.
    pub fn read(
        &self,
        src: &impl FrameSource,
        gpa: u64,
        buf: &mut [u8],
    ) -> Result<(), GuestRamError> {
        let out = buf.as_mut_ptr();
        self.pieces(src, gpa, buf.len() as u64, |from, n, at| {
            // SAFETY: as in `write`, with `buf[at..at+n]` in bounds.
            unsafe { core::ptr::copy_nonoverlapping(from, out.add(at), n) }
        })
    }

    /// Map every page RWX, write-back, into `ept` at its guest-physical address.
    pub fn map_into<M: TableMemory>(
        &self,
        ept: &mut EptTables,
        mem: &mut M,
    ) -> Result<(), EptError> {
        for (i, frame) in self.frames.iter().enumerate() {
            let gpa = i as u64 * PAGE_SIZE;
            ept.map(
                mem,
                gpa,
                *frame,
                PAGE_SIZE,
                Permissions::RWX,
                MemoryType::WriteBack,
            )?;
        }
        Ok(())
    }

    /// Give every frame back.
    pub fn free(self, src: &mut impl FrameSource) {
        for f in self.frames {
            src.free(f);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;
    use core::cell::UnsafeCell;

    use super::*;
    use crate::vmx::frames::FrameTables;

    /// Frames in heap memory at made-up physical addresses.
    pub(crate) struct FakeFrames {
        frames: BTreeMap<u64, Box<UnsafeCell<[u8; 4096]>>>,
        next: u64,
        pub(crate) limit: usize,
    }

    impl FakeFrames {
        pub(crate) fn new(limit: usize) -> Self {
            Self {
                frames: BTreeMap::new(),
                next: 0x4000_0000,
                limit,
            }
        }

        pub(crate) fn in_use(&self) -> usize {
            self.frames.len()
        }
    }

    // SAFETY: each address is a distinct, zero-initialised heap frame until freed, and
    // `phys_to_virt` returns a pointer to exactly that frame.
    unsafe impl FrameSource for FakeFrames {
        fn allocate_zeroed(&mut self) -> Option<u64> {
            if self.frames.len() >= self.limit {
                return None;
            }
            let phys = self.next;
            self.next += 4096;
            self.frames
                .insert(phys, Box::new(UnsafeCell::new([0; 4096])));
            Some(phys)
        }

        fn free(&mut self, phys: u64) {
            assert!(
                self.frames.remove(&phys).is_some(),
                "free of unknown frame {phys:#x}"
            );
        }

        fn phys_to_virt(&self, phys: u64) -> *mut u8 {
            let base = phys & !0xfff;
            let frame = self
                .frames
                .get(&base)
                .expect("pointer into an unknown frame");
            frame
                .get()
                .cast::<u8>()
                .wrapping_add((phys & 0xfff) as usize)
        }
    }

    #[test]
    fn allocate_write_read_fill_across_pages() {
        let mut src = FakeFrames::new(64);
        let ram = GuestRam::allocate(&mut src, 4 * 4096).unwrap();
        assert_eq!(ram.size(), 16384);
        let data: Vec<u8> = (0..6000u32).map(|i| (i % 251) as u8).collect();
        ram.write(&src, 4000, &data).unwrap();
        let mut back = vec![0u8; 6000];
        ram.read(&src, 4000, &mut back).unwrap();
        assert_eq!(back, data);
        ram.fill(&src, 4090, 10, 0xaa).unwrap();
        let mut b = [0u8; 12];
        ram.read(&src, 4089, &mut b).unwrap();
        assert_eq!(
            b,
            [
                data[89], 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, data[100]
            ]
        );
        assert_eq!(
            ram.write(&src, 16380, &[0; 8]),
            Err(GuestRamError::OutOfRange { gpa: 16380, len: 8 })
        );
        assert_eq!(
            ram.read(&src, u64::MAX, &mut b),
            Err(GuestRamError::OutOfRange {
                gpa: u64::MAX,
                len: 12
            })
        );
        ram.free(&mut src);
        assert_eq!(src.in_use(), 0);
    }

    #[test]
    fn out_of_memory_gives_everything_back() {
        let mut src = FakeFrames::new(3);
        assert_eq!(
            GuestRam::allocate(&mut src, 4 * 4096).unwrap_err(),
            GuestRamError::OutOfMemory { got: 3, needed: 4 }
        );
        assert_eq!(src.in_use(), 0);
        assert_eq!(
            GuestRam::allocate(&mut src, 100).unwrap_err(),
            GuestRamError::BadSize(100)
        );
    }

    #[test]
    fn ram_maps_into_ept_and_nothing_else() {
        let mut src = FakeFrames::new(64);
        let ram = GuestRam::allocate(&mut src, 8 * 4096).unwrap();
        let frames: Vec<u64> = (0..8).map(|i| ram.host_frame(i * 4096).unwrap()).collect();
        let mut tables_src = FakeFrames::new(64);
        let mut mem = FrameTables(&mut tables_src);
        let mut ept = EptTables::new(&mut mem).unwrap();
        ram.map_into(&mut ept, &mut mem).unwrap();
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(
                ept.translate(&mem, i as u64 * 4096 + 5).unwrap().host_phys,
                f + 5
            );
        }
        let mut count = 0;
        ept.for_each_leaf(&mut mem, 0, crate::vmx::ept::GUEST_PHYS_LIMIT, |_, _| {
            count += 1
        })
        .unwrap();
        assert_eq!(count, 8, "only guest RAM is mapped");
    }
}
