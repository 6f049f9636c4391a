//! Booting an unmodified Linux bzImage by the x86 boot protocol's 64-bit entry (Linux
//! `Documentation/arch/x86/boot.rst`, "64-bit BOOT PROTOCOL"), alongside PVH.
//!
//! Why the 64-bit entry: tern enters the guest in long mode directly (paging on, flat
//! segments from a GDT in guest memory, identity-mapped), so no real-mode setup code and no
//! firmware run in the guest; the kernel reads everything else from `boot_params` (the
//! "zero page"): the e820 memory map, the command line, the initrd and the ACPI RSDP.
//!
//! The pieces, all portable and host-tested:
//! - [`layout`]: where everything goes in guest-physical memory, and the checks that it fits;
//! - [`e820`]: the memory map from the VM's RAM size and its reserved windows;
//! - [`zero_page`]: the `boot_params` page;
//! - [`long_mode`]: identity page tables and the GDT the entry needs;
//! - [`LinuxBoot::prepare`]: all of it as a list of writes plus the entry register state.
//!
//! The kernel file and the initrd are untrusted input (from the ESP, later from a peer):
//! the header is checked by [`boot_proto::bzimage`], every placement by [`layout`], and
//! errors name what does not fit so that an operator can act (more `memory`, a smaller
//! initrd, another kernel).

pub mod e820;
pub mod layout;
pub mod long_mode;
#[cfg(test)]
mod tests;
pub mod zero_page;

use alloc::vec::Vec;
use core::fmt;

use boot_proto::bzimage::{BzImage, BzImageError, ENTRY_64_OFFSET};

use crate::vm::guest_acpi::{self, AcpiBuildError, AcpiPlatform, VirtioMmioDevice};
use crate::vm::interrupts::routing::GsiRouting;
use crate::vm::ioapic::DEFAULT_IOAPIC_BASE;
use crate::vm::lapic::DEFAULT_APIC_BASE_ADDRESS;
pub use layout::LinuxLayout;

/// Why a Linux VM cannot be booted. The `Display` text is the operator's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinuxBootError {
    /// The kernel file is not a bzImage tern can boot.
    Kernel(BzImageError),
    /// Guest RAM is too small for kernel, initrd and boot data.
    DoesNotFit {
        /// What did not fit.
        what: &'static str,
        /// Bytes of RAM that would be needed at least.
        need: u64,
        /// Bytes of RAM the VM has.
        have: u64,
    },
    /// Guest RAM reaches into the I/O APIC / local APIC window below 4 GiB.
    RamOverlapsApic {
        /// RAM size.
        ram: u64,
    },
    /// The kernel cannot run at its preferred address (not relocatable and misplaced).
    BadLoadAddress(u64),
    /// Command line too long for the kernel, or containing NUL.
    BadCmdline {
        /// The kernel's limit.
        max: u32,
    },
    /// A reserved window given for the e820 map overlaps RAM or another window.
    BadReservedWindow {
        /// Its start.
        start: u64,
    },
    /// The ACPI tables could not be built.
    Acpi(AcpiBuildError),
}

impl fmt::Display for LinuxBootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kernel(e) => e.fmt(f),
            Self::DoesNotFit { what, need, have } => write!(
                f,
                "{what} does not fit: the VM needs at least {} MiB of memory, it has {} MiB",
                need.div_ceil(1 << 20),
                have >> 20
            ),
            Self::RamOverlapsApic { ram } => write!(
                f,
                "{} MiB of memory reaches the APIC window at 0xfec00000: at most 4076 MiB",
                ram >> 20
            ),
            Self::BadLoadAddress(a) => write!(
                f,
                "the kernel is not relocatable and its address {a:#x} is below 1 MiB or misaligned"
            ),
            Self::BadCmdline { max } => write!(
                f,
                "the command line is longer than the kernel's {max} bytes or contains NUL"
            ),
            Self::BadReservedWindow { start } => {
                write!(
                    f,
                    "reserved window at {start:#x} overlaps RAM or another window"
                )
            }
            Self::Acpi(e) => e.fmt(f),
        }
    }
}

/// One block of bytes to copy into guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestWrite<'a> {
    /// Guest-physical address.
    pub gpa: u64,
    /// The bytes.
    pub bytes: GuestBytes<'a>,
}

/// Bytes borrowed from the image files or built here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestBytes<'a> {
    /// Part of the kernel or initrd file.
    File(&'a [u8]),
    /// Boot data built for this VM.
    Built(Vec<u8>),
}

impl GuestBytes<'_> {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            GuestBytes::File(b) => b,
            GuestBytes::Built(b) => b,
        }
    }
}

