//! A polled virtio-blk driver over virtio-mmio (VIRTIO 1.2 4.2, 5.2), just enough for the
//! disk mode: one queue of [`QUEUE_SIZE`] descriptors, one request at a time (header,
//! one sector of data, status), completion found by polling the used ring.
//!
//! Why polled and one at a time: the guest has no interrupt handling at all, and one
//! outstanding request makes every write's order on the disk the order the guest issued,
//! which is what its verification assumes.

use heartbeat::disk_block::BLOCK_BYTES;
use heartbeat::virtio_mmio_param::MmioDevice;

const MAGIC: u32 = 0x7472_6976;
const DEVICE_ID_BLOCK: u32 = 2;

mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG: u64 = 0x100;
}

mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const NEEDS_RESET: u32 = 64;
}

/// VIRTIO_F_VERSION_1 (bit 32): the only feature the driver asks for.
const FEATURE_VERSION_1_HIGH: u32 = 1;

const QUEUE_SIZE: u16 = 8;
const DESC_NEXT: u16 = 1;
const DESC_WRITE: u16 = 2;
const REQ_IN: u32 = 0;
const REQ_OUT: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy)]
struct Descriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

#[repr(C)]
struct AvailRing {
    flags: u16,
    idx: u16,
    ring: [u16; QUEUE_SIZE as usize],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct UsedElem {
    id: u32,
    len: u32,
}

#[repr(C)]
struct UsedRing {
    flags: u16,
    idx: u16,
    ring: [UsedElem; QUEUE_SIZE as usize],
}

#[repr(C)]
struct RequestHeader {
    kind: u32,
    reserved: u32,
    sector: u64,
}

/// The queue and the one request's buffers, in guest RAM (the image's .bss, identity
/// mapped), aligned as 2.7 requires (descriptors 16, avail 2, used 4).
#[repr(C, align(4096))]
struct QueueMemory {
    desc: [Descriptor; QUEUE_SIZE as usize],
    avail: AvailRing,
    _pad: [u8; 64],
    used: UsedRing,
    header: RequestHeader,
    data: [u8; BLOCK_BYTES],
    status: u8,
}

static mut QUEUE: QueueMemory = QueueMemory {
    desc: [Descriptor {
        addr: 0,
        len: 0,
        flags: 0,
        next: 0,
    }; QUEUE_SIZE as usize],
    avail: AvailRing {
        flags: 0,
        idx: 0,
        ring: [0; QUEUE_SIZE as usize],
    },
    _pad: [0; 64],
    used: UsedRing {
        flags: 0,
        idx: 0,
        ring: [UsedElem { id: 0, len: 0 }; QUEUE_SIZE as usize],
    },
    header: RequestHeader {
        kind: 0,
        reserved: 0,
        sector: 0,
    },
    data: [0; BLOCK_BYTES],
    status: 0,
};

/// Why the disk cannot be used.
#[derive(Debug, Clone, Copy)]
pub enum DriverError {
    /// Not a virtio-mmio v2 block device at the address.
    NotABlockDevice { magic: u32, version: u32, id: u32 },
    /// The device refused our features (FEATURES_OK did not stick).
    FeaturesRefused,
    /// Queue 0 is smaller than one request needs.
    QueueTooSmall(u32),
    /// The device says it needs a reset (it found our request malformed).
    NeedsReset,
    /// The request completed with a status other than OK (0).
    RequestFailed(u8),
    /// No completion after many polls.
    Timeout,
}

impl core::fmt::Display for DriverError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotABlockDevice { magic, version, id } => write!(
                f,
                "not a virtio-mmio v2 block device (magic={magic:#x} version={version} id={id})"
            ),
            Self::FeaturesRefused => write!(f, "the device refused VIRTIO_F_VERSION_1"),
            Self::QueueTooSmall(max) => write!(f, "queue 0 holds {max} descriptors, 3 needed"),
            Self::NeedsReset => write!(f, "the device needs a reset (DEVICE_NEEDS_RESET)"),
            Self::RequestFailed(status) => write!(f, "the request completed with status {status}"),
            Self::Timeout => write!(f, "no completion in the used ring"),
        }
    }
}

