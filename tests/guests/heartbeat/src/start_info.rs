//! Reading the PVH `hvm_start_info` the loader left in memory (layout: Xen
//! `xen/include/public/arch-x86/hvm/start_info.h`; version 1 adds the memory map).

/// `hvm_start_info.magic`.
const MAGIC: u32 = 0x336e_c578;
/// Longest command line we read.
const MAX_CMDLINE: usize = 2048;
/// Most memory-map entries we keep.
pub const MAX_MEMMAP: usize = 64;
/// E820 type of usable RAM.
pub const E820_RAM: u32 = 1;

/// One memory-map entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemRegion {
    /// Start address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// E820 type.
    pub kind: u32,
}

/// What the guest learned from the start info.
pub struct BootInfo {
    /// The command line (empty if absent or not UTF-8).
    pub cmdline: &'static str,
    /// Memory map entries (only the first `memmap_len` are valid).
    pub memmap: [MemRegion; MAX_MEMMAP],
    /// Number of valid entries in `memmap`.
    pub memmap_len: usize,
    /// `hvm_start_info.version`.
    pub version: u32,
}

/// Why the start info was not usable.
pub enum StartInfoError {
    /// `ebx` was 0.
    Missing,
    /// The magic did not match.
    BadMagic(u32),
}

fn read_u32(addr: u64) -> u32 {
    // SAFETY: the loader placed start_info (and what it points to) in guest RAM, which is
    // identity-mapped; unaligned reads are fine on x86.
    unsafe { core::ptr::read_unaligned(addr as *const u32) }
}

fn read_u64(addr: u64) -> u64 {
    // SAFETY: as in `read_u32`.
    unsafe { core::ptr::read_unaligned(addr as *const u64) }
}

/// Parse the start info at physical address `base`.
pub fn parse(base: u64) -> Result<BootInfo, StartInfoError> {
    if base == 0 {
        return Err(StartInfoError::Missing);
    }
    let magic = read_u32(base);
    if magic != MAGIC {
        return Err(StartInfoError::BadMagic(magic));
    }
    let version = read_u32(base + 4);
    let cmdline_paddr = read_u64(base + 24);
    let mut info = BootInfo {
        cmdline: "",
        memmap: [MemRegion::default(); MAX_MEMMAP],
        memmap_len: 0,
        version,
    };
    if cmdline_paddr != 0 {
        // SAFETY: the command line is a NUL-terminated string in identity-mapped guest RAM;
        // we read at most MAX_CMDLINE bytes of it.
        let bytes = unsafe { core::slice::from_raw_parts(cmdline_paddr as *const u8, MAX_CMDLINE) };
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(MAX_CMDLINE);
        info.cmdline = match core::str::from_utf8(&bytes[..len]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        };
    }
    if version >= 1 {
        let memmap_paddr = read_u64(base + 40);
        let entries = read_u32(base + 48) as usize;
        for i in 0..entries.min(MAX_MEMMAP) {
            let entry = memmap_paddr + 24 * i as u64;
            info.memmap[i] = MemRegion {
                addr: read_u64(entry),
                size: read_u64(entry + 8),
                kind: read_u32(entry + 16),
            };
        }
        info.memmap_len = entries.min(MAX_MEMMAP);
    }
    Ok(info)
}

impl BootInfo {
    /// The valid memory-map entries.
    pub fn regions(&self) -> &[MemRegion] {
        &self.memmap[..self.memmap_len]
    }
}