/// The register state of the 64-bit entry (boot.rst: long mode, paging on with the
/// loaded ranges identity-mapped, a GDT with `__BOOT_CS` 0x10 and `__BOOT_DS` 0x18,
/// interrupts off, RSI = `boot_params`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry64 {
    /// RIP: the load address + 0x200.
    pub rip: u64,
    /// RSI: the zero page.
    pub rsi: u64,
    /// CR3: the identity map's PML4.
    pub cr3: u64,
    /// GDTR base.
    pub gdt_base: u64,
    /// GDTR limit.
    pub gdt_limit: u16,
}

/// Everything to write into a zeroed guest RAM, and the entry state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxBoot<'a> {
    /// Where things went.
    pub layout: LinuxLayout,
    /// The writes, in no particular order; none overlap.
    pub writes: Vec<GuestWrite<'a>>,
    /// The vCPU's entry state.
    pub entry: Entry64,
}

impl<'a> LinuxBoot<'a> {
    /// Plan the boot of `kernel_file` with `initrd` and `cmdline` into `ram_bytes` of RAM
    /// (guest-physical 0..ram_bytes); a `disk` (virtio-mmio) has its window reserved in the
    /// e820 map and is described in the DSDT.
    pub fn prepare(
        kernel_file: &'a [u8],
        initrd: &'a [u8],
        cmdline: &str,
        ram_bytes: u64,
        disk: Option<VirtioMmioDevice>,
    ) -> Result<LinuxBoot<'a>, LinuxBootError> {
        let kernel = BzImage::parse(kernel_file).map_err(LinuxBootError::Kernel)?;
        if cmdline.len() > kernel.cmdline_size as usize
            || cmdline.len() >= layout::CMDLINE_MAX
            || cmdline.bytes().any(|b| b == 0)
        {
            return Err(LinuxBootError::BadCmdline {
                max: kernel.cmdline_size.min(layout::CMDLINE_MAX as u32 - 1),
            });
        }
        let layout = LinuxLayout::plan(&kernel, initrd.len() as u64, ram_bytes)?;
        let reserved: Vec<(u64, u64)> = disk
            .iter()
            .map(|d| (u64::from(d.base), u64::from(d.len)))
            .collect();
        let map = e820::memory_map(ram_bytes, &reserved)?;
        let acpi = guest_acpi::build(
            guest_acpi::ACPI_TABLES_GPA,
            &AcpiPlatform {
                lapic_address: DEFAULT_APIC_BASE_ADDRESS as u32,
                ioapic_address: DEFAULT_IOAPIC_BASE as u32,
                overrides: GsiRouting::default().overrides(),
                virtio_mmio: disk,
            },
        )
        .map_err(LinuxBootError::Acpi)?;
        let zero_page = zero_page::build(kernel_file, &kernel, &layout, &map, acpi.rsdp_gpa);
        let mut cmdline_bytes = Vec::with_capacity(cmdline.len() + 1);
        cmdline_bytes.extend_from_slice(cmdline.as_bytes());
        cmdline_bytes.push(0);
        let kernel_bytes = kernel.kernel(kernel_file).unwrap_or(&[]);
        let writes = alloc::vec![
            GuestWrite {
                gpa: layout.kernel_gpa,
                bytes: GuestBytes::File(kernel_bytes),
            },
            GuestWrite {
                gpa: layout.initrd_gpa,
                bytes: GuestBytes::File(initrd),
            },
            GuestWrite {
                gpa: layout::ZERO_PAGE_GPA,
                bytes: GuestBytes::Built(zero_page),
            },
            GuestWrite {
                gpa: layout::CMDLINE_GPA,
                bytes: GuestBytes::Built(cmdline_bytes),
            },
            GuestWrite {
                gpa: acpi.gpa,
                bytes: GuestBytes::Built(acpi.bytes),
            },
            GuestWrite {
                gpa: layout::PAGE_TABLES_GPA,
                bytes: GuestBytes::Built(long_mode::identity_page_tables(layout::PAGE_TABLES_GPA)),
            },
            GuestWrite {
                gpa: layout::GDT_GPA,
                bytes: GuestBytes::Built(long_mode::boot_gdt().to_vec()),
            },
        ];
        Ok(LinuxBoot {
            entry: Entry64 {
                rip: layout.kernel_gpa + ENTRY_64_OFFSET,
                rsi: layout::ZERO_PAGE_GPA,
                cr3: layout::PAGE_TABLES_GPA,
                gdt_base: layout::GDT_GPA,
                gdt_limit: (long_mode::GDT_LEN - 1) as u16,
            },
            layout,
            writes,
        })
    }
}