/// The initialised device.
pub struct VirtioBlk {
    base: u64,
    /// Capacity in 512-byte sectors.
    pub capacity: u64,
    last_used: u16,
}

/// A 32-bit register read as one plain `mov` (what Linux's `readl` is): the hypervisor
/// emulates MMIO moves only, and a volatile read may otherwise become e.g. a `test` with a
/// memory operand.
fn read32(base: u64, offset: u64) -> u32 {
    let value: u32;
    // SAFETY: `base` is the device window the hypervisor named on the command line; the
    // first 4 GiB are identity-mapped, and an MMIO read has no effect on guest memory.
    unsafe {
        core::arch::asm!("mov {v:e}, dword ptr [{a}]", a = in(reg) base + offset,
            v = out(reg) value, options(nostack, readonly))
    };
    value
}

/// A 32-bit register write as one plain `mov` (Linux's `writel`).
fn write32(base: u64, offset: u64, value: u32) {
    // SAFETY: as in `read32`; register writes only affect the device (and, for
    // QueueNotify, the guest buffers the driver handed it).
    unsafe {
        core::arch::asm!("mov dword ptr [{a}], {v:e}", a = in(reg) base + offset,
            v = in(reg) value, options(nostack))
    };
}

fn queue() -> *mut QueueMemory {
    core::ptr::addr_of_mut!(QUEUE)
}

fn split(addr: u64) -> (u32, u32) {
    (addr as u32, (addr >> 32) as u32)
}

