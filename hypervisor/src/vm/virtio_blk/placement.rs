//! Where a VM's disk appears in guest-physical space and how the guest learns it.
//!
//! Why a fixed window: a VM has at most one disk today, and a fixed address makes the
//! guest's view identical on every host, which a migrated VM needs (the destination builds
//! the same window before the guest runs again). The window is one 4 KiB page just below
//! the I/O APIC (0xfec0_0000) and the local APIC (0xfee0_0000), in the range PCs leave to
//! devices; a guest's RAM (`[0, memory)`) must end below it, so a VM with a disk has at most
//! [`MAX_RAM_WITH_DISK`] of RAM (tern's RAM is one range from 0: there is no hole to put a
//! window in above 4 GiB, and none below it when RAM covers it).
//!
//! A PVH guest is told on its command line (a Linux guest in its DSDT, built from
//! [`DISK_ACPI_DEVICE`]), in the form Linux's virtio-mmio driver reads
//! (`virtio_mmio.device=<size>@<base>:<irq>`, Documentation/admin-guide/kernel-parameters):
//! [`DISK_CMDLINE_PARAM`]. The heartbeat guest parses the same parameter. IRQ 5 is an ISA
//! line nothing else uses here; the board drives it from the device's interrupt level
//! (`vm::board::DeviceLines`, docs/ARCHITECTURE.md, "virtio-blk").

use alloc::string::String;
use core::fmt;

use crate::vm::guest_acpi::VirtioMmioDevice;

/// Guest-physical base of the disk's virtio-mmio window.
pub const DISK_WINDOW_GPA: u64 = 0xfeb0_0000;

/// Size of the window as the guest is told (one page; the registers use 0x200 of it).
pub const DISK_WINDOW_BYTES: u64 = 0x1000;

/// The ISA interrupt line of the disk (level-triggered, VIRTIO 1.2 4.2.3.4).
pub const DISK_IRQ: u8 = 5;

/// The command-line parameter that tells the guest where its disk is.
pub const DISK_CMDLINE_PARAM: &str = "virtio_mmio.device=4K@0xfeb00000:5";

/// The disk as a Linux guest's DSDT describes it (`vm::guest_acpi::virtio_mmio_aml`).
pub const DISK_ACPI_DEVICE: VirtioMmioDevice = VirtioMmioDevice {
    base: DISK_WINDOW_GPA as u32,
    len: DISK_WINDOW_BYTES as u32,
    gsi: DISK_IRQ as u32,
};

/// Most RAM a VM with a disk may have: its RAM must end below the window.
pub const MAX_RAM_WITH_DISK: u64 = DISK_WINDOW_GPA;

/// Why a disk cannot be attached to a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementError {
    /// The VM's RAM reaches the disk's window.
    RamOverlapsWindow {
        /// The VM's RAM in bytes.
        ram_bytes: u64,
    },
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RamOverlapsWindow { ram_bytes } => write!(
                f,
                "{} MiB of RAM reach the disk's MMIO window at {DISK_WINDOW_GPA:#x}: a VM with a \
                 disk may have at most {} MiB",
                ram_bytes >> 20,
                MAX_RAM_WITH_DISK >> 20
            ),
        }
    }
}

/// Checks that a VM with `ram_bytes` of RAM leaves the window free.
pub fn check_ram_fits(ram_bytes: u64) -> Result<(), PlacementError> {
    if ram_bytes > MAX_RAM_WITH_DISK {
        return Err(PlacementError::RamOverlapsWindow { ram_bytes });
    }
    Ok(())
}

/// The window's offset for a guest-physical address, if the address is in it.
pub fn window_offset(gpa: u64) -> Option<u64> {
    let offset = gpa.checked_sub(DISK_WINDOW_GPA)?;
    (offset < DISK_WINDOW_BYTES).then_some(offset)
}

/// The operator's command line with the disk's parameter appended (separated by a space),
/// unless it is there already (a VM that boots again keeps one copy).
pub fn cmdline_with_disk(cmdline: &str) -> String {
    if cmdline.split(' ').any(|word| word == DISK_CMDLINE_PARAM) {
        return cmdline.into();
    }
    let mut out = String::from(cmdline.trim_end());
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(DISK_CMDLINE_PARAM);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_names_the_window_and_the_irq() {
        assert_eq!(
            DISK_CMDLINE_PARAM,
            alloc::format!(
                "virtio_mmio.device={}K@{DISK_WINDOW_GPA:#x}:{DISK_IRQ}",
                DISK_WINDOW_BYTES >> 10
            )
        );
    }

    #[test]
    fn the_parameter_is_appended_once() {
        assert_eq!(cmdline_with_disk(""), DISK_CMDLINE_PARAM);
        let once = cmdline_with_disk("hb.disk=1 ");
        assert_eq!(once, alloc::format!("hb.disk=1 {DISK_CMDLINE_PARAM}"));
        assert_eq!(cmdline_with_disk(&once), once);
    }

    #[test]
    fn ram_must_end_below_the_window() {
        assert_eq!(check_ram_fits(32 << 20), Ok(()));
        assert_eq!(check_ram_fits(DISK_WINDOW_GPA), Ok(()));
        let err = check_ram_fits(4 << 30).unwrap_err();
        assert_eq!(
            err,
            PlacementError::RamOverlapsWindow { ram_bytes: 4 << 30 }
        );
        assert!(alloc::format!("{err}").contains("at most 4075 MiB"));
    }

    #[test]
    fn offsets_only_inside_the_window() {
        assert_eq!(window_offset(DISK_WINDOW_GPA), Some(0));
        assert_eq!(window_offset(DISK_WINDOW_GPA + 0x70), Some(0x70));
        assert_eq!(window_offset(DISK_WINDOW_GPA + 0xfff), Some(0xfff));
        assert_eq!(window_offset(DISK_WINDOW_GPA + 0x1000), None);
        assert_eq!(window_offset(DISK_WINDOW_GPA - 1), None);
        assert_eq!(window_offset(0), None);
    }
}
