//! The virtio-mmio register layout, version 2 (VIRTIO 1.2 4.2.2, table "MMIO Device
//! Register Layout"), kept apart from the state machine that gives the registers meaning.

/// Register offsets (4.2.2, table "MMIO Device Register Layout").
pub mod reg {
    /// 0x74726976 ("virt").
    pub const MAGIC_VALUE: u64 = 0x000;
    /// 2 for the modern layout.
    pub const VERSION: u64 = 0x004;
    /// Virtio device ID.
    pub const DEVICE_ID: u64 = 0x008;
    /// Vendor ID.
    pub const VENDOR_ID: u64 = 0x00c;
    /// 32 feature bits selected by DEVICE_FEATURES_SEL.
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// Selects the device feature word.
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// 32 driver feature bits selected by DRIVER_FEATURES_SEL.
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// Selects the driver feature word.
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// Selects the queue the QUEUE_* registers refer to.
    pub const QUEUE_SEL: u64 = 0x030;
    /// Largest queue size the device accepts (0: no such queue).
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// Queue size chosen by the driver.
    pub const QUEUE_NUM: u64 = 0x038;
    /// Queue ready bit.
    pub const QUEUE_READY: u64 = 0x044;
    /// Write a queue index to notify the device.
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// Pending interrupt causes.
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// Write bits to clear them from INTERRUPT_STATUS.
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// Device status.
    pub const STATUS: u64 = 0x070;
    /// Descriptor table address, low and high words.
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// See [`QUEUE_DESC_LOW`].
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// Available ring address, low and high words.
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// See [`QUEUE_DRIVER_LOW`].
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    /// Used ring address, low and high words.
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// See [`QUEUE_DEVICE_LOW`].
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// Shared memory region length, low word (none: all ones).
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    /// Shared memory region length, high word.
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    /// Shared memory region base, low word (none: all ones).
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    /// Shared memory region base, high word.
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    /// Changes whenever the device changes its config space.
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// Start of device config space.
    pub const CONFIG: u64 = 0x100;
}

/// "virt" little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// The modern register layout.
pub const MMIO_VERSION: u32 = 2;
/// Vendor ID reported to the guest: "TERN" little-endian.
pub const VENDOR_TERN: u32 = 0x4e52_4554;
/// Size of the MMIO window the device decodes.
pub const WINDOW_SIZE: u64 = 0x200;
