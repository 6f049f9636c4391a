//! `info block`: one line per VM disk, from the device's own state, so that an operator sees
//! size, backend, what storage migration would send next and whether the guest broke it.

use alloc::string::String;
use core::fmt;

use super::backend::{BlockBackend, SECTOR_SIZE};
use super::blk_device::VirtioBlk;
use crate::vm::virtio::mmio::VirtioMmio;

/// What `info block` shows of one disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    /// The VM.
    pub vm: String,
    /// Bytes on the disk.
    pub size_bytes: u64,
    /// Block size.
    pub block_size: u32,
    /// The backend's kind (`ram`).
    pub backend: &'static str,
    /// Blocks written since the last harvest (what a storage-migration round would send).
    pub dirty_blocks: usize,
    /// Requests the backend has not completed.
    pub in_flight: usize,
    /// Device status as the driver set it.
    pub status: u8,
    /// Why the device needs a reset, if it does.
    pub broken: Option<String>,
}

impl fmt::Display for BlockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/vda: {} KiB, {}-byte blocks, backend {}, dirty {} blocks, in flight {}, ",
            self.vm,
            self.size_bytes / 1024,
            self.block_size,
            self.backend,
            self.dirty_blocks,
            self.in_flight
        )?;
        match &self.broken {
            Some(why) => write!(f, "NEEDS RESET: {why}"),
            None if self.status & crate::vm::virtio::device::status::DRIVER_OK != 0 => {
                write!(f, "driver ready")
            }
            None => write!(f, "no driver yet (status {:#x})", self.status),
        }
    }
}

impl<B: BlockBackend> VirtioMmio<VirtioBlk<B>> {
    /// The `info block` line of this disk, attached to VM `vm`, whose backend is `backend`.
    pub fn block_info(&mut self, vm: &str, backend: &'static str) -> BlockInfo {
        let status = self.status();
        let broken = self.broken_reason().map(String::from);
        let dev = self.device_mut();
        BlockInfo {
            vm: vm.into(),
            size_bytes: dev.backend().capacity_sectors() * SECTOR_SIZE,
            block_size: dev.backend().block_size(),
            backend,
            dirty_blocks: dev.dirty_blocks().bitmap().count(),
            in_flight: dev.in_flight().len(),
            status,
            broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::virtio::guest_memory::FakeGuestMemory;
    use crate::vm::virtio::mmio::reg;
    use crate::vm::virtio_blk::RamDisk;

    #[test]
    fn a_fresh_disk_and_one_being_set_up() {
        let disk = RamDisk::from_image(alloc::vec![0; 8192], 512, false).expect("disk");
        let mut dev = VirtioMmio::new("hb/vda".into(), VirtioBlk::new(disk, "hb/vda"));
        let info = dev.block_info("hb", "ram");
        assert_eq!(
            alloc::format!("{info}"),
            "hb/vda: 8 KiB, 512-byte blocks, backend ram, dirty 0 blocks, in flight 0, no driver \
             yet (status 0x0)"
        );
        // DRIVER_OK without FEATURES_OK is refused; queue notify on an unready queue is
        // ignored: the device is not broken by either.
        let mut mem = FakeGuestMemory::new(1 << 16);
        dev.write(&mut mem, reg::STATUS, 4, 1);
        assert!(alloc::format!("{}", dev.block_info("hb", "ram")).ends_with("(status 0x1)"));
    }
}
