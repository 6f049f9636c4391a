//! Byte encoding of the virtio-mmio transport registers, one section of a device's
//! migration state (the device type appends its own section after it).
//!
//! Layout (little-endian):
//!
//! ```text
//! 1  status (driver bits)       4  device_features_sel   4  driver_features_sel
//! 8  driver_features            4  queue_sel             4  interrupt_status
//! 4  config_generation          1  needs_reset (0/1)     2  queue count (n)
//! n * 33 bytes, per queue:
//!    2 size  1 ready (0/1)  8 desc_table  8 avail_ring  8 used_ring
//!    2 last_avail_idx  2 next_used_idx  2 reserved (zero)
//! ```
//!
//! Decoding checks only the shape (lengths, booleans, reserved bytes); what the values mean
//! for the destination's device is checked by [`VirtioMmio::check_registers`]: a state a
//! real driver could have produced on this device, and nothing else.

use alloc::vec::Vec;

use migration_proto::wire::{DecodeError, Reader, Writer};

use super::device::{VirtioDevice, feature, interrupt, status};
use super::mmio::{STATUS_ORDER, TransportRegisters, VirtioMmio};
use super::split_queue::SplitQueue;

/// Most queues a saved transport may list (virtio-blk uses one; multiqueue needs more).
pub const MAX_SAVED_QUEUES: usize = 64;

/// Append `r` to `w`.
pub fn encode_registers(r: &TransportRegisters, w: &mut Writer<'_>) {
    w.u8(r.status);
    w.u32(r.device_features_sel);
    w.u32(r.driver_features_sel);
    w.u64(r.driver_features);
    w.u32(r.queue_sel);
    w.u32(r.interrupt_status);
    w.u32(r.config_generation);
    w.bool(r.needs_reset);
    w.count16(r.queues.len());
    for q in &r.queues {
        w.u16(q.size);
        w.bool(q.ready);
        w.u64(q.desc_table);
        w.u64(q.avail_ring);
        w.u64(q.used_ring);
        w.u16(q.last_avail_idx);
        w.u16(q.next_used_idx);
        w.u16(0);
    }
}

/// Read what [`encode_registers`] wrote.
pub fn decode_registers(r: &mut Reader<'_>) -> Result<TransportRegisters, DecodeError> {
    let status = r.u8("virtio.status")?;
    let device_features_sel = r.u32("virtio.device_features_sel")?;
    let driver_features_sel = r.u32("virtio.driver_features_sel")?;
    let driver_features = r.u64("virtio.driver_features")?;
    let queue_sel = r.u32("virtio.queue_sel")?;
    let interrupt_status = r.u32("virtio.interrupt_status")?;
    let config_generation = r.u32("virtio.config_generation")?;
    let needs_reset = boolean(r, "virtio.needs_reset")?;
    let count = usize::from(r.u16("virtio.queue_count")?);
    if count > MAX_SAVED_QUEUES {
        return Err(DecodeError::TooLong {
            field: "virtio.queues",
            len: count,
            max: MAX_SAVED_QUEUES,
        });
    }
    let mut queues = Vec::with_capacity(count);
    for _ in 0..count {
        let q = SplitQueue {
            size: r.u16("virtio.queue.size")?,
            ready: boolean(r, "virtio.queue.ready")?,
            desc_table: r.u64("virtio.queue.desc_table")?,
            avail_ring: r.u64("virtio.queue.avail_ring")?,
            used_ring: r.u64("virtio.queue.used_ring")?,
            last_avail_idx: r.u16("virtio.queue.last_avail_idx")?,
            next_used_idx: r.u16("virtio.queue.next_used_idx")?,
        };
        let reserved = r.u16("virtio.queue.reserved")?;
        if reserved != 0 {
            return Err(DecodeError::InvalidValue {
                field: "virtio.queue.reserved",
                value: reserved.into(),
            });
        }
        queues.push(q);
    }
    Ok(TransportRegisters {
        status,
        device_features_sel,
        driver_features_sel,
        driver_features,
        queue_sel,
        interrupt_status,
        config_generation,
        needs_reset,
        queues,
    })
}

impl<D: VirtioDevice> VirtioMmio<D> {
    /// Checks restored registers against this device: status bits and their order,
    /// negotiated features, queue count, sizes, alignment and interrupt bits.
    pub fn check_registers(&self, r: &TransportRegisters) -> Result<(), &'static str> {
        if r.status & !status::DRIVER_BITS != 0 {
            return Err("status has bits a driver cannot set");
        }
        let s = r.status;
        if STATUS_ORDER
            .iter()
            .any(|&(bit, needs)| s & bit != 0 && s & needs == 0)
        {
            return Err("status bits are set out of order");
        }
        // Before FEATURES_OK the driver may have written anything; it is negotiated only
        // when FEATURES_OK sticks.
        if s & status::FEATURES_OK != 0 && r.driver_features & !self.device().device_features() != 0
        {
            return Err("driver features this device does not offer");
        }
        if s & status::FEATURES_OK != 0 && r.driver_features & feature::VERSION_1 == 0 {
            return Err("features accepted without VERSION_1");
        }
        if r.interrupt_status & !(interrupt::USED_BUFFER | interrupt::CONFIG_CHANGE) != 0 {
            return Err("unknown interrupt status bits");
        }
        if r.queues.len() != self.device().queue_count() {
            return Err("queue count differs from this device's");
        }
        let max = self.device().queue_size_max();
        for q in &r.queues {
            if q.ready {
                q.validate(max)
                    .map_err(|_| "a ready queue has a bad size or alignment")?;
            }
            if q.in_flight() > q.size {
                return Err("a queue has more heads in flight than its size");
            }
        }
        Ok(())
    }
}

/// A byte that must be 0 or 1.
pub fn boolean(r: &mut Reader<'_>, field: &'static str) -> Result<bool, DecodeError> {
    match r.u8(field)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(DecodeError::InvalidValue {
            field,
            value: v.into(),
        }),
    }
}
