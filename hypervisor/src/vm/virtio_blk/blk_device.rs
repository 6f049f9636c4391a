//! The virtio-blk device proper: takes requests from its one queue, runs them on the
//! backend, returns them through the used ring (VIRTIO 1.2 5.2.6).
//!
//! Flow: a QueueNotify pops every available head, walks and frames its chain (any
//! malformation is fatal: [`BlkError`]), classifies it, and either answers at once (GET_ID,
//! IOERR, UNSUPP) or submits it to the backend. Completions are drained after every
//! submission (so a RAM disk never holds more than one request's data) and on every
//! [`VirtioDevice::poll`]. A completion writes the data of a read, the status byte, and the
//! used element; one whose tag is unknown belongs to a request from before a reset and is
//! dropped without touching guest memory.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::backend::{BlockBackend, BlockOp, SECTOR_SIZE, SectorRange};
use super::config::{
    CONFIG_LEN, DEVICE_ID_BLOCK, ID_BYTES, MAX_DISCARD_SECTORS, QUEUE_SIZE_MAX, config_space,
    offered_features,
};
use super::dirty_blocks::DirtyBlocks;
use super::guest_io::{complete, gather, scatter};
use super::in_flight::{
    DISCARD_SEGMENT_LEN, Disposition, InFlight, RequestKind, classify, sectors_in_disk,
};
use super::request::{FramedRequest, FramingFailure, RequestError, frame_request, status_byte};
use crate::vm::virtio::descriptor_chain::walk_chain;
use crate::vm::virtio::device::{VirtioDevice, feature};
use crate::vm::virtio::guest_memory::GuestMemory;
use crate::vm::virtio::queue_error::QueueError;
use crate::vm::virtio::split_queue::SplitQueue;

/// A fatal driver error: the device needs a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkError {
    /// The queue or a descriptor chain is malformed.
    Queue(QueueError),
    /// A chain is not a block request.
    Request(RequestError),
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Queue(e) => write!(f, "{e}"),
            Self::Request(e) => write!(f, "{e}"),
        }
    }
}

impl From<QueueError> for BlkError {
    fn from(e: QueueError) -> Self {
        Self::Queue(e)
    }
}

impl From<FramingFailure> for BlkError {
    fn from(e: FramingFailure) -> Self {
        match e {
            FramingFailure::Queue(q) => Self::Queue(q),
            FramingFailure::Request(r) => Self::Request(r),
        }
    }
}

/// A virtio block device over backend `B`.
pub struct VirtioBlk<B: BlockBackend> {
    backend: B,
    id: [u8; ID_BYTES],
    config: [u8; CONFIG_LEN],
    in_flight: Vec<InFlight>,
    next_tag: u64,
    dirty: DirtyBlocks,
}

