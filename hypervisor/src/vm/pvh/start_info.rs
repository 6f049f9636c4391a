//! Building `hvm_start_info`, its memory map and the command line for a guest.
//!
//! Layout (Xen `public/arch-x86/hvm/start_info.h`, version 1), all little-endian:
//!
//! ```text
//! hvm_start_info (56 bytes)          hvm_memmap_table_entry (24 bytes)
//!  0 u32 magic 0x336ec578             0 u64 addr
//!  4 u32 version (1)                  8 u64 size
//!  8 u32 flags                       16 u32 type (E820)
//! 12 u32 nr_modules                  20 u32 reserved
//! 16 u64 modlist_paddr
//! 24 u64 cmdline_paddr
//! 32 u64 rsdp_paddr
//! 40 u64 memmap_paddr
//! 48 u32 memmap_entries
//! 52 u32 reserved
//! ```
//!
//! Guest RAM starts at guest-physical 0. The boot parameters occupy one page at
//! [`START_INFO_GPA`]: start_info, then the memory map, then the NUL-terminated command line.
//! The memory map reports the legacy hole 0xA0000-0x100000 as reserved (where PCs have VGA
//! and BIOS ROM; our EPT backs it with RAM but guests expect nothing usable there).

use alloc::vec::Vec;

use super::PvhError;

/// `hvm_start_info.magic`.
pub const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Guest-physical address of the boot parameter page.
pub const START_INFO_GPA: u64 = 0x6000;
/// Bytes reserved for the boot parameters at [`START_INFO_GPA`].
pub(crate) const BOOT_PARAMS_LEN: u64 = 0x1000;
/// Longest command line (without the NUL).
pub const MAX_CMDLINE_LEN: usize = 2048;
/// E820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;

const START_INFO_LEN: u64 = 56;
const MEMMAP_ENTRY_LEN: u64 = 24;
const LEGACY_HOLE_START: u64 = 0xa_0000;
const LEGACY_HOLE_END: u64 = 0x10_0000;

/// The boot parameter page contents and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootParams {
    /// Guest-physical address to copy `bytes` to; also the value of `ebx` at entry.
    pub gpa: u64,
    /// start_info + memory map + command line.
    pub bytes: Vec<u8>,
}

fn push_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Build the boot parameters for `ram_size` bytes of guest RAM (at guest-physical 0) and
/// the command line `cmdline`.
pub fn build_boot_params(ram_size: u64, cmdline: &str) -> Result<BootParams, PvhError> {
    if ram_size <= LEGACY_HOLE_END {
        return Err(PvhError::RamTooSmall(ram_size));
    }
    if cmdline.len() > MAX_CMDLINE_LEN || cmdline.bytes().any(|b| b == 0) {
        return Err(PvhError::BadCmdline);
    }
    let memmap = [
        (0, LEGACY_HOLE_START, E820_RAM),
        (
            LEGACY_HOLE_START,
            LEGACY_HOLE_END - LEGACY_HOLE_START,
            E820_RESERVED,
        ),
        (LEGACY_HOLE_END, ram_size - LEGACY_HOLE_END, E820_RAM),
    ];
    let memmap_gpa = START_INFO_GPA + START_INFO_LEN;
    let cmdline_gpa = memmap_gpa + MEMMAP_ENTRY_LEN * memmap.len() as u64;

    let mut out = Vec::with_capacity(BOOT_PARAMS_LEN as usize);
    push_u32(&mut out, START_INFO_MAGIC);
    push_u32(&mut out, 1); // version
    push_u32(&mut out, 0); // flags
    push_u32(&mut out, 0); // nr_modules
    push_u64(&mut out, 0); // modlist_paddr
    push_u64(&mut out, cmdline_gpa);
    push_u64(&mut out, 0); // rsdp_paddr: no ACPI tables yet
    push_u64(&mut out, memmap_gpa);
    push_u32(&mut out, memmap.len() as u32);
    push_u32(&mut out, 0); // reserved
    for (addr, size, kind) in memmap {
        push_u64(&mut out, addr);
        push_u64(&mut out, size);
        push_u32(&mut out, kind);
        push_u32(&mut out, 0);
    }
    out.extend_from_slice(cmdline.as_bytes());
    out.push(0);
    Ok(BootParams {
        gpa: START_INFO_GPA,
        bytes: out,
    })
}
