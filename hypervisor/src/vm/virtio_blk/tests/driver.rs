//! A fake guest driver: what Linux's virtio_mmio + virtio_blk do, reduced to the steps the
//! spec prescribes (VIRTIO 1.2 3.1.1, 4.2.3), with queues in a fake RAM. Tests use it to
//! drive the real transport registers and to craft malformed chains by hand.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::vm::virtio::descriptor_chain::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use crate::vm::virtio::device::{VirtioDevice, feature, status};
use crate::vm::virtio::guest_memory::{FakeGuestMemory, GuestMemory};
use crate::vm::virtio::mmio::reg;
use crate::vm::virtio_blk::backend::{BlockBackend, BlockCompletion, BlockOp, SECTOR_SIZE};
use crate::vm::virtio_blk::request::request_type;
use crate::vm::virtio_blk::{RamDisk, VirtioBlk, VirtioBlkMmio};

/// Guest RAM size.
pub const RAM: usize = 1 << 20;
/// Descriptor table address.
pub const DESC: u64 = 0x1000;
/// Available ring address.
pub const AVAIL: u64 = 0x3000;
/// Used ring address.
pub const USED: u64 = 0x4000;
/// Start of the area where request headers, data and status bytes go.
pub const BUFFERS: u64 = 0x10000;

/// A buffer of a chain to build: address, length, device-writable.
pub type Buf = (u64, u32, bool);

/// A RAM disk whose operations complete only when the test says so: a slow real disk.
pub struct HeldDisk {
    /// The storage.
    pub inner: RamDisk,
    /// Submitted, not yet executed.
    pub held: Vec<(u64, BlockOp)>,
}

impl HeldDisk {
    /// Wraps `inner`.
    pub fn new(inner: RamDisk) -> Self {
        Self {
            inner,
            held: Vec::new(),
        }
    }

    /// Execute everything submitted so far.
    pub fn release(&mut self) {
        for (tag, op) in self.held.drain(..) {
            self.inner.submit(tag, op);
        }
    }
}

impl BlockBackend for HeldDisk {
    fn capacity_sectors(&self) -> u64 {
        self.inner.capacity_sectors()
    }
    fn block_size(&self) -> u32 {
        self.inner.block_size()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
    fn submit(&mut self, tag: u64, op: BlockOp) {
        self.held.push((tag, op));
    }
    fn poll_completion(&mut self) -> Option<BlockCompletion> {
        self.inner.poll_completion()
    }
}

/// A disk image of `sectors` sectors where byte `i` of sector `s` is `s + i` (mod 256).
pub fn patterned_image(sectors: u64) -> Vec<u8> {
    (0..sectors * SECTOR_SIZE)
        .map(|i| ((i / SECTOR_SIZE) + (i % SECTOR_SIZE)) as u8)
        .collect()
}

/// A RAM disk of 64 sectors with [`patterned_image`].
pub fn ram_disk() -> RamDisk {
    RamDisk::from_image(patterned_image(64), 512, false).unwrap()
}

/// The fake driver, its RAM and the device under test.
pub struct Driver<B: BlockBackend> {
    /// Guest RAM.
    pub mem: FakeGuestMemory,
    /// The device.
    pub dev: VirtioBlkMmio<B>,
    /// Queue size in use.
    pub size: u16,
    /// Driver's available index.
    pub avail_idx: u16,
    /// Used entries consumed by the driver.
    pub used_seen: u16,
    next_desc: u16,
    next_buffer: u64,
}

impl<B: BlockBackend> Driver<B> {
    /// A device over `backend`, not yet initialised.
    pub fn new(backend: B) -> Self {
        Self {
            mem: FakeGuestMemory::new(RAM),
            dev: VirtioBlkMmio::new(
                String::from("test/vda"),
                VirtioBlk::new(backend, "tern-disk-0"),
            ),
            size: 0,
            avail_idx: 0,
            used_seen: 0,
            next_desc: 0,
            next_buffer: BUFFERS,
        }
    }

    /// Register read.
    pub fn read(&self, offset: u64) -> u32 {
        self.dev.read(offset, 4)
    }

