//! `boot_params`, the "zero page" (Linux `arch/x86/include/uapi/asm/bootparam.h`,
//! `Documentation/arch/x86/zero-page.rst`): the setup header copied from the kernel file,
//! then what the boot loader fills in.

use alloc::vec;
use alloc::vec::Vec;

use boot_proto::bzimage::{BzImage, SETUP_HEADER_OFFSET};

use super::e820::E820Entry;
use super::layout::{CMDLINE_GPA, LinuxLayout};

/// Size of `boot_params`.
pub const ZERO_PAGE_LEN: usize = 0x1000;
/// `acpi_rsdp_addr` (u64).
pub const ACPI_RSDP_ADDR: usize = 0x070;
/// `ext_ramdisk_image`, `ext_ramdisk_size`, `ext_cmd_line_ptr` (u32 each: high halves).
pub const EXT_RAMDISK_IMAGE: usize = 0x0c0;
/// See [`EXT_RAMDISK_IMAGE`].
pub const EXT_RAMDISK_SIZE: usize = 0x0c4;
/// See [`EXT_RAMDISK_IMAGE`].
pub const EXT_CMD_LINE_PTR: usize = 0x0c8;
/// `e820_entries` (u8).
pub const E820_ENTRIES: usize = 0x1e8;
/// `hdr.type_of_loader` (u8).
pub const TYPE_OF_LOADER: usize = 0x210;
/// `hdr.ramdisk_image`, `hdr.ramdisk_size` (u32).
pub const RAMDISK_IMAGE: usize = 0x218;
/// See [`RAMDISK_IMAGE`].
pub const RAMDISK_SIZE: usize = 0x21c;
/// `hdr.cmd_line_ptr` (u32).
pub const CMD_LINE_PTR: usize = 0x228;
/// `e820_table` (128 entries of 20 bytes).
pub const E820_TABLE: usize = 0x2d0;
/// "Undefined" boot loader ID (boot.rst, `type_of_loader`): tern has no assigned ID.
pub const LOADER_UNDEFINED: u8 = 0xff;

fn put(page: &mut [u8], at: usize, bytes: &[u8]) {
    page[at..at + bytes.len()].copy_from_slice(bytes);
}

/// `boot_params` for `kernel` laid out as `layout`, with memory map `e820` (at most 128
/// entries, see `e820::MAX_ENTRIES`) and the RSDP at `rsdp`.
pub fn build(
    file: &[u8],
    kernel: &BzImage,
    layout: &LinuxLayout,
    e820: &[E820Entry],
    rsdp: u64,
) -> Vec<u8> {
    let mut p = vec![0u8; ZERO_PAGE_LEN];
    // The setup header as the kernel file has it (boot.rst: "copy the setup header"),
    // which keeps fields tern does not set at the kernel's own defaults.
    if let Some(header) = kernel.setup_header(file) {
        put(&mut p, SETUP_HEADER_OFFSET, header);
    }
    p[TYPE_OF_LOADER] = LOADER_UNDEFINED;
    let low = |v: u64| (v as u32).to_le_bytes();
    let high = |v: u64| ((v >> 32) as u32).to_le_bytes();
    put(&mut p, RAMDISK_IMAGE, &low(layout.initrd_gpa));
    put(&mut p, RAMDISK_SIZE, &low(layout.initrd_len));
    put(&mut p, EXT_RAMDISK_IMAGE, &high(layout.initrd_gpa));
    put(&mut p, EXT_RAMDISK_SIZE, &high(layout.initrd_len));
    put(&mut p, CMD_LINE_PTR, &low(CMDLINE_GPA));
    put(&mut p, EXT_CMD_LINE_PTR, &high(CMDLINE_GPA));
    put(&mut p, ACPI_RSDP_ADDR, &rsdp.to_le_bytes());
    let entries = e820.len().min(super::e820::MAX_ENTRIES);
    p[E820_ENTRIES] = entries as u8;
    for (i, e) in e820.iter().take(entries).enumerate() {
        let at = E820_TABLE + i * 20;
        put(&mut p, at, &e.addr.to_le_bytes());
        put(&mut p, at + 8, &e.size.to_le_bytes());
        put(&mut p, at + 16, &e.kind.to_le_bytes());
    }
    p
}
