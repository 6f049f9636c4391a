//! The VM's disk on bare metal: a virtio-blk device over a `VmDisk` (RAM disk, host-disk
//! region, or both while `block_migrate` moves it) in the fixed
//! virtio-mmio window of [`placement`], attached before the VM first boots and polled
//! after every slice so that backend completions reach the guest's used ring.
//!
//! Why attach separately from `Machine::create`: a disk is optional, and the image comes
//! from its own boot module; the VM's creation stays what it was for disk-less VMs.

use alloc::format;
use alloc::string::String;

use migration_proto::dirty::DirtyBitmap;
use migration_proto::message::DiskDescriptor;

use super::boot_image::GuestImage;
use super::{Machine, MachineError};
use crate::storage::VmDisk;
use crate::storage::mirror::MirrorOutcome;
use crate::vm::console_out::LineOutput;
use crate::vm::pvh::build_boot_params;
use crate::vm::state::VmState;
use crate::vm::virtio::guest_ram_memory::GuestRamMemory;
use crate::vm::virtio::mmio::VirtioMmio;
use crate::vm::virtio_blk::placement::{self, cmdline_with_disk};
use crate::vm::virtio_blk::{BlockBackend, SECTOR_SIZE, VirtioBlk, VirtioBlkMmio};
use crate::vmx::frames::FrameSource;

/// Bytes a running `block_migrate` copies or verifies per poll of the disk: one chunk, so
/// that the guest's slices stay short (the bench measures the cost).
const BLOCK_MIGRATE_STEP_BYTES: u64 = crate::storage::mirror::CHUNK_BYTES;

/// The disk's name in log lines and GET_ID: `NAME/vda`.
fn disk_name(vm: &str) -> String {
    format!("{vm}/vda")
}

impl<O: LineOutput> Machine<O> {
    /// Give the VM `disk` as its virtio-blk device, and append the window's parameter to
    /// a PVH guest's command line (a Linux guest finds it in its DSDT). Only before the VM first runs, and only when its RAM ends below
    /// the window.
    pub fn attach_disk(&mut self, disk: impl Into<VmDisk>) -> Result<(), MachineError> {
        if self.state != VmState::Created {
            return Err(MachineError::Disk(format!(
                "a disk can only be attached before the VM first runs (it is {})",
                self.state.name()
            )));
        }
        placement::check_ram_fits(self.ram.size())
            .map_err(|e| MachineError::Disk(format!("{e}")))?;
        // A PVH guest learns the window from its command line; Linux from its DSDT (the
        // parameter would register the device twice on a kernel that reads both).
        let cmdline = match self.boot.image {
            GuestImage::Pvh(_) => {
                let cmdline = cmdline_with_disk(&self.boot.cmdline);
                build_boot_params(self.ram.size(), &cmdline).map_err(MachineError::Image)?;
                cmdline
            }
            GuestImage::Linux { .. } => self.boot.cmdline.clone(),
        };
        let name = disk_name(&self.name);
        let device = VirtioBlk::new(disk.into(), &name);
        self.disk = Some(VirtioMmio::new(name, device));
        self.boot.cmdline = cmdline;
        Ok(())
    }

    /// Give an incoming (migrating, paused) VM the disk its source announced; its blocks
    /// and its device state arrive later.
    pub fn attach_incoming_disk(&mut self, disk: impl Into<VmDisk>) -> Result<(), MachineError> {
        if self.disk.is_some() {
            return Err(MachineError::Disk("the VM has a disk already".into()));
        }
        placement::check_ram_fits(self.ram.size())
            .map_err(|e| MachineError::Disk(format!("{e}")))?;
        let name = disk_name(&self.name);
        self.disk = Some(VirtioMmio::new(
            name.clone(),
            VirtioBlk::new(disk.into(), &name),
        ));
        Ok(())
    }

