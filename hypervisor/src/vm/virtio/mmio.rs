//! The virtio-mmio transport (VIRTIO 1.2 4.2), register layout version 2 ("modern").
//!
//! A pure register front-end: the exit handler that decodes a guest's MMIO access calls
//! [`VirtioMmio::read`] / [`VirtioMmio::write`] with the offset into the device's 0x200-byte
//! window, and the main loop calls [`VirtioMmio::poll`] to finish completed requests.
//! The interrupt is level-triggered: asserted while [`VirtioMmio::interrupt_level`] is true
//! (InterruptStatus non-zero), which the glue forwards to the interrupt controller model
//! once one exists; until then the guest polls the used ring.
//!
//! Status state machine (2.1, 3.1.1): writing 0 resets; the driver only ever adds bits;
//! FEATURES_OK sticks only when the driver's features are a subset of the device's and
//! include VERSION_1; DRIVER_OK needs FEATURES_OK; queue registers are writable only while
//! the selected queue is not ready; QueueReady=1 validates size and alignment. Any fatal
//! driver error sets DEVICE_NEEDS_RESET (2.1.2), logs one line, raises a configuration
//! change interrupt if DRIVER_OK was set, and stops all queue processing until reset.
//!
//! Access rules (4.2.2.2): registers below 0x100 are 32-bit wide and aligned; other widths
//! read 0 and are ignored on write. Config space (0x100..) takes 1-, 2- and 4-byte accesses.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::device::{VirtioDevice, feature, interrupt, status};
use super::guest_memory::GuestMemory;
use super::split_queue::SplitQueue;

pub use super::mmio_layout::{MAGIC, MMIO_VERSION, VENDOR_TERN, WINDOW_SIZE, reg};

/// The transport's own registers: everything a migration must carry besides the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportRegisters {
    /// Device status as written by the driver (DEVICE_NEEDS_RESET is `needs_reset`).
    pub status: u8,
    /// DeviceFeaturesSel.
    pub device_features_sel: u32,
    /// DriverFeaturesSel.
    pub driver_features_sel: u32,
    /// Features the driver wrote (negotiated once FEATURES_OK is set).
    pub driver_features: u64,
    /// QueueSel.
    pub queue_sel: u32,
    /// InterruptStatus.
    pub interrupt_status: u32,
    /// ConfigGeneration.
    pub config_generation: u32,
    /// The device hit a fatal driver error and waits for a reset.
    pub needs_reset: bool,
    /// Every queue's configuration and indices.
    pub queues: Vec<SplitQueue>,
}

impl TransportRegisters {
    fn after_reset(queue_count: usize, config_generation: u32) -> Self {
        Self {
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
            config_generation,
            needs_reset: false,
            queues: vec![SplitQueue::default(); queue_count],
        }
    }
}

/// A virtio device behind the virtio-mmio transport.
pub struct VirtioMmio<D: VirtioDevice> {
    name: String,
    device: D,
    regs: TransportRegisters,
    /// Why the device needs a reset, for the operator (not migrated: a restored broken
    /// device says so instead).
    broken_reason: Option<String>,
}

impl<D: VirtioDevice> VirtioMmio<D> {
    /// A device in its reset state; `name` prefixes its log lines (e.g. `web/vda`).
    pub fn new(name: String, device: D) -> Self {
        let regs = TransportRegisters::after_reset(device.queue_count(), 0);
        Self {
            name,
            device,
            regs,
            broken_reason: None,
        }
    }

    /// The device model.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device model, mutably (e.g. to harvest its dirty-block bitmap).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The transport registers (for save).
    pub fn registers(&self) -> &TransportRegisters {
        &self.regs
    }

    /// Replace the transport registers (restore); the caller validated them with
    /// [`Self::check_registers`].
    pub(crate) fn set_registers(&mut self, regs: TransportRegisters) {
        self.broken_reason = regs
            .needs_reset
            .then(|| String::from("restored in the DEVICE_NEEDS_RESET state"));
        self.regs = regs;
    }

    /// Why the device needs a reset (None while it works).
    pub fn broken_reason(&self) -> Option<&str> {
        self.broken_reason.as_deref()
    }

    /// Whether the interrupt line is asserted (level: InterruptStatus non-zero).
    pub fn interrupt_level(&self) -> bool {
        self.regs.interrupt_status != 0
    }

    /// Whether the device is in DEVICE_NEEDS_RESET.
    pub fn needs_reset(&self) -> bool {
        self.regs.needs_reset
    }

    /// The status register as the guest reads it.
    pub fn status(&self) -> u8 {
        let mut s = self.regs.status;
        if self.regs.needs_reset {
            s |= status::DEVICE_NEEDS_RESET;
        }
        s
    }