impl<B: BlockBackend> VirtioBlk<B> {
    /// A device serving `backend`; `id` is what GET_ID returns (truncated to 20 bytes).
    pub fn new(backend: B, id: &str) -> Self {
        let mut id_bytes = [0u8; ID_BYTES];
        let n = id.len().min(ID_BYTES);
        id_bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
        let config = config_space(backend.capacity_sectors(), backend.block_size());
        let dirty = DirtyBlocks::new(backend.capacity_sectors(), backend.block_size());
        Self {
            backend,
            id: id_bytes,
            config,
            in_flight: Vec::new(),
            next_tag: 0,
            dirty,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Blocks written or discarded since the last harvest.
    pub fn dirty_blocks(&mut self) -> &mut DirtyBlocks {
        &mut self.dirty
    }

    /// Requests taken from the queue and not yet completed.
    pub fn in_flight(&self) -> &[InFlight] {
        &self.in_flight
    }

    /// The next backend tag.
    pub fn next_tag(&self) -> u64 {
        self.next_tag
    }

    /// The GET_ID string as stored (NUL-padded).
    pub fn id(&self) -> String {
        let end = self.id.iter().position(|&b| b == 0).unwrap_or(ID_BYTES);
        String::from_utf8_lossy(&self.id[..end]).into_owned()
    }

    /// Replace the in-flight requests (restore; validated by the caller). They are
    /// resubmitted to the backend at the next poll.
    pub(crate) fn set_in_flight(&mut self, requests: Vec<InFlight>, next_tag: u64) {
        self.in_flight = requests;
        self.next_tag = next_tag;
    }

    fn process_available(
        &mut self,
        features: u64,
        q: &mut SplitQueue,
        mem: &mut impl GuestMemory,
    ) -> Result<bool, BlkError> {
        let mut used = false;
        while let Some(head) = q.pop_avail(mem)? {
            if self.in_flight.iter().any(|r| r.head == head) {
                return Err(QueueError::HeadInFlight { head }.into());
            }
            let chain = walk_chain(mem, q, head, features & feature::INDIRECT_DESC != 0)?;
            let req = frame_request(mem, &chain)?;
            let capacity = self.backend.capacity_sectors();
            let read_only = self.backend.read_only();
            match classify(&req, capacity, read_only, features) {
                Disposition::Refuse(status) => {
                    log::debug!(
                        "virtio-blk: request type {} at sector {} refused with status {status}",
                        req.request_type,
                        req.sector
                    );
                    complete(q, mem, head, req.status_gpa, status, 0)?;
                    used = true;
                }
                Disposition::GetId => {
                    let written = scatter(mem, &req.data, &self.id)?;
                    complete(q, mem, head, req.status_gpa, status_byte::OK, written)?;
                    used = true;
                }
                Disposition::Backend(kind) => {
                    let tag = self.next_tag;
                    self.next_tag = self.next_tag.wrapping_add(1);
                    used |= self.start(q, mem, to_in_flight(tag, kind, req))?;
                    used |= self.drain(q, mem)?;
                }
            }
        }
        Ok(used)
    }

    /// Submit `req` to the backend, or complete it at once when its guest data is not
    /// acceptable (returns whether it was completed).
    fn start(
        &mut self,
        q: &mut SplitQueue,
        mem: &mut impl GuestMemory,
        mut req: InFlight,
    ) -> Result<bool, BlkError> {
        let op = match self.build_op(mem, &req)? {
            Ok(op) => op,
            Err(status) => {
                complete(q, mem, req.head, req.status_gpa, status, 0)?;
                return Ok(true);
            }
        };
        match &op {
            BlockOp::Write { sector, data } => self.dirty.mark(*sector, data.len() as u64),
            BlockOp::Discard { ranges } => {
                for r in ranges {
                    self.dirty.mark(r.sector, u64::from(r.count) * SECTOR_SIZE);
                }
            }
            BlockOp::Read { .. } | BlockOp::Flush => {}
        }
        self.backend.submit(req.tag, op);
        req.submitted = true;
        self.in_flight.push(req);
        Ok(false)
    }

    /// The backend operation for `req`, or the status byte that refuses it.
    fn build_op(
        &self,
        mem: &impl GuestMemory,
        req: &InFlight,
    ) -> Result<Result<BlockOp, u8>, BlkError> {
        let len = req.data_len();
        Ok(Ok(match req.kind {
            RequestKind::Read => BlockOp::Read {
                sector: req.sector,
                // Bounded by MAX_REQUEST_BYTES at classification.
                len: len as u32,
            },
            RequestKind::Flush => BlockOp::Flush,
            RequestKind::Write => {
                let Some(data) = gather(mem, &req.data)? else {
                    return Ok(Err(status_byte::IOERR));
                };
                BlockOp::Write {
                    sector: req.sector,
                    data,
                }
            }
            RequestKind::Discard => {
                let Some(raw) = gather(mem, &req.data)? else {
                    return Ok(Err(status_byte::IOERR));
                };
                let mut ranges = Vec::new();
                for seg in raw.chunks_exact(DISCARD_SEGMENT_LEN as usize) {
                    let sector = u64::from_le_bytes(seg[0..8].try_into().unwrap_or([0; 8]));
                    let count = u32::from_le_bytes(seg[8..12].try_into().unwrap_or([0; 4]));
                    let flags = u32::from_le_bytes(seg[12..16].try_into().unwrap_or([0; 4]));
                    // 5.2.6.2: the unmap flag (and any unknown flag) is unsupported for
                    // discard.
                    if flags != 0 {
                        return Ok(Err(status_byte::UNSUPP));
                    }
                    let capacity = self.backend.capacity_sectors();
                    if count == 0
                        || count > MAX_DISCARD_SECTORS
                        || !sectors_in_disk(sector, u64::from(count), capacity)
                    {
                        return Ok(Err(status_byte::IOERR));
                    }
                    ranges.push(SectorRange { sector, count });
                }
                BlockOp::Discard { ranges }
            }
        }))
    }

    /// Finish every completed backend operation.
    fn drain(&mut self, q: &mut SplitQueue, mem: &mut impl GuestMemory) -> Result<bool, BlkError> {
        let mut used = false;
        while let Some(c) = self.backend.poll_completion() {
            let Some(pos) = self.in_flight.iter().position(|r| r.tag == c.tag) else {
                continue; // From before a reset: the guest no longer owns its buffers to us.
            };
            let req = self.in_flight.swap_remove(pos);
            if !q.ready {
                continue; // The driver disabled the queue; nothing may be written.
            }
            let (status, written) = match (&c.result, req.kind) {
                (Ok(data), RequestKind::Read) if data.len() as u64 == req.data_len() => {
                    (status_byte::OK, scatter(mem, &req.data, data)?)
                }
                (Ok(_), RequestKind::Read) => (status_byte::IOERR, 0),
                (Ok(_), _) => (status_byte::OK, 0),
                (Err(e), _) => {
                    log::debug!("virtio-blk: {:?} at sector {}: {e}", req.kind, req.sector);
                    (status_byte::IOERR, 0)
                }
            };
            complete(q, mem, req.head, req.status_gpa, status, written)?;
            used = true;
        }
        Ok(used)
    }

    /// Submit requests restored from a migration stream.
    fn resubmit(
        &mut self,
        q: &mut SplitQueue,
        mem: &mut impl GuestMemory,
    ) -> Result<bool, BlkError> {
        if self.in_flight.iter().all(|r| r.submitted) {
            return Ok(false);
        }
        // In their saved order. Should one fail fatally, the device is broken and the rest
        // are moot.
        let (pending, submitted): (Vec<_>, Vec<_>) = core::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|r| !r.submitted);
        self.in_flight = submitted;
        let mut used = false;
        for req in pending {
            used |= self.start(q, mem, req)?;
        }
        Ok(used)
    }
}

fn to_in_flight(tag: u64, kind: RequestKind, req: FramedRequest) -> InFlight {
    InFlight {
        tag,
        head: req.head,
        kind,
        sector: req.sector,
        data: req.data,
        status_gpa: req.status_gpa,
        submitted: false,
    }
}

impl<B: BlockBackend> VirtioDevice for VirtioBlk<B> {
    type Error = BlkError;