impl VirtioBlk {
    /// Reset the device, negotiate VERSION_1 only, set up queue 0, DRIVER_OK (3.1.1).
    pub fn init(device: MmioDevice) -> Result<Self, DriverError> {
        let base = device.base;
        let (magic, version, id) = (
            read32(base, reg::MAGIC),
            read32(base, reg::VERSION),
            read32(base, reg::DEVICE_ID),
        );
        if magic != MAGIC || version != 2 || id != DEVICE_ID_BLOCK {
            return Err(DriverError::NotABlockDevice { magic, version, id });
        }
        write32(base, reg::STATUS, 0);
        write32(base, reg::STATUS, status::ACKNOWLEDGE);
        write32(base, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        write32(base, reg::DEVICE_FEATURES_SEL, 1);
        let offered_high = read32(base, reg::DEVICE_FEATURES);
        if offered_high & FEATURE_VERSION_1_HIGH == 0 {
            return Err(DriverError::FeaturesRefused);
        }
        write32(base, reg::DRIVER_FEATURES_SEL, 0);
        write32(base, reg::DRIVER_FEATURES, 0);
        write32(base, reg::DRIVER_FEATURES_SEL, 1);
        write32(base, reg::DRIVER_FEATURES, FEATURE_VERSION_1_HIGH);
        let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        write32(base, reg::STATUS, s);
        if read32(base, reg::STATUS) & status::FEATURES_OK == 0 {
            return Err(DriverError::FeaturesRefused);
        }
        write32(base, reg::QUEUE_SEL, 0);
        let max = read32(base, reg::QUEUE_NUM_MAX);
        if max < 3 {
            return Err(DriverError::QueueTooSmall(max));
        }
        let q = queue();
        // SAFETY: QUEUE is only touched by this driver, which runs on the one vCPU, and the
        // device does not look at it before QueueReady.
        let (desc, avail, used) = unsafe {
            (*q).avail.idx = 0;
            (*q).used.idx = 0;
            (
                core::ptr::addr_of!((*q).desc) as u64,
                core::ptr::addr_of!((*q).avail) as u64,
                core::ptr::addr_of!((*q).used) as u64,
            )
        };
        // The driver never has more than one request (3 descriptors) outstanding.
        write32(base, reg::QUEUE_NUM, u32::from(QUEUE_SIZE).min(max));
        for (reg_low, reg_high, addr) in [
            (reg::QUEUE_DESC_LOW, reg::QUEUE_DESC_HIGH, desc),
            (reg::QUEUE_DRIVER_LOW, reg::QUEUE_DRIVER_HIGH, avail),
            (reg::QUEUE_DEVICE_LOW, reg::QUEUE_DEVICE_HIGH, used),
        ] {
            let (low, high) = split(addr);
            write32(base, reg_low, low);
            write32(base, reg_high, high);
        }
        write32(base, reg::QUEUE_READY, 1);
        write32(base, reg::STATUS, s | status::DRIVER_OK);
        let capacity =
            u64::from(read32(base, reg::CONFIG)) | (u64::from(read32(base, reg::CONFIG + 4)) << 32);
        Ok(Self {
            base,
            capacity,
            last_used: 0,
        })
    }

    /// Write one sector.
    pub fn write(&mut self, sector: u64, data: &[u8; BLOCK_BYTES]) -> Result<(), DriverError> {
        // SAFETY: as in `init`; no request is outstanding, so the device is not using it.
        unsafe { (*queue()).data = *data };
        self.request(REQ_OUT, sector)
    }

    /// Read one sector.
    pub fn read(&mut self, sector: u64, out: &mut [u8; BLOCK_BYTES]) -> Result<(), DriverError> {
        self.request(REQ_IN, sector)?;
        // SAFETY: as in `init`; the request is complete, the device is done with it.
        *out = unsafe { (*queue()).data };
        Ok(())
    }

    fn request(&mut self, kind: u32, sector: u64) -> Result<(), DriverError> {
        let q = queue();
        // SAFETY: as in `init`: the device reads the descriptors only after the notify
        // below, and writes only the data buffer (IN), the status byte and the used ring.
        unsafe {
            (*q).header = RequestHeader {
                kind,
                reserved: 0,
                sector,
            };
            (*q).status = 0xff;
            let data_flags = if kind == REQ_IN {
                DESC_NEXT | DESC_WRITE
            } else {
                DESC_NEXT
            };
            (*q).desc[0] = Descriptor {
                addr: core::ptr::addr_of!((*q).header) as u64,
                len: core::mem::size_of::<RequestHeader>() as u32,
                flags: DESC_NEXT,
                next: 1,
            };
            (*q).desc[1] = Descriptor {
                addr: core::ptr::addr_of!((*q).data) as u64,
                len: BLOCK_BYTES as u32,
                flags: data_flags,
                next: 2,
            };
            (*q).desc[2] = Descriptor {
                addr: core::ptr::addr_of!((*q).status) as u64,
                len: 1,
                flags: DESC_WRITE,
                next: 0,
            };
            let idx = core::ptr::read_volatile(core::ptr::addr_of!((*q).avail.idx));
            (*q).avail.ring[usize::from(idx % QUEUE_SIZE)] = 0;
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            core::ptr::write_volatile(core::ptr::addr_of_mut!((*q).avail.idx), idx.wrapping_add(1));
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        write32(self.base, reg::QUEUE_NOTIFY, 0);
        let mut polls = 0u64;
        loop {
            // SAFETY: as above; the device advances used.idx after writing the element.
            let used = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*q).used.idx)) };
            if used != self.last_used {
                self.last_used = used;
                break;
            }
            if read32(self.base, reg::STATUS) & status::NEEDS_RESET != 0 {
                return Err(DriverError::NeedsReset);
            }
            polls += 1;
            if polls > 50_000_000 {
                return Err(DriverError::Timeout);
            }
            core::hint::spin_loop();
        }
        let isr = read32(self.base, reg::INTERRUPT_STATUS);
        if isr != 0 {
            write32(self.base, reg::INTERRUPT_ACK, isr);
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        // SAFETY: as above.
        let st = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*q).status)) };
        if st != 0 {
            return Err(DriverError::RequestFailed(st));
        }
        Ok(())
    }
}