    fn selected_queue(&mut self) -> Option<&mut SplitQueue> {
        let sel = usize::try_from(self.regs.queue_sel).ok()?;
        self.regs.queues.get_mut(sel)
    }

    /// A guest read of `size` bytes at `offset` in the window.
    pub fn read(&self, offset: u64, size: u8) -> u32 {
        if offset >= reg::CONFIG {
            return self.read_config(offset - reg::CONFIG, size);
        }
        if size != 4 || !offset.is_multiple_of(4) {
            return 0;
        }
        let r = &self.regs;
        let queue = usize::try_from(r.queue_sel)
            .ok()
            .and_then(|i| r.queues.get(i));
        match offset {
            reg::MAGIC_VALUE => MAGIC,
            reg::VERSION => MMIO_VERSION,
            reg::DEVICE_ID => self.device.device_id(),
            reg::VENDOR_ID => VENDOR_TERN,
            reg::DEVICE_FEATURES => {
                feature_word(self.device.device_features(), r.device_features_sel)
            }
            reg::QUEUE_NUM_MAX => queue.map_or(0, |_| u32::from(self.device.queue_size_max())),
            reg::QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => r.interrupt_status,
            reg::STATUS => u32::from(self.status()),
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH | reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => {
                u32::MAX
            }
            reg::CONFIG_GENERATION => r.config_generation,
            _ => 0,
        }
    }

    fn read_config(&self, offset: u64, size: u8) -> u32 {
        let mut buf = [0u8; 4];
        match size {
            1 | 2 | 4 => {
                self.device
                    .read_config(offset, &mut buf[..usize::from(size)]);
                u32::from_le_bytes(buf)
            }
            _ => 0,
        }
    }

    /// A guest write of `size` bytes of `value` at `offset` in the window. A QueueNotify
    /// processes the queue at once, with `mem` as guest RAM.
    pub fn write(&mut self, mem: &mut impl GuestMemory, offset: u64, size: u8, value: u32) {
        if offset >= reg::CONFIG {
            if matches!(size, 1 | 2 | 4) {
                let bytes = value.to_le_bytes();
                self.device
                    .write_config(offset - reg::CONFIG, &bytes[..usize::from(size)]);
            }
            return;
        }
        if size != 4 || !offset.is_multiple_of(4) {
            log::debug!(
                "virtio {}: ignored {size}-byte write at {offset:#x}",
                self.name
            );
            return;
        }
        match offset {
            reg::DEVICE_FEATURES_SEL => self.regs.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.regs.driver_features_sel = value,
            reg::DRIVER_FEATURES => self.write_driver_features(value),
            reg::QUEUE_SEL => self.regs.queue_sel = value,
            // A size above 65535 is stored as 0 so that QueueReady refuses it.
            reg::QUEUE_NUM => self.write_queue(|q| q.size = u16::try_from(value).unwrap_or(0)),
            reg::QUEUE_DESC_LOW => self.write_queue(|q| set_low(&mut q.desc_table, value)),
            reg::QUEUE_DESC_HIGH => self.write_queue(|q| set_high(&mut q.desc_table, value)),
            reg::QUEUE_DRIVER_LOW => self.write_queue(|q| set_low(&mut q.avail_ring, value)),
            reg::QUEUE_DRIVER_HIGH => self.write_queue(|q| set_high(&mut q.avail_ring, value)),
            reg::QUEUE_DEVICE_LOW => self.write_queue(|q| set_low(&mut q.used_ring, value)),
            reg::QUEUE_DEVICE_HIGH => self.write_queue(|q| set_high(&mut q.used_ring, value)),
            reg::QUEUE_READY => self.write_queue_ready(value),
            reg::QUEUE_NOTIFY => self.notify(mem, value),
            reg::INTERRUPT_ACK => self.regs.interrupt_status &= !value,
            reg::STATUS => self.write_status(value),
            _ => {}
        }
    }

    fn write_driver_features(&mut self, value: u32) {
        if self.regs.status & status::FEATURES_OK != 0 {
            return; // 3.1.1: features are fixed once FEATURES_OK is set.
        }
        let f = &mut self.regs.driver_features;
        match self.regs.driver_features_sel {
            0 => *f = (*f & !0xffff_ffff) | u64::from(value),
            1 => *f = (*f & 0xffff_ffff) | (u64::from(value) << 32),
            _ => {}
        }
    }

    /// Queue configuration is only writable while the queue is not ready (4.2.2.2).
    fn write_queue(&mut self, set: impl FnOnce(&mut SplitQueue)) {
        if let Some(q) = self.selected_queue()
            && !q.ready
        {
            set(q);
        }
    }

