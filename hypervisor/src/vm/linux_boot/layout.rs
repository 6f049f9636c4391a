//! Where a Linux VM's boot data, kernel and initrd go in guest-physical memory.
//!
//! ```text
//! 0x0000_1000  identity page tables (PML4, PDPT, 4 PDs: 4 GiB in 2 MiB pages)
//! 0x0000_7000  boot_params (the zero page)
//! 0x0000_8000  GDT (null, null, __BOOT_CS 0x10, __BOOT_DS 0x18)
//! 0x0002_0000  command line (NUL-terminated)
//! 0x000e_0000  ACPI tables (in the reserved 0xA0000-0xFFFFF hole, see guest_acpi)
//! pref_address the protected-mode kernel; it needs init_size bytes from there
//! high         the initrd: as high as RAM and initrd_addr_max allow, 4 KiB aligned
//! ```
//!
//! Everything below 1 MiB is fixed; the kernel goes to its preferred address (16 MiB for
//! Debian's), which boot.rst recommends even for relocatable kernels, and which leaves the
//! kernel's decompression room (`init_size`) free of anything tern wrote. The initrd goes
//! last, at the top, as the kernel expects (it only needs it below `initrd_addr_max`).

use boot_proto::bzimage::BzImage;

use super::LinuxBootError;
use crate::vm::ioapic::DEFAULT_IOAPIC_BASE;

/// The identity page tables (six pages).
pub const PAGE_TABLES_GPA: u64 = 0x1000;
/// `boot_params`.
pub const ZERO_PAGE_GPA: u64 = 0x7000;
/// The boot GDT.
pub const GDT_GPA: u64 = 0x8000;
/// The command line.
pub const CMDLINE_GPA: u64 = 0x2_0000;
/// Room for the command line, NUL included.
pub const CMDLINE_MAX: usize = 0x1000;
/// Start of RAM above the legacy hole: kernels load at or above it.
pub const HIGH_MEMORY: u64 = 0x10_0000;
/// Initrd alignment (a page: the kernel frees it page by page).
const INITRD_ALIGN: u64 = 0x1000;

/// The placement of one Linux boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxLayout {
    /// Load address of the protected-mode kernel.
    pub kernel_gpa: u64,
    /// End of the kernel's working area (`kernel_gpa + init_size`).
    pub kernel_end: u64,
    /// Initrd address (0 and `initrd_len` 0 when there is none).
    pub initrd_gpa: u64,
    /// Initrd length.
    pub initrd_len: u64,
}

impl LinuxLayout {
    /// Place `kernel` and an initrd of `initrd_len` bytes in `ram` bytes of RAM.
    pub fn plan(kernel: &BzImage, initrd_len: u64, ram: u64) -> Result<Self, LinuxBootError> {
        if ram > DEFAULT_IOAPIC_BASE {
            return Err(LinuxBootError::RamOverlapsApic { ram });
        }
        let kernel_gpa = kernel.pref_address;
        let misaligned = kernel.relocatable && !kernel_gpa.is_multiple_of(kernel.kernel_alignment);
        if kernel_gpa < HIGH_MEMORY || misaligned {
            return Err(LinuxBootError::BadLoadAddress(kernel_gpa));
        }
        let kernel_end = kernel_gpa
            .checked_add(kernel.init_size)
            .ok_or(LinuxBootError::BadLoadAddress(kernel_gpa))?;
        if kernel_end > ram {
            return Err(LinuxBootError::DoesNotFit {
                what: "the kernel (its init_size from its load address)",
                need: kernel.memory_needed(0),
                have: ram,
            });
        }
        if initrd_len == 0 {
            return Ok(LinuxLayout {
                kernel_gpa,
                kernel_end,
                initrd_gpa: 0,
                initrd_len: 0,
            });
        }
        // The initrd's last byte must be <= initrd_addr_max and inside RAM.
        let top = ram.min(kernel.initrd_addr_max.saturating_add(1));
        let initrd_gpa = top
            .checked_sub(initrd_len)
            .map(|start| start / INITRD_ALIGN * INITRD_ALIGN)
            .filter(|&start| start >= kernel_end)
            .ok_or(LinuxBootError::DoesNotFit {
                what: "the initrd above the kernel",
                need: kernel.memory_needed(initrd_len),
                have: ram,
            })?;
        Ok(LinuxLayout {
            kernel_gpa,
            kernel_end,
            initrd_gpa,
            initrd_len,
        })
    }
}
