//! A virtio-mmio transport as an [`MmioHandler`] on the VM's [`crate::vm::mmio::MmioBus`].
//!
//! Why a borrowed pair: a QueueNotify write makes the device walk descriptor chains in
//! guest RAM, so the handler needs the transport and the guest's memory at once; the VM
//! lends both for one access (see the bus's module doc). The transport's registers are
//! 32 bits wide; an 8-byte access is split into two 4-byte ones, low half first, as a
//! driver that used two 32-bit accesses would have done (4.2.2.2 requires 32-bit access
//! to registers below 0x100, so a conforming driver never does it).

use super::device::VirtioDevice;
use super::guest_memory::GuestMemory;
use super::mmio::VirtioMmio;
use crate::vm::mmio::MmioHandler;

/// One virtio-mmio device and the guest memory its queues live in.
pub struct VirtioMmioWindow<'a, D: VirtioDevice, M: GuestMemory> {
    /// The transport.
    pub transport: &'a mut VirtioMmio<D>,
    /// Guest RAM.
    pub mem: M,
}

impl<D: VirtioDevice, M: GuestMemory> MmioHandler for VirtioMmioWindow<'_, D, M> {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        if size == 8 {
            let low = self.transport.read(offset, 4);
            let high = self.transport.read(offset.saturating_add(4), 4);
            return u64::from(low) | (u64::from(high) << 32);
        }
        u64::from(self.transport.read(offset, size))
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        if size == 8 {
            self.transport.write(&mut self.mem, offset, 4, value as u32);
            self.transport.write(
                &mut self.mem,
                offset.saturating_add(4),
                4,
                (value >> 32) as u32,
            );
            return;
        }
        self.transport
            .write(&mut self.mem, offset, size, value as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::mmio::{MmioBus, MmioRegion};
    use crate::vm::virtio::guest_memory::FakeGuestMemory;
    use crate::vm::virtio::mmio::{MAGIC, reg};
    use crate::vm::virtio_blk::{RamDisk, VirtioBlk, VirtioBlkMmio};

    fn disk() -> VirtioBlkMmio<RamDisk> {
        let ram = RamDisk::from_image(alloc::vec![0; 4096], 512, false).expect("disk");
        VirtioMmio::new("t/vda".into(), VirtioBlk::new(ram, "t/vda"))
    }

    /// Reads STATUS and ends the bus's borrow of the window.
    fn window_status(mut bus: MmioBus<'_>) -> u64 {
        bus.read(0xfeb0_0000 + reg::STATUS, 4).unwrap_or(0)
    }

    #[test]
    fn the_bus_reaches_the_transport_registers() {
        let mut transport = disk();
        let mut window = VirtioMmioWindow {
            transport: &mut transport,
            mem: FakeGuestMemory::new(1 << 16),
        };
        let mut bus = MmioBus::new();
        let base = 0xfeb0_0000;
        bus.add(MmioRegion { base, len: 0x1000 }, &mut window)
            .expect("add");
        assert_eq!(bus.read(base + reg::MAGIC_VALUE, 4), Some(u64::from(MAGIC)));
        assert_eq!(bus.read(base + reg::DEVICE_ID, 4), Some(2));
        // Capacity (8 sectors) through config space, as one 8-byte read.
        assert_eq!(bus.read(base + reg::CONFIG, 8), Some(8));
        assert!(bus.write(base + reg::STATUS, 4, 1));
        assert_eq!(bus.read(base + reg::STATUS, 4), Some(1));
        assert_eq!(window_status(bus), 1);
        assert_eq!(transport.status(), 1);
    }
}
