//! The long-mode environment the 64-bit entry needs (boot.rst, "64-bit BOOT PROTOCOL"):
//! identity-mapped page tables and a GDT with `__BOOT_CS` (0x10) and `__BOOT_DS` (0x18).
//!
//! The tables map the first 4 GiB with 2 MiB pages (SDM Vol. 3A §4.5, Table 4-17: a PDE
//! with PS = 1 maps 2 MiB): kernel, boot_params, command line and initrd are all below 4
//! GiB in a tern VM, and the kernel builds its own tables at once. Six pages: PML4, PDPT,
//! four page directories.

use alloc::vec;
use alloc::vec::Vec;

/// Bytes of the page tables.
pub const PAGE_TABLES_LEN: usize = 6 * 0x1000;
/// Present, writable (SDM Vol. 3A §4.5, Tables 4-15 to 4-17).
const PRESENT_WRITABLE: u64 = 0b11;
/// Page size: this PDE maps a 2 MiB page.
const PAGE_SIZE_2M: u64 = 1 << 7;

/// PML4, PDPT and four PDs at `base` (page-aligned) identity-mapping 0..4 GiB.
pub fn identity_page_tables(base: u64) -> Vec<u8> {
    let mut t = vec![0u8; PAGE_TABLES_LEN];
    let mut put = |page: usize, index: usize, value: u64| {
        let at = page * 0x1000 + index * 8;
        t[at..at + 8].copy_from_slice(&value.to_le_bytes());
    };
    put(0, 0, (base + 0x1000) | PRESENT_WRITABLE);
    for gib in 0..4 {
        put(
            1,
            gib,
            (base + 0x2000 + gib as u64 * 0x1000) | PRESENT_WRITABLE,
        );
        for i in 0..512 {
            let addr = ((gib as u64) << 30) | ((i as u64) << 21);
            put(2 + gib, i, addr | PRESENT_WRITABLE | PAGE_SIZE_2M);
        }
    }
    t
}

/// Length of the boot GDT.
pub const GDT_LEN: usize = 32;
/// `__BOOT_CS`.
pub const BOOT_CS: u16 = 0x10;
/// `__BOOT_DS`.
pub const BOOT_DS: u16 = 0x18;
/// 64-bit code: base 0, limit 0xfffff, G, L, P, S, type 0xb (execute/read, accessed)
/// (SDM Vol. 3A §3.4.5, §5.2.1).
pub const CODE64_DESCRIPTOR: u64 = 0x00af_9b00_0000_ffff;
/// Flat data: base 0, limit 0xfffff, G, D/B, P, S, type 0x3 (read/write, accessed).
pub const DATA_DESCRIPTOR: u64 = 0x00cf_9300_0000_ffff;

/// The GDT: two null entries, then `__BOOT_CS` and `__BOOT_DS`.
pub fn boot_gdt() -> [u8; GDT_LEN] {
    let mut g = [0u8; GDT_LEN];
    g[16..24].copy_from_slice(&CODE64_DESCRIPTOR.to_le_bytes());
    g[24..32].copy_from_slice(&DATA_DESCRIPTOR.to_le_bytes());
    g
}
