//! What a VM boots and how it is loaded into zeroed guest RAM: a PVH ELF (`vm::pvh`) or a
//! Linux bzImage with its initrd (`vm::linux_boot`). The images are the loader's modules,
//! never written; each (re)boot loads them again.

use alloc::string::String;

use super::MachineError;
use crate::vm::guest_acpi::VirtioMmioDevice;
use crate::vm::guest_ram::GuestRam;
use crate::vm::linux_boot::LinuxBoot;
use crate::vm::pvh::{START_INFO_GPA, build_boot_params, parse_elf};
use crate::vmx::frames::FrameSource;
use crate::vmx::setup::GuestEntry;

/// A VM's boot image(s).
#[derive(Debug, Clone, Copy)]
pub enum GuestImage {
    /// A PVH ELF.
    Pvh(&'static [u8]),
    /// A Linux bzImage and its initrd (empty when there is none).
    Linux {
        /// The bzImage.
        kernel: &'static [u8],
        /// The initrd.
        initrd: &'static [u8],
    },
}

/// The image and command line a VM boots (kept to reboot it).
pub(super) struct BootImage {
    pub(super) image: GuestImage,
    pub(super) cmdline: String,
}

impl BootImage {
    /// What an incoming VM has: nothing to boot (its state arrives by migration).
    pub(super) fn none() -> Self {
        Self {
            image: GuestImage::Pvh(&[]),
            cmdline: String::new(),
        }
    }

    /// Check that the image boots in `ram_bytes` (at creation, before RAM is allocated).
    pub(super) fn check(&self, ram_bytes: u64) -> Result<(), MachineError> {
        match self.image {
            GuestImage::Pvh(elf) => {
                parse_elf(elf, ram_bytes).map_err(MachineError::Image)?;
                build_boot_params(ram_bytes, &self.cmdline).map_err(MachineError::Image)?;
            }
            GuestImage::Linux { kernel, initrd } => {
                LinuxBoot::prepare(kernel, initrd, &self.cmdline, ram_bytes, None)
                    .map_err(MachineError::Linux)?;
            }
        }
        Ok(())
    }

    /// Load into `ram` (zeroed) and say how the vCPU enters; a Linux guest with a `disk`
    /// finds it in its DSDT and e820 map (a PVH guest reads its command line).
    pub(super) fn load(
        &self,
        ram: &GuestRam,
        frames: &impl FrameSource,
        disk: Option<VirtioMmioDevice>,
    ) -> Result<GuestEntry, MachineError> {
        let size = ram.size();
        match self.image {
            GuestImage::Pvh(elf) => {
                let image = parse_elf(elf, size).map_err(MachineError::Image)?;
                image
                    .load(
                        elf,
                        |gpa, bytes| ram.write(frames, gpa, bytes),
                        |gpa, len| ram.fill(frames, gpa, len, 0),
                    )
                    .map_err(MachineError::Image)?;
                let params = build_boot_params(size, &self.cmdline).map_err(MachineError::Image)?;
                ram.write(frames, params.gpa, &params.bytes)
                    .map_err(MachineError::Ram)?;
                Ok(GuestEntry::Pvh {
                    entry: image.entry,
                    start_info: START_INFO_GPA as u32,
                })
            }
            GuestImage::Linux { kernel, initrd } => {
                let boot = LinuxBoot::prepare(kernel, initrd, &self.cmdline, size, disk)
                    .map_err(MachineError::Linux)?;
                for write in &boot.writes {
                    ram.write(frames, write.gpa, write.bytes.as_slice())
                        .map_err(MachineError::Ram)?;
                }
                Ok(GuestEntry::Linux64(boot.entry))
            }
        }
    }
}
