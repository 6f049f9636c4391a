//! Accepting the loader's `BootInfo` without trusting it.
//!
//! The structure arrives as a physical address in `rdi`. Before a Rust reference to it may
//! exist, every field with restricted values must be valid: `MemoryKind` is a `repr(u32)` enum,
//! and a reference to a struct holding an out-of-range discriminant is undefined behaviour.
//! So the header and every region's kind are checked through raw pointers first.

use core::mem::offset_of;

use boot_proto::{
    BOOT_INFO_MAGIC, BOOT_INFO_VERSION, BootInfo, BootInfoError, MAX_MEMORY_REGIONS, MemoryRegion,
    PhysSlice,
};

// The kind check below relies on MemoryKind's discriminants being exactly 1..=8.
const _: () = assert!(
    boot_proto::MemoryKind::Usable as u32 == 1 && boot_proto::MemoryKind::LoaderUsed as u32 == 8
);

/// The loader guarantees at least this much identity mapping (4 GiB, MMIO included).
pub const MIN_IDENTITY_MAPPED: u64 = 4 << 30;

/// Why the boot info was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The address is null, misaligned or outside the guaranteed identity map.
    BadAddress(u64),
    /// The header or counts are wrong.
    Header(BootInfoError),
    /// Memory-map entry `index` has an unknown kind value.
    BadMemoryKind { index: usize, raw: u32 },
    /// `identity_mapped_bytes` is below the 4 GiB the contract promises.
    IdentityMapTooSmall(u64),
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootError::BadAddress(a) => write!(f, "boot info address {a:#x} is not usable"),
            BootError::Header(e) => e.fmt(f),
            BootError::BadMemoryKind { index, raw } => {
                write!(f, "memory map entry {index} has unknown kind {raw}")
            }
            BootError::IdentityMapTooSmall(b) => {
                write!(
                    f,
                    "loader identity-mapped only {b:#x} bytes (need at least 4 GiB)"
                )
            }
        }
    }
}

/// Validates and returns the boot info at `phys`.
///
/// # Safety
/// `phys` must be what the loader passed in `rdi`: if it is in the identity map, the memory
/// there is readable and stays untouched (BootData) for the kernel's lifetime.
pub unsafe fn from_phys(phys: u64) -> Result<&'static BootInfo, BootError> {
    let size = core::mem::size_of::<BootInfo>() as u64;
    let aligned = phys.is_multiple_of(core::mem::align_of::<BootInfo>() as u64);
    if phys == 0 || !aligned || phys.saturating_add(size) > MIN_IDENTITY_MAPPED {
        return Err(BootError::BadAddress(phys));
    }
    let base = phys as usize as *const u8;
    // SAFETY: [phys, phys + size) is inside the identity map (checked above) and readable per
    // the caller's contract; plain integers are read at their field offsets, and no reference
    // to the (not yet validated) BootInfo is created.
    let read_u32 = |off: usize| unsafe { core::ptr::read(base.add(off) as *const u32) };
    // SAFETY: as above.
    let magic = unsafe { core::ptr::read(base.add(offset_of!(BootInfo, magic)) as *const u64) };
    if magic != BOOT_INFO_MAGIC {
        return Err(BootError::Header(BootInfoError::BadMagic(magic)));
    }
    let version = read_u32(offset_of!(BootInfo, version));
    if version != BOOT_INFO_VERSION {
        return Err(BootError::Header(BootInfoError::VersionMismatch {
            found: version,
            expected: BOOT_INFO_VERSION,
        }));
    }
    let found = read_u32(offset_of!(BootInfo, size));
    if found as u64 != size {
        return Err(BootError::Header(BootInfoError::SizeMismatch {
            found,
            expected: size as u32,
        }));
    }
    let count = read_u32(offset_of!(BootInfo, memory_region_count)) as usize;
    if count > MAX_MEMORY_REGIONS {
        return Err(BootError::Header(BootInfoError::CountOutOfRange));
    }
    let regions = offset_of!(BootInfo, memory_regions);
    for index in 0..MAX_MEMORY_REGIONS {
        let off =
            regions + index * core::mem::size_of::<MemoryRegion>() + offset_of!(MemoryRegion, kind);
        let raw = read_u32(off);
        if !(1..=8).contains(&raw) {
            // Entries past `count` must be valid too, since they are part of the array a
            // reference covers; the loader fills them with MemoryRegion::EMPTY.
            return Err(BootError::BadMemoryKind { index, raw });
        }
    }
    // SAFETY: the only fields with invalid bit patterns (the MemoryKind discriminants) were
    // all checked above; everything else is plain integers. The memory stays valid and
    // unmodified for the kernel's lifetime (BootData, excluded from the allocator).
    let info = unsafe { &*(base as *const BootInfo) };
    info.validate().map_err(BootError::Header)?;
    if info.identity_mapped_bytes < MIN_IDENTITY_MAPPED {
        return Err(BootError::IdentityMapTooSmall(info.identity_mapped_bytes));
    }
    Ok(info)
}

/// The bytes of a `PhysSlice` as a `&'static str`, if it is inside the identity map and UTF-8.
pub fn slice_as_str(slice: PhysSlice, identity_limit: u64) -> Option<&'static str> {
    if slice.len == 0 {
        return Some("");
    }
    let end = slice.phys.checked_add(slice.len)?;
    if slice.phys == 0 || end > identity_limit {
        return None;
    }
    // SAFETY: the range is inside the identity map (checked) and is loader BootData that
    // nothing writes for the kernel's lifetime; u8 has no alignment or validity constraints.
    let bytes = unsafe {
        core::slice::from_raw_parts(slice.phys as usize as *const u8, slice.len as usize)
    };
    core::str::from_utf8(bytes).ok()
}
