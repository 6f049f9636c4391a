//! Accepting the loader's `BootInfo` without trusting it.
//!
//! The structure arrives as a physical address in `rdi`. Before a Rust reference to it may
//! exist, every field with restricted values must be valid: `MemoryKind` is a `repr(u32)` enum,
//! and a reference to a struct holding an out-of-range discriminant is undefined behaviour.
//! So [`check_raw`] first checks the header and every region's kind on the raw bytes (portable,
//! host-tested); only then does the bare-metal [`from_phys`] turn the bytes into a reference.

use core::mem::{offset_of, size_of};

use boot_proto::{
    BOOT_INFO_MAGIC, BOOT_INFO_VERSION, BootInfo, BootInfoError, MAX_MEMORY_REGIONS, MemoryRegion,
};

// The kind check relies on MemoryKind's discriminants being exactly 1..=8.
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

fn u32_at(bytes: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[off..off + 4]);
    u32::from_le_bytes(b)
}

/// Checks that `bytes` (exactly `size_of::<BootInfo>()` of them) hold a `BootInfo` of this
/// build whose enum fields are all valid, so that it may be viewed as a `&BootInfo`.
pub fn check_raw(bytes: &[u8]) -> Result<(), BootError> {
    let size = size_of::<BootInfo>();
    if bytes.len() != size {
        return Err(BootError::Header(BootInfoError::SizeMismatch {
            found: bytes.len() as u32,
            expected: size as u32,
        }));
    }
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&bytes[offset_of!(BootInfo, magic)..][..8]);
    let magic = u64::from_le_bytes(magic);
    if magic != BOOT_INFO_MAGIC {
        return Err(BootError::Header(BootInfoError::BadMagic(magic)));
    }
    let version = u32_at(bytes, offset_of!(BootInfo, version));
    if version != BOOT_INFO_VERSION {
        return Err(BootError::Header(BootInfoError::VersionMismatch {
            found: version,
            expected: BOOT_INFO_VERSION,
        }));
    }
    let found = u32_at(bytes, offset_of!(BootInfo, size));
    if found as usize != size {
        return Err(BootError::Header(BootInfoError::SizeMismatch {
            found,
            expected: size as u32,
        }));
    }
    let regions = offset_of!(BootInfo, memory_regions);
    // Entries past the count must be valid too: they are part of the array a reference
    // covers (the loader fills them with MemoryRegion::EMPTY).
    for index in 0..MAX_MEMORY_REGIONS {
        let off = regions + index * size_of::<MemoryRegion>() + offset_of!(MemoryRegion, kind);
        let raw = u32_at(bytes, off);
        if !(1..=8).contains(&raw) {
            return Err(BootError::BadMemoryKind { index, raw });
        }
    }
    Ok(())
}

/// Validates and returns the boot info at `phys`.
///
/// # Safety
/// `phys` must be what the loader passed in `rdi`: if it is in the identity map, the memory
/// there is readable and stays untouched (BootData) for the kernel's lifetime.
#[cfg(target_os = "none")]
pub unsafe fn from_phys(phys: u64) -> Result<&'static BootInfo, BootError> {
    let size = size_of::<BootInfo>();
    let aligned = phys.is_multiple_of(core::mem::align_of::<BootInfo>() as u64);
    if phys == 0 || !aligned || phys.saturating_add(size as u64) > MIN_IDENTITY_MAPPED {
        return Err(BootError::BadAddress(phys));
    }
    // SAFETY: [phys, phys + size) is inside the identity map (checked above) and readable and
    // unchanging per the caller's contract; any bytes are valid `u8`s.
    let bytes = unsafe { core::slice::from_raw_parts(phys as usize as *const u8, size) };
    check_raw(bytes)?;
    // SAFETY: `check_raw` verified the only fields with invalid bit patterns (the MemoryKind
    // discriminants); everything else is plain integers; alignment was checked above.
    let info = unsafe { &*(bytes.as_ptr() as *const BootInfo) };
    info.validate().map_err(BootError::Header)?;
    if info.identity_mapped_bytes < MIN_IDENTITY_MAPPED {
        return Err(BootError::IdentityMapTooSmall(info.identity_mapped_bytes));
    }
    Ok(info)
}

/// The bytes of a `PhysSlice` as a `&'static str`, if it is inside the identity map and UTF-8.
#[cfg(target_os = "none")]
pub fn slice_as_str(slice: boot_proto::PhysSlice, identity_limit: u64) -> Option<&'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    /// The bytes of a BootInfo as the loader would lay them out.
    fn bytes_of(info: &BootInfo) -> Vec<u8> {
        // Every byte must be initialised to be read as u8: BootInfo has no padding when its
        // size is the plain sum of its fields' sizes (all u64/u32/u8 in natural order).
        let fields = 8
            + 4
            + 4
            + MAX_MEMORY_REGIONS * size_of::<MemoryRegion>()
            + 4
            + 4
            + boot_proto::MAX_MODULES * (boot_proto::MODULE_NAME_LEN + 16)
            + 16
            + 16
            + 8
            + 8
            + 16
            + 8
            + 8
            + 8;
        assert_eq!(
            size_of::<BootInfo>(),
            fields,
            "BootInfo changed: update this test helper"
        );
        let ptr = info as *const BootInfo as *const u8;
        // SAFETY: a live BootInfo without padding (asserted above) read as initialised bytes.
        unsafe { core::slice::from_raw_parts(ptr, size_of::<BootInfo>()) }.to_vec()
    }

    #[test]
    fn a_fresh_boot_info_passes() {
        let info = Box::new(BootInfo::new());
        assert_eq!(check_raw(&bytes_of(&info)), Ok(()));
    }

    #[test]
    fn bad_kind_anywhere_in_the_array_is_refused() {
        let info = Box::new(BootInfo::new());
        let mut bytes = bytes_of(&info);
        let index = MAX_MEMORY_REGIONS - 1;
        let off = offset_of!(BootInfo, memory_regions)
            + index * size_of::<MemoryRegion>()
            + offset_of!(MemoryRegion, kind);
        bytes[off..off + 4].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(
            check_raw(&bytes),
            Err(BootError::BadMemoryKind { index, raw: 9 })
        );
        bytes[off..off + 4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            check_raw(&bytes),
            Err(BootError::BadMemoryKind { index, raw: 0 })
        );
    }

    #[test]
    fn header_errors_are_reported() {
        let info = Box::new(BootInfo::new());
        let good = bytes_of(&info);
        let mut b = good.clone();
        b[0] ^= 1;
        assert!(matches!(
            check_raw(&b),
            Err(BootError::Header(BootInfoError::BadMagic(_)))
        ));
        let mut b = good.clone();
        b[offset_of!(BootInfo, version)] = 77;
        assert!(matches!(
            check_raw(&b),
            Err(BootError::Header(BootInfoError::VersionMismatch {
                found: 77,
                ..
            }))
        ));
        let mut b = good.clone();
        b[offset_of!(BootInfo, size)] ^= 8;
        assert!(matches!(
            check_raw(&b),
            Err(BootError::Header(BootInfoError::SizeMismatch { .. }))
        ));
        assert!(matches!(
            check_raw(&good[..good.len() - 1]),
            Err(BootError::Header(BootInfoError::SizeMismatch { .. }))
        ));
    }
}
