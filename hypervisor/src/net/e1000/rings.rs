//! Receive and transmit descriptor rings: who owns which descriptor, and when.
//!
//! Receive (SDM 3.2.6): the device owns descriptors from RDH up to RDT-1 and writes frames
//! into them; software owns the rest. We keep exactly one descriptor back (the one RDT
//! points at) so that RDH == RDT always means "ring empty of free buffers" rather than
//! ambiguity. After processing descriptor `i`, software clears it and writes RDT = i, which
//! hands the previously held descriptor back to the device.
//!
//! Transmit (SDM 3.4): software fills descriptors at TDT and advances it; the device sends
//! them and sets DD (we always ask for it with RS). `clean` chases the device: descriptors
//! between `clean` and `tail` are in flight. One slot stays empty to tell full from empty.

use super::desc::{self, RxDesc, TxDesc, rx_errors, rx_status, tx_cmd, tx_status};
use super::hal::{DmaError, DmaMemory, DmaRegion};

/// What happened to one received descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxOutcome {
    /// A good frame of this length was copied out.
    Delivered(usize),
    /// The frame carried error bits.
    Errored,
    /// The frame was unusable (spanned several buffers, bad length, caller buffer too
    /// small).
    Dropped,
    /// A non-final fragment of a multi-buffer frame; the frame is dropped at its end.
    Fragment,
}

/// The receive ring and its buffers.
pub struct RxRing {
    ring: DmaRegion,
    buffers: DmaRegion,
    /// Bytes per buffer: what RCTL.BSIZE/BSEX tell the device (see `frame_size`).
    buffer_len: usize,
    len: usize,
    next: usize,
    discarding: bool,
}

impl RxRing {
    /// Allocate a ring of `len` descriptors with a buffer of `buffer_len` bytes each, all
    /// posted.
    pub fn new(dma: &mut dyn DmaMemory, len: usize, buffer_len: usize) -> Result<Self, DmaError> {
        let ring = dma.alloc_zeroed(len * desc::DESC_LEN)?;
        let buffers = dma.alloc_zeroed(len * buffer_len)?;
        for index in 0..len {
            let addr = buffers.phys() + (index * buffer_len) as u64;
            desc::write_rx(
                &ring,
                index,
                RxDesc {
                    addr,
                    ..RxDesc::default()
                },
            );
        }
        Ok(Self {
            ring,
            buffers,
            buffer_len,
            len,
            next: 0,
            discarding: false,
        })
    }

    /// Device-visible ring base.
    pub fn phys(&self) -> u64 {
        self.ring.phys()
    }

    /// Ring length in bytes (for RDLEN).
    pub fn byte_len(&self) -> usize {
        self.len * desc::DESC_LEN
    }

    /// The RDT value that posts every buffer but the one we hold back.
    pub fn initial_tail(&self) -> usize {
        self.len - 1
    }

    /// Take the next completed descriptor, if any, copying a good frame into `out`.
    /// Returns the outcome and the new RDT value to write (the recycled index).
    pub fn take(&mut self, out: &mut [u8]) -> Option<(RxOutcome, usize)> {
        let index = self.next;
        let desc = desc::read_rx(&self.ring, index);
        if desc.status & rx_status::DD == 0 {
            return None;
        }
        let length = usize::from(desc.length);
        let outcome = if desc.status & rx_status::EOP == 0 {
            self.discarding = true;
            RxOutcome::Fragment
        } else if core::mem::replace(&mut self.discarding, false) {
            RxOutcome::Dropped
        } else if desc.errors & rx_errors::FRAME_DAMAGED != 0 {
            RxOutcome::Errored
        } else if !(crate::net::nic::MIN_FRAME_LEN..=self.buffer_len).contains(&length)
            || length > out.len()
        {
            RxOutcome::Dropped
        } else {
            self.buffers
                .copy_out(index * self.buffer_len, &mut out[..length]);
            RxOutcome::Delivered(length)
        };
        // Recycle: clear status so a stale DD is never mistaken for a new frame, and restore
        // the buffer address in case the device (or a fault) changed it.
        let addr = self.buffers.phys() + (index * self.buffer_len) as u64;
        desc::write_rx(
            &self.ring,
            index,
            RxDesc {
                addr,
                ..RxDesc::default()
            },
        );
        self.next = (index + 1) % self.len;
        Some((outcome, index))
    }
}

/// The transmit ring and its buffers.
pub struct TxRing {
    ring: DmaRegion,
    buffers: DmaRegion,
    /// Bytes per buffer (the largest frame, rounded up).
    buffer_len: usize,
    len: usize,
    tail: usize,
    clean: usize,
}

impl TxRing {
    /// Allocate an empty ring of `len` descriptors with a buffer of `buffer_len` bytes each.
    pub fn new(dma: &mut dyn DmaMemory, len: usize, buffer_len: usize) -> Result<Self, DmaError> {
        let ring = dma.alloc_zeroed(len * desc::DESC_LEN)?;
        let buffers = dma.alloc_zeroed(len * buffer_len)?;
        Ok(Self {
            ring,
            buffers,
            buffer_len,
            len,
            tail: 0,
            clean: 0,
        })
    }

    /// Device-visible ring base.
    pub fn phys(&self) -> u64 {
        self.ring.phys()
    }

    /// Ring length in bytes (for TDLEN).
    pub fn byte_len(&self) -> usize {
        self.len * desc::DESC_LEN
    }

    /// Advance `clean` past every descriptor the device has finished.
    pub fn reclaim(&mut self) {
        while self.clean != self.tail {
            let desc = desc::read_tx(&self.ring, self.clean);
            if desc.status & tx_status::DD == 0 {
                break;
            }
            self.clean = (self.clean + 1) % self.len;
        }
    }

    /// Whether a descriptor is free (after reclaiming).
    pub fn has_space(&mut self) -> bool {
        self.reclaim();
        (self.tail + 1) % self.len != self.clean
    }

    /// Frames queued and not yet completed by the device.
    pub fn in_flight(&mut self) -> usize {
        self.reclaim();
        (self.tail + self.len - self.clean) % self.len
    }

    /// Copy `frame` into the next descriptor's buffer and return the new TDT value, or `None`
    /// if the ring is full. `frame` must fit in the ring's buffers (the driver checks it
    /// against the MTU first).
    pub fn push(&mut self, frame: &[u8]) -> Option<usize> {
        if !self.has_space() {
            return None;
        }
        let index = self.tail;
        self.buffers.copy_in(index * self.buffer_len, frame);
        let desc = TxDesc {
            addr: self.buffers.phys() + (index * self.buffer_len) as u64,
            length: frame.len() as u16,
            cmd: tx_cmd::EOP | tx_cmd::IFCS | tx_cmd::RS,
            status: 0,
        };
        desc::write_tx(&self.ring, index, desc);
        self.tail = (index + 1) % self.len;
        Some(self.tail)
    }
}
