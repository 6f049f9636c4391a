//! PVH direct boot: load a guest ELF by its program headers and enter it in 32-bit protected
//! mode at the address named by its `XEN_ELFNOTE_PHYS32_ENTRY` note, with `ebx` pointing at
//! an `hvm_start_info` that carries the memory map and the command line.
//!
//! Why PVH: it is the boot convention QEMU (`-kernel`), Firecracker and Cloud Hypervisor
//! share, needs no firmware in the guest, and Linux supports it, so one test guest runs
//! identically under QEMU and under tern. The guest image is untrusted input (it comes from
//! the ESP and, after migration, from a peer), so the parser checks every offset and size
//! and reports a precise [`PvhError`] instead of panicking.
//!
//! References: Xen `docs/misc/pvh.pandoc` (entry state), Xen
//! `xen/include/public/arch-x86/hvm/start_info.h` (layout), `xen/include/public/elfnote.h`
//! (note type 18), the System V ABI ELF format.

mod elf;
mod start_info;

pub use elf::{LoadSegment, PvhImage, parse_elf};
pub use start_info::{
    BootParams, E820_RAM, E820_RESERVED, MAX_CMDLINE_LEN, START_INFO_GPA, START_INFO_MAGIC,
    build_boot_params,
};

use core::fmt;

/// Why a guest image or boot parameter set was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PvhError {
    /// The file is shorter than the ELF structure that was being read.
    Truncated(&'static str),
    /// Not an ELF file (bad magic).
    NotElf,
    /// ELF class other than 32- or 64-bit.
    BadClass(u8),
    /// Not little-endian.
    NotLittleEndian,
    /// Machine other than x86 or x86-64.
    BadMachine(u16),
    /// Not an executable (ET_EXEC).
    NotExecutable(u16),
    /// Program header entry size does not match the class.
    BadPhentsize(u16),
    /// More program headers than we are willing to walk.
    TooManyPhdrs(u16),
    /// A PT_LOAD has a file size larger than its memory size.
    FileSizeExceedsMemSize {
        /// Segment's physical address.
        paddr: u64,
    },
    /// A segment's file bytes lie outside the file.
    SegmentOutsideFile {
        /// Segment's physical address.
        paddr: u64,
    },
    /// A segment does not fit in guest RAM.
    SegmentOutsideRam {
        /// Segment's physical address.
        paddr: u64,
        /// Segment's memory size.
        size: u64,
    },
    /// Two PT_LOAD segments overlap in guest-physical memory.
    SegmentsOverlap {
        /// First segment.
        a: u64,
        /// Second segment.
        b: u64,
    },
    /// A segment overlaps the area reserved for boot parameters.
    SegmentOverlapsBootParams {
        /// Segment's physical address.
        paddr: u64,
    },
    /// No PT_LOAD segment.
    NoLoadSegments,
    /// A note header or body runs past its segment.
    MalformedNote,
    /// No `XEN_ELFNOTE_PHYS32_ENTRY` note: not a PVH image.
    NoPvhNote,
    /// The PVH entry note has a descriptor that is neither 4 nor 8 bytes.
    BadEntryNoteSize(u32),
    /// The PVH entry point is not inside a loaded segment (or not below 4 GiB).
    EntryOutsideImage(u64),
    /// Guest RAM too small for the fixed layout (must exceed 1 MiB).
    RamTooSmall(u64),
    /// Command line longer than [`MAX_CMDLINE_LEN`] or containing NUL.
    BadCmdline,
    /// Writing the image into guest memory failed.
    GuestMemory(u64),
}

impl fmt::Display for PvhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(what) => write!(f, "guest image truncated in {what}"),
            Self::NotElf => write!(f, "guest image is not an ELF file"),
            Self::BadClass(c) => write!(f, "guest ELF class {c} is neither 32- nor 64-bit"),
            Self::NotLittleEndian => write!(f, "guest ELF is not little-endian"),
            Self::BadMachine(m) => write!(f, "guest ELF machine {m} is not x86/x86-64"),
            Self::NotExecutable(t) => write!(f, "guest ELF type {t} is not ET_EXEC"),
            Self::BadPhentsize(s) => write!(f, "guest ELF program header size {s} is wrong"),
            Self::TooManyPhdrs(n) => write!(f, "guest ELF has too many program headers ({n})"),
            Self::FileSizeExceedsMemSize { paddr } => {
                write!(f, "guest segment at {paddr:#x} has filesz > memsz")
            }
            Self::SegmentOutsideFile { paddr } => {
                write!(f, "guest segment at {paddr:#x} lies outside the file")
            }
            Self::SegmentOutsideRam { paddr, size } => write!(
                f,
                "guest segment at {paddr:#x} (+{size:#x}) does not fit in guest RAM"
            ),
            Self::SegmentsOverlap { a, b } => {
                write!(f, "guest segments at {a:#x} and {b:#x} overlap")
            }
            Self::SegmentOverlapsBootParams { paddr } => write!(
                f,
                "guest segment at {paddr:#x} overlaps the boot parameter page"
            ),
            Self::NoLoadSegments => write!(f, "guest ELF has no PT_LOAD segment"),
            Self::MalformedNote => write!(f, "guest ELF has a malformed note"),
            Self::NoPvhNote => write!(
                f,
                "guest ELF has no XEN_ELFNOTE_PHYS32_ENTRY note (not a PVH kernel)"
            ),
            Self::BadEntryNoteSize(s) => write!(f, "guest PVH entry note has size {s}"),
            Self::EntryOutsideImage(e) => {
                write!(f, "guest PVH entry {e:#x} is not inside a loaded segment")
            }
            Self::RamTooSmall(s) => write!(f, "guest RAM of {s:#x} bytes is too small"),
            Self::BadCmdline => write!(
                f,
                "guest command line is longer than {MAX_CMDLINE_LEN} bytes or contains NUL"
            ),
            Self::GuestMemory(gpa) => write!(f, "cannot write guest memory at {gpa:#x}"),
        }
    }
}

#[cfg(test)]
mod tests;