    fn write_queue_ready(&mut self, value: u32) {
        let max = self.device.queue_size_max();
        let Some(q) = self.selected_queue() else {
            return;
        };
        if value == 0 {
            q.ready = false;
            return;
        }
        if q.ready {
            return;
        }
        if let Err(e) = q.validate(max) {
            self.fail(&e);
            return;
        }
        q.ready = true;
        q.last_avail_idx = 0;
        q.next_used_idx = 0;
    }

    fn write_status(&mut self, value: u32) {
        let new = (value & 0xff) as u8 & status::DRIVER_BITS;
        if value == 0 {
            self.reset();
            return;
        }
        let old = self.regs.status;
        if old & !new != 0 {
            log::debug!(
                "virtio {}: driver tried to clear status bits {:#x}; ignored",
                self.name,
                old & !new
            );
            return;
        }
        // Bits only count once their predecessors in the 3.1.1 sequence are set.
        let mut accepted = new;
        for (bit, needs) in STATUS_ORDER {
            if accepted & bit != 0 && accepted & needs == 0 {
                accepted &= !bit;
            }
        }
        if accepted & !old & status::FEATURES_OK != 0 && !self.features_acceptable() {
            log::info!(
                "virtio {}: driver features {:#x} refused (device offers {:#x}, VERSION_1 required)",
                self.name,
                self.regs.driver_features,
                self.device.device_features()
            );
            accepted &= !status::FEATURES_OK;
        }
        if accepted & status::DRIVER_OK != 0 && accepted & status::FEATURES_OK == 0 {
            accepted &= !status::DRIVER_OK; // FEATURES_OK was just refused.
        }
        self.regs.status = accepted;
    }

    fn features_acceptable(&self) -> bool {
        let f = self.regs.driver_features;
        f & !self.device.device_features() == 0 && f & feature::VERSION_1 != 0
    }

    /// Device reset (status 0): back to the power-on state, requests forgotten.
    pub fn reset(&mut self) {
        self.device.reset();
        // The generation survives resets so a driver never sees it go backwards.
        self.regs =
            TransportRegisters::after_reset(self.device.queue_count(), self.regs.config_generation);
        self.broken_reason = None;
    }

    fn active(&self) -> bool {
        self.regs.status & status::DRIVER_OK != 0 && !self.regs.needs_reset
    }

    fn notify(&mut self, mem: &mut impl GuestMemory, value: u32) {
        let Ok(index) = usize::try_from(value) else {
            return;
        };
        if !self.active() || !self.regs.queues.get(index).is_some_and(|q| q.ready) {
            return;
        }
        let features = self.regs.driver_features;
        let result = self
            .device
            .queue_notify(index, features, &mut self.regs.queues, mem);
        self.settle(result);
    }

    /// Finish completed requests (call from the main loop). Nothing happens before
    /// DRIVER_OK or while the device needs a reset.
    pub fn poll(&mut self, mem: &mut impl GuestMemory) {
        if !self.active() {
            return;
        }
        let features = self.regs.driver_features;
        let result = self.device.poll(features, &mut self.regs.queues, mem);
        self.settle(result);
    }

    fn settle(&mut self, result: Result<bool, D::Error>) {
        match result {
            Ok(true) => self.regs.interrupt_status |= interrupt::USED_BUFFER,
            Ok(false) => {}
            Err(e) => self.fail(&e),
        }
    }

    /// Enter DEVICE_NEEDS_RESET with one log line (2.1.2).
    fn fail(&mut self, error: &dyn core::fmt::Display) {
        if self.regs.needs_reset {
            return;
        }
        log::warn!(
            "virtio {}: {error}; device needs reset (DEVICE_NEEDS_RESET)",
            self.name
        );
        self.regs.needs_reset = true;
        self.broken_reason = Some(alloc::format!("{error}"));
        if self.regs.status & status::DRIVER_OK != 0 {
            self.regs.interrupt_status |= interrupt::CONFIG_CHANGE;
        }
    }
}

/// Status bits and the bit each needs first (3.1.1: ACKNOWLEDGE, DRIVER, FEATURES_OK,
/// DRIVER_OK), in that order.
pub(crate) const STATUS_ORDER: [(u8, u8); 3] = [
    (status::DRIVER, status::ACKNOWLEDGE),
    (status::FEATURES_OK, status::DRIVER),
    (status::DRIVER_OK, status::FEATURES_OK),
];

fn feature_word(features: u64, sel: u32) -> u32 {
    match sel {
        0 => features as u32,
        1 => (features >> 32) as u32,
        _ => 0,
    }
}

fn set_low(addr: &mut u64, value: u32) {
    *addr = (*addr & !0xffff_ffff) | u64::from(value);
}

fn set_high(addr: &mut u64, value: u32) {
    *addr = (*addr & 0xffff_ffff) | (u64::from(value) << 32);
}