    /// Register write.
    pub fn write(&mut self, offset: u64, value: u32) {
        self.dev.write(&mut self.mem, offset, 4, value);
    }

    /// The whole initialisation sequence (3.1.1) with `features` and a queue of `size`.
    pub fn init(&mut self, features: u64, size: u16) {
        self.write(reg::STATUS, 0);
        self.write(reg::STATUS, u32::from(status::ACKNOWLEDGE));
        self.write(reg::STATUS, u32::from(status::ACKNOWLEDGE | status::DRIVER));
        self.write(reg::DRIVER_FEATURES_SEL, 0);
        self.write(reg::DRIVER_FEATURES, features as u32);
        self.write(reg::DRIVER_FEATURES_SEL, 1);
        self.write(reg::DRIVER_FEATURES, (features >> 32) as u32);
        let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        self.write(reg::STATUS, u32::from(s));
        assert_eq!(self.read(reg::STATUS) as u8, s, "features refused");
        self.setup_queue(size, DESC, AVAIL, USED);
        self.write(reg::STATUS, u32::from(s | status::DRIVER_OK));
    }

    /// Configure queue 0 and set it ready.
    pub fn setup_queue(&mut self, size: u16, desc: u64, avail: u64, used: u64) {
        self.write(reg::QUEUE_SEL, 0);
        self.write(reg::QUEUE_NUM, u32::from(size));
        self.write(reg::QUEUE_DESC_LOW, desc as u32);
        self.write(reg::QUEUE_DESC_HIGH, (desc >> 32) as u32);
        self.write(reg::QUEUE_DRIVER_LOW, avail as u32);
        self.write(reg::QUEUE_DRIVER_HIGH, (avail >> 32) as u32);
        self.write(reg::QUEUE_DEVICE_LOW, used as u32);
        self.write(reg::QUEUE_DEVICE_HIGH, (used >> 32) as u32);
        self.write(reg::QUEUE_READY, 1);
        self.size = size;
    }

    /// After a reset: fresh, zeroed rings and driver indices, as a driver allocates anew.
    pub fn forget_rings(&mut self) {
        self.mem.write(AVAIL, &[0; 0x1000]).unwrap();
        self.mem.write(USED, &[0; 0x1000]).unwrap();
        self.avail_idx = 0;
        self.used_seen = 0;
        self.next_desc = 0;
    }

    /// Initialise with every offered feature and a queue of 16.
    pub fn init_default(&mut self) {
        let f = self.dev.device().device_features();
        self.init(f, 16);
    }

    /// Write a raw descriptor at `index` of the table at `table`.
    pub fn put_desc(&mut self, table: u64, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        self.mem.write(table + 16 * u64::from(index), &d).unwrap();
    }

    /// Put `bufs` into consecutive descriptors of the queue's table as one chain; returns
    /// its head.
    pub fn chain(&mut self, bufs: &[Buf]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let index = (head + i as u16) % self.size;
            let last = i + 1 == bufs.len();
            let mut flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 };
            if !last {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            self.put_desc(DESC, index, addr, len, flags, (index + 1) % self.size);
        }
        self.next_desc = (head + bufs.len() as u16) % self.size;
        head
    }

    /// Make `head` available (without notifying).
    pub fn make_available(&mut self, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        self.mem
            .write(AVAIL + 4 + 2 * slot, &head.to_le_bytes())
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .write(AVAIL + 2, &self.avail_idx.to_le_bytes())
            .unwrap();
    }

    /// QueueNotify for queue 0.
    pub fn notify(&mut self) {
        self.write(reg::QUEUE_NOTIFY, 0);
    }

    /// The next used element `(id, len)`, if the device returned one.
    pub fn pop_used(&mut self) -> Option<(u32, u32)> {
        let used_idx = self.mem.read_u16(USED + 2).unwrap();
        if used_idx == self.used_seen {
            return None;
        }
        let slot = u64::from(self.used_seen % self.size);
        let id = self.mem.read_u32(USED + 4 + 8 * slot).unwrap();
        let len = self.mem.read_u32(USED + 8 + 8 * slot).unwrap();
        self.used_seen = self.used_seen.wrapping_add(1);
        Some((id, len))
    }