    fn device_id(&self) -> u32 {
        DEVICE_ID_BLOCK
    }

    fn device_features(&self) -> u64 {
        offered_features(self.backend.read_only())
    }

    fn queue_count(&self) -> usize {
        1
    }

    fn queue_size_max(&self) -> u16 {
        QUEUE_SIZE_MAX
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| self.config.get(o))
                .copied()
                .unwrap_or(0);
        }
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // Only `writeback` is writable, and only with CONFIG_WCE, which is not offered.
    }

    fn queue_notify(
        &mut self,
        index: usize,
        driver_features: u64,
        queues: &mut [SplitQueue],
        mem: &mut impl GuestMemory,
    ) -> Result<bool, BlkError> {
        let Some(q) = queues.get_mut(index) else {
            return Ok(false);
        };
        // Restored requests go to the backend before anything the guest adds after the
        // migration.
        let mut used = self.resubmit(q, mem)?;
        used |= self.process_available(driver_features, q, mem)?;
        Ok(used && !q.interrupt_suppressed(mem))
    }

    fn poll(
        &mut self,
        _driver_features: u64,
        queues: &mut [SplitQueue],
        mem: &mut impl GuestMemory,
    ) -> Result<bool, BlkError> {
        let Some(q) = queues.first_mut() else {
            return Ok(false);
        };
        let mut used = self.resubmit(q, mem)?;
        used |= self.drain(q, mem)?;
        Ok(used && !q.interrupt_suppressed(mem))
    }

    fn reset(&mut self) {
        self.in_flight.clear();
        // Completions of forgotten requests are dropped as they arrive (unknown tags);
        // tags keep counting so no old completion can match a new request.
        while self.backend.poll_completion().is_some() {}
    }
}
