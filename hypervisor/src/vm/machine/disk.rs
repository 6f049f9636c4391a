//! The VM's disk on bare metal: a virtio-blk device over a RAM disk in the fixed
//! virtio-mmio window of [`placement`], attached before the VM first boots and polled
//! after every slice so that backend completions reach the guest's used ring.
//!
//! Why attach separately from `Machine::create`: a disk is optional, and the image comes
//! from its own boot module; the VM's creation stays what it was for disk-less VMs.

use alloc::format;

use super::{Machine, MachineError};
use crate::vm::console_out::LineOutput;
use crate::vm::pvh::build_boot_params;
use crate::vm::state::VmState;
use crate::vm::virtio::guest_ram_memory::GuestRamMemory;
use crate::vm::virtio::mmio::VirtioMmio;
use crate::vm::virtio_blk::placement::{self, cmdline_with_disk};
use crate::vm::virtio_blk::{RamDisk, VirtioBlk, VirtioBlkMmio};
use crate::vmx::frames::FrameSource;

/// The disk's name in log lines and GET_ID: `NAME/vda`.
fn disk_name(vm: &str) -> alloc::string::String {
    format!("{vm}/vda")
}

impl<O: LineOutput> Machine<O> {
    /// Give the VM `disk` as its virtio-blk device, and append the window's parameter to
    /// its command line. Only before the VM first runs, and only when its RAM ends below
    /// the window.
    pub fn attach_disk(&mut self, disk: RamDisk) -> Result<(), MachineError> {
        if self.state != VmState::Created {
            return Err(MachineError::Disk(format!(
                "a disk can only be attached before the VM first runs (it is {})",
                self.state.name()
            )));
        }
        placement::check_ram_fits(self.ram.size())
            .map_err(|e| MachineError::Disk(format!("{e}")))?;
        let cmdline = cmdline_with_disk(&self.boot.cmdline);
        build_boot_params(self.ram.size(), &cmdline).map_err(MachineError::Image)?;
        let name = disk_name(&self.name);
        let device = VirtioBlk::new(disk, &name);
        self.disk = Some(VirtioMmio::new(name, device));
        self.boot.cmdline = cmdline;
        Ok(())
    }

    /// The VM's disk device, if it has one.
    pub fn disk(&self) -> Option<&VirtioBlkMmio<RamDisk>> {
        self.disk.as_ref()
    }

    /// The VM's disk device, mutably (storage migration).
    pub fn disk_mut(&mut self) -> Option<&mut VirtioBlkMmio<RamDisk>> {
        self.disk.as_mut()
    }

    /// Finish the disk's completed requests into guest RAM.
    pub(super) fn poll_disk(&mut self, frames: &impl FrameSource) {
        if let Some(disk) = self.disk.as_mut() {
            let mut mem = GuestRamMemory::new(&self.ram, frames);
            disk.poll(&mut mem);
        }
    }
}