    /// Storage migration's view of the disk: id 0, `vda`, its size and block size.
    pub fn disk_descriptor(&self) -> Option<DiskDescriptor> {
        let backend = self.disk.as_ref()?.device().backend();
        Some(DiskDescriptor {
            disk_id: 0,
            name: "vda".into(),
            size_bytes: backend.capacity_sectors() * SECTOR_SIZE,
            block_size: backend.block_size(),
        })
    }

    fn disk_offset(&self, lba: u64) -> Result<u64, String> {
        let disk = self.disk.as_ref().ok_or_else(|| String::from("no disk"))?;
        let bs = u64::from(disk.device().backend().block_size());
        lba.checked_mul(bs)
            .ok_or_else(|| format!("block {lba} lies past the disk's end"))
    }

    /// Copies blocks of the disk from block `lba` (storage migration's source).
    pub fn read_disk(&self, lba: u64, out: &mut [u8]) -> Result<(), String> {
        let offset = self.disk_offset(lba)?;
        let disk = self.disk.as_ref().ok_or_else(|| String::from("no disk"))?;
        disk.device().backend().read_bytes(offset, out)
    }

    /// Writes received blocks (storage migration's destination, before the VM runs).
    pub fn write_disk(&mut self, lba: u64, data: &[u8]) -> Result<(), String> {
        let offset = self.disk_offset(lba)?;
        let disk = self.disk.as_mut().ok_or_else(|| String::from("no disk"))?;
        disk.device_mut().backend_mut().write_bytes(offset, data)
    }

    /// Blocks written or discarded since the previous harvest (taken and cleared).
    pub fn harvest_disk_dirty(&mut self) -> Result<DirtyBitmap, String> {
        let disk = self.disk.as_mut().ok_or_else(|| String::from("no disk"))?;
        Ok(disk.device_mut().dirty_blocks().take())
    }

    /// The VM's disk device, if it has one.
    pub fn disk(&self) -> Option<&VirtioBlkMmio<VmDisk>> {
        self.disk.as_ref()
    }

    /// The VM's disk device, mutably (storage migration).
    pub fn disk_mut(&mut self) -> Option<&mut VirtioBlkMmio<VmDisk>> {
        self.disk.as_mut()
    }

    /// Finish the disk's completed requests into guest RAM, then advance a running
    /// `block_migrate` by one step (its completions reach the guest at the next poll).
    pub(super) fn poll_disk(&mut self, frames: &impl FrameSource) {
        if let Some(disk) = self.disk.as_mut() {
            let mut mem = GuestRamMemory::new(&self.ram, frames);
            disk.poll(&mut mem);
            if let Some(outcome) = disk
                .device_mut()
                .backend_mut()
                .step(BLOCK_MIGRATE_STEP_BYTES)
            {
                log::info!("vm {}: {outcome}", self.name);
                self.block_migrate_outcome = Some(outcome);
            }
        }
    }

    /// How the last `block_migrate` of this VM ended, if one did.
    pub fn block_migrate_outcome(&self) -> Option<&MirrorOutcome> {
        self.block_migrate_outcome.as_ref()
    }

    /// Starts moving the disk to `target` (`block_migrate`).
    pub fn start_block_migrate(&mut self, target: VmDisk) -> Result<(), String> {
        let disk = self
            .disk
            .as_mut()
            .ok_or_else(|| String::from("the VM has no disk"))?;
        disk.device_mut().backend_mut().start_mirror(target)?;
        let kind = disk.device().backend().kind();
        log::info!("vm {}: block_migrate {kind}: started", self.name);
        self.block_migrate_outcome = None;
        Ok(())
    }

    /// Cancels a running `block_migrate`; the source disk stays.
    pub fn cancel_block_migrate(&mut self) -> Result<(), String> {
        let disk = self
            .disk
            .as_mut()
            .ok_or_else(|| String::from("the VM has no disk"))?;
        disk.device_mut().backend_mut().cancel_mirror()
    }
}