    /// Reserve `len` bytes of buffer space (8-byte aligned).
    pub fn alloc(&mut self, len: usize) -> u64 {
        let at = self.next_buffer;
        self.next_buffer += (len as u64).div_ceil(8) * 8;
        assert!(self.next_buffer <= RAM as u64, "test buffer area exhausted");
        at
    }

    /// Write a request header; returns its address.
    pub fn header(&mut self, ty: u32, sector: u64) -> u64 {
        let at = self.alloc(16);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&ty.to_le_bytes());
        h[8..16].copy_from_slice(&sector.to_le_bytes());
        self.mem.write(at, &h).unwrap();
        at
    }

    /// Submit a request of `ty` with `data_out` (readable) or `data_in_len` (writable)
    /// bytes, each split into `pieces` descriptors; returns (head, data-in address, status
    /// address).
    pub fn submit(
        &mut self,
        ty: u32,
        sector: u64,
        data_out: &[u8],
        data_in_len: usize,
        pieces: usize,
    ) -> (u16, u64, u64) {
        let h = self.header(ty, sector);
        let mut bufs: Vec<Buf> = vec![(h, 16, false)];
        if !data_out.is_empty() {
            let at = self.alloc(data_out.len());
            self.mem.write(at, data_out).unwrap();
            bufs.extend(split(at, data_out.len(), pieces, false));
        }
        let in_at = self.alloc(data_in_len.max(1));
        if data_in_len > 0 {
            self.mem.write(in_at, &vec![0xee; data_in_len]).unwrap();
            bufs.extend(split(in_at, data_in_len, pieces, true));
        }
        let st = self.alloc(1);
        self.mem.write(st, &[0xff]).unwrap();
        bufs.push((st, 1, true));
        let head = self.chain(&bufs);
        self.make_available(head);
        (head, in_at, st)
    }

    /// Submit, notify, and expect exactly this request back: returns (status, data in,
    /// used length).
    pub fn run(
        &mut self,
        ty: u32,
        sector: u64,
        data_out: &[u8],
        data_in_len: usize,
        pieces: usize,
    ) -> (u8, Vec<u8>, u32) {
        let (head, in_at, st) = self.submit(ty, sector, data_out, data_in_len, pieces);
        self.notify();
        let (id, len) = self.pop_used().expect("request not completed");
        assert_eq!(id, u32::from(head));
        let mut data = vec![0; data_in_len];
        self.mem.read(in_at, &mut data).unwrap();
        let mut s = [0u8];
        self.mem.read(st, &mut s).unwrap();
        (s[0], data, len)
    }

    /// Read `len` bytes at `sector`.
    pub fn read_sectors(&mut self, sector: u64, len: usize) -> (u8, Vec<u8>) {
        let (s, d, _) = self.run(request_type::IN, sector, &[], len, 1);
        (s, d)
    }

    /// Write `data` at `sector`.
    pub fn write_sectors(&mut self, sector: u64, data: &[u8]) -> u8 {
        self.run(request_type::OUT, sector, data, 0, 1).0
    }

    /// Whether DEVICE_NEEDS_RESET is set.
    pub fn broken(&self) -> bool {
        self.read(reg::STATUS) as u8 & status::DEVICE_NEEDS_RESET != 0
    }
}

/// `len` bytes at `at` as `pieces` descriptors (the last takes the remainder).
pub fn split(at: u64, len: usize, pieces: usize, writable: bool) -> Vec<Buf> {
    let pieces = pieces.clamp(1, len);
    let step = len / pieces;
    (0..pieces)
        .map(|i| {
            let start = i * step;
            let end = if i + 1 == pieces { len } else { start + step };
            (at + start as u64, (end - start) as u32, writable)
        })
        .collect()
}

/// Every feature the default device offers.
pub fn all_features() -> u64 {
    crate::vm::virtio_blk::config::offered_features(false)
}

/// VERSION_1 only.
pub const MINIMAL_FEATURES: u64 = feature::VERSION_1;
