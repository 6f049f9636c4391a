//! The device side of one split virtqueue (VIRTIO 1.2 2.7): its addresses and size as the
//! driver configured them, and the device's two private indices.
//!
//! Guest memory layout (2.7, all little-endian):
//!
//! ```text
//! descriptor table  16 * size   aligned 16   { le64 addr; le32 len; le16 flags; le16 next }
//! available ring    6 + 2*size  aligned 2    { le16 flags; le16 idx; le16 ring[size]; le16 used_event }
//! used ring         6 + 8*size  aligned 4    { le16 flags; le16 idx; { le32 id; le32 len }[size]; le16 avail_event }
//! ```
//!
//! The 16-bit ring indices run freely and wrap at 65536; positions are `idx % size`, which is
//! why the size must be a power of two (2.7: "Queue Size value is always a power of 2"). The
//! device never trusts the driver's `avail.idx`: it may be at most `size` ahead of what the
//! device has consumed (2.7.13.3), and every head it names is checked against the table.
//! EVENT_IDX is not offered, so `used_event`/`avail_event` are never used.

use core::sync::atomic::{Ordering, compiler_fence};

use super::guest_memory::GuestMemory;
use super::queue_error::QueueError;

/// `avail.flags` bit: the driver does not want an interrupt for used buffers (2.7.7).
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// One split virtqueue as the transport's registers configured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SplitQueue {
    /// Number of descriptors (QueueNum).
    pub size: u16,
    /// QueueReady: the driver finished configuring it.
    pub ready: bool,
    /// Guest-physical address of the descriptor table (QueueDesc).
    pub desc_table: u64,
    /// Guest-physical address of the available ring (QueueDriver).
    pub avail_ring: u64,
    /// Guest-physical address of the used ring (QueueDevice).
    pub used_ring: u64,
    /// Next available-ring position the device will read (free-running).
    pub last_avail_idx: u16,
    /// Next used-ring position the device will write (free-running; mirrors `used.idx`).
    pub next_used_idx: u16,
}

impl SplitQueue {
    /// Checks the size and alignments the driver configured (2.7) against `max_size`.
    pub fn validate(&self, max_size: u16) -> Result<(), QueueError> {
        if self.size == 0 || !self.size.is_power_of_two() || self.size > max_size {
            return Err(QueueError::BadQueueSize {
                size: self.size,
                max: max_size,
            });
        }
        for (what, gpa, align) in [
            ("descriptor table", self.desc_table, 16),
            ("available ring", self.avail_ring, 2),
            ("used ring", self.used_ring, 4),
        ] {
            if !gpa.is_multiple_of(align) {
                return Err(QueueError::Misaligned { what, gpa, align });
            }
        }
        Ok(())
    }

    /// Number of heads the device has taken but not yet returned.
    pub fn in_flight(&self) -> u16 {
        self.last_avail_idx.wrapping_sub(self.next_used_idx)
    }

    /// Takes the next available head, if the driver made one available.
    pub fn pop_avail(&mut self, mem: &impl GuestMemory) -> Result<Option<u16>, QueueError> {
        if self.size == 0 {
            return Err(QueueError::NoQueue);
        }
        let avail_idx = mem
            .read_u16(self.avail_ring.wrapping_add(2))
            .map_err(|access| QueueError::OutsideRam {
                what: "available ring index",
                access,
            })?;
        // The ring entries are read after the index (2.7.13: the driver publishes the index
        // last); on x86 loads are not reordered with loads (SDM Vol. 3A 9.2.2).
        compiler_fence(Ordering::Acquire);
        let pending = avail_idx.wrapping_sub(self.last_avail_idx);
        if pending == 0 {
            return Ok(None);
        }
        if pending > self.size {
            return Err(QueueError::AvailIndexJump {
                last_seen: self.last_avail_idx,
                avail_idx,
                size: self.size,
            });
        }
        let slot = u64::from(self.last_avail_idx % self.size);
        let head = mem
            .read_u16(self.avail_ring.wrapping_add(4 + 2 * slot))
            .map_err(|access| QueueError::OutsideRam {
                what: "available ring entry",
                access,
            })?;
        if head >= self.size {
            return Err(QueueError::IndexOutOfRange {
                index: head,
                size: u32::from(self.size),
            });
        }
        self.last_avail_idx = self.last_avail_idx.wrapping_add(1);
        Ok(Some(head))
    }

    /// Returns `head` to the driver with `written` bytes written into its buffers, and
    /// publishes the new `used.idx` after the element (2.7.8).
    pub fn push_used(
        &mut self,
        mem: &mut impl GuestMemory,
        head: u16,
        written: u32,
    ) -> Result<(), QueueError> {
        if self.size == 0 {
            return Err(QueueError::NoQueue);
        }
        let slot = u64::from(self.next_used_idx % self.size);
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        elem[4..].copy_from_slice(&written.to_le_bytes());
        mem.write(self.used_ring.wrapping_add(4 + 8 * slot), &elem)
            .map_err(|access| QueueError::OutsideRam {
                what: "used ring entry",
                access,
            })?;
        self.next_used_idx = self.next_used_idx.wrapping_add(1);
        compiler_fence(Ordering::Release);
        mem.write(
            self.used_ring.wrapping_add(2),
            &self.next_used_idx.to_le_bytes(),
        )
        .map_err(|access| QueueError::OutsideRam {
            what: "used ring index",
            access,
        })
    }

    /// Whether the driver asked not to be interrupted for used buffers (2.7.7.2); an
    /// unreadable flags word counts as "interrupt wanted".
    pub fn interrupt_suppressed(&self, mem: &impl GuestMemory) -> bool {
        mem.read_u16(self.avail_ring)
            .is_ok_and(|flags| flags & VIRTQ_AVAIL_F_NO_INTERRUPT != 0)
    }
}
