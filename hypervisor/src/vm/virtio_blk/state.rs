//! Save and restore of a virtio-blk device on virtio-mmio for live migration.
//!
//! [`BlkState`] is everything a destination needs to continue exactly where the source
//! stopped: negotiated features and status, every queue's addresses, size and indices,
//! the interrupt and config-generation registers, the broken flag, and the requests in
//! flight (as guest addresses; the destination resubmits them to its own backend at its
//! first poll, after guest memory and disk contents have arrived). Disk contents are not
//! part of it: they travel as `DiskBlocks` messages.
//!
//! Byte layout (little-endian), version 1, carried as a migration `DeviceState` with
//! `version = 1`:
//!
//! ```text
//! 4 magic "VBLK"   2 version   8 capacity (sectors)   4 block size   8 offered features
//! transport registers (virtio::mmio_state)
//! 8 next tag   2 in-flight count n
//! n * { 8 tag  2 head  1 kind  8 sector  8 status gpa  2 range count m  m * { 8 gpa  4 len } }
//! ```
//!
//! A peer controls these bytes, so [`restore`](BlkState) checks every field against the
//! destination's device (same disk size, block size and offered features; a transport
//! state a real driver could have produced; in-flight heads unique, inside the queue, and
//! exactly as many as the queue's indices say; data ranges non-empty, not wrapping and
//! within the request limits) and applies nothing unless all of it is valid.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use migration_proto::message::DeviceState;
use migration_proto::wire::{DecodeError, Reader, Writer};

use super::backend::{BlockBackend, SECTOR_SIZE};
use super::blk_device::VirtioBlk;
use super::config::{MAX_DISCARD_SEG, MAX_REQUEST_BYTES, QUEUE_SIZE_MAX, SEG_MAX};
use super::in_flight::{DISCARD_SEGMENT_LEN, InFlight, RequestKind, sectors_in_disk};
use super::request::GuestRange;
use crate::vm::virtio::device::{VirtioDevice, status};
use crate::vm::virtio::mmio::{TransportRegisters, VirtioMmio};
use crate::vm::virtio::mmio_state::{decode_registers, encode_registers};

const MAGIC: [u8; 4] = *b"VBLK";
/// Current encoding version (also the `DeviceState::version`).
pub const STATE_VERSION: u16 = 1;
/// Most data ranges one saved request may hold: requests with more are refused (IOERR)
/// before they reach the backend. With a full queue this keeps the encoding well below the
/// protocol's `MAX_DEVICE_STATE_LEN`.
pub const MAX_SAVED_RANGES: usize = SEG_MAX as usize;

/// Why a saved virtio-blk state was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// The state does not start with "VBLK".
    BadMagic,
    /// An encoding version this build does not know.
    UnsupportedVersion(u32),
    /// A field is missing, too long or has an impossible value.
    Decode(DecodeError),
    /// The source's disk differs from this one.
    DiskMismatch {
        /// Which property.
        what: &'static str,
        /// The source's value.
        saved: u64,
        /// This device's value.
        here: u64,
    },
    /// The transport registers are inconsistent.
    Transport(&'static str),
    /// An in-flight request is inconsistent.
    InFlight(&'static str),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic => write!(f, "virtio-blk state has a bad magic (expected \"VBLK\")"),
            Self::UnsupportedVersion(v) => {
                write!(f, "virtio-blk state version {v} is not supported")
            }
            Self::Decode(e) => write!(f, "virtio-blk state: {e}"),
            Self::DiskMismatch { what, saved, here } => write!(
                f,
                "virtio-blk state: the source disk's {what} is {saved}, this disk's is {here}"
            ),
            Self::Transport(m) => write!(f, "virtio-blk state: transport: {m}"),
            Self::InFlight(m) => write!(f, "virtio-blk state: in-flight request: {m}"),
        }
    }
}

impl From<DecodeError> for RestoreError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

/// The migratable state of a virtio-blk device on virtio-mmio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlkState {
    /// Disk size in sectors.
    pub capacity_sectors: u64,
    /// Disk block size.
    pub block_size: u32,
    /// Features the source device offered.
    pub device_features: u64,
    /// Transport registers and queues.
    pub transport: TransportRegisters,
    /// Next backend tag.
    pub next_tag: u64,
    /// Requests in flight (`submitted` is not saved).
    pub in_flight: Vec<InFlight>,
}

impl BlkState {
    /// The byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.bytes(&MAGIC);
        w.u16(STATE_VERSION);
        w.u64(self.capacity_sectors);
        w.u32(self.block_size);
        w.u64(self.device_features);
        encode_registers(&self.transport, &mut w);
        w.u64(self.next_tag);
        w.count16(self.in_flight.len());
        for r in &self.in_flight {
            w.u64(r.tag);
            w.u16(r.head);
            w.u8(r.kind.code());
            w.u64(r.sector);
            w.u64(r.status_gpa);
            w.count16(r.data.len());
            for d in &r.data {
                w.u64(d.gpa);
                w.u32(d.len);
            }
        }
        out
    }

    /// Parse [`Self::encode`] output (shape only; [`VirtioMmio::restore`] checks meaning).
    pub fn decode(bytes: &[u8]) -> Result<Self, RestoreError> {
        let mut r = Reader::new(bytes);
        if r.array::<4>("blk.magic")? != MAGIC {
            return Err(RestoreError::BadMagic);
        }
        let version = r.u16("blk.version")?;
        if version != STATE_VERSION {
            return Err(RestoreError::UnsupportedVersion(version.into()));
        }
        let capacity_sectors = r.u64("blk.capacity")?;
        let block_size = r.u32("blk.block_size")?;
        let device_features = r.u64("blk.device_features")?;
        let transport = decode_registers(&mut r)?;
        let next_tag = r.u64("blk.next_tag")?;
        let count = usize::from(r.u16("blk.in_flight_count")?);
        if count > usize::from(QUEUE_SIZE_MAX) {
            return Err(DecodeError::TooLong {
                field: "blk.in_flight",
                len: count,
                max: QUEUE_SIZE_MAX.into(),
            }
            .into());
        }
        let mut in_flight = Vec::with_capacity(count);
        for _ in 0..count {
            let tag = r.u64("blk.req.tag")?;
            let head = r.u16("blk.req.head")?;
            let code = r.u8("blk.req.kind")?;
            let kind = RequestKind::from_code(code).ok_or(DecodeError::InvalidValue {
                field: "blk.req.kind",
                value: code.into(),
            })?;
            let sector = r.u64("blk.req.sector")?;
            let status_gpa = r.u64("blk.req.status_gpa")?;
            let ranges = usize::from(r.u16("blk.req.range_count")?);
            if ranges > MAX_SAVED_RANGES {
                return Err(DecodeError::TooLong {
                    field: "blk.req.ranges",
                    len: ranges,
                    max: MAX_SAVED_RANGES,
                }
                .into());
            }
            let mut data = Vec::with_capacity(ranges);
            for _ in 0..ranges {
                data.push(GuestRange {
                    gpa: r.u64("blk.req.range.gpa")?,
                    len: r.u32("blk.req.range.len")?,
                });
            }
            in_flight.push(InFlight {
                tag,
                head,
                kind,
                sector,
                data,
                status_gpa,
                submitted: false,
            });
        }
        if r.remaining() != 0 {
            return Err(DecodeError::TrailingBytes {
                count: r.remaining(),
            }
            .into());
        }
        Ok(Self {
            capacity_sectors,
            block_size,
            device_features,
            transport,
            next_tag,
            in_flight,
        })
    }
}

impl<B: BlockBackend> VirtioMmio<VirtioBlk<B>> {
    /// Snapshot the device for migration.
    pub fn save(&self) -> BlkState {
        let dev = self.device();
        BlkState {
            capacity_sectors: dev.backend().capacity_sectors(),
            block_size: dev.backend().block_size(),
            device_features: dev.device_features(),
            transport: self.registers().clone(),
            next_tag: dev.next_tag(),
            in_flight: dev.in_flight().to_vec(),
        }
    }

    /// Continue from `state` (an incoming migration). Everything is checked first; on an
    /// error nothing changes. Restored requests are resubmitted at the next poll.
    pub fn restore(&mut self, state: BlkState) -> Result<(), RestoreError> {
        let dev = self.device();
        let here = [
            (
                "capacity",
                state.capacity_sectors,
                dev.backend().capacity_sectors(),
            ),
            (
                "block size",
                state.block_size.into(),
                dev.backend().block_size().into(),
            ),
            (
                "offered features",
                state.device_features,
                dev.device_features(),
            ),
        ];
        for (what, saved, here) in here {
            if saved != here {
                return Err(RestoreError::DiskMismatch { what, saved, here });
            }
        }
        self.check_registers(&state.transport)
            .map_err(RestoreError::Transport)?;
        check_in_flight(&state)?;
        self.device_mut().reset();
        let mut requests = state.in_flight;
        for r in &mut requests {
            r.submitted = false;
        }
        self.device_mut().set_in_flight(requests, state.next_tag);
        self.set_registers(state.transport);
        Ok(())
    }

    /// The state as a migration-protocol `DeviceState` named `id` (e.g. `vda`).
    pub fn device_state(&self, id: &str) -> DeviceState {
        DeviceState {
            id: String::from(id),
            version: STATE_VERSION.into(),
            data: self.save().encode(),
        }
    }

    /// Restore from a migration-protocol `DeviceState`.
    pub fn restore_device_state(&mut self, state: &DeviceState) -> Result<(), RestoreError> {
        if state.version != u32::from(STATE_VERSION) {
            return Err(RestoreError::UnsupportedVersion(state.version));
        }
        self.restore(BlkState::decode(&state.data)?)
    }
}

fn check_in_flight(state: &BlkState) -> Result<(), RestoreError> {
    let err = |m| Err(RestoreError::InFlight(m));
    let Some(queue) = state.transport.queues.first() else {
        return err("the device has no queue");
    };
    // A working device owns exactly the heads between used and available index. A broken
    // one may also have taken the head that broke it, which is never in flight.
    let owned = usize::from(queue.in_flight());
    let count = state.in_flight.len();
    if count > owned || (count != owned && !state.transport.needs_reset) {
        return err("the count differs from the queue's available and used indices");
    }
    if count > 0 && state.transport.status & status::DRIVER_OK == 0 {
        return err("requests in flight before the driver set DRIVER_OK");
    }
    for (i, r) in state.in_flight.iter().enumerate() {
        if r.head >= queue.size {
            return err("head outside the queue");
        }
        if r.tag >= state.next_tag {
            return err("tag not below the next tag");
        }
        let later = &state.in_flight[i + 1..];
        if later.iter().any(|o| o.head == r.head || o.tag == r.tag) {
            return err("two requests share a head or a tag");
        }
        let mut total = 0u64;
        for d in &r.data {
            if d.len == 0 || d.gpa.checked_add(u64::from(d.len)).is_none() {
                return err("an empty or wrapping data range");
            }
            total += u64::from(d.len);
        }
        let ok = match r.kind {
            RequestKind::Read | RequestKind::Write => {
                total <= MAX_REQUEST_BYTES
                    && total.is_multiple_of(SECTOR_SIZE)
                    && sectors_in_disk(r.sector, total / SECTOR_SIZE, state.capacity_sectors)
            }
            RequestKind::Flush => r.data.is_empty(),
            RequestKind::Discard => {
                total > 0
                    && total.is_multiple_of(DISCARD_SEGMENT_LEN)
                    && total <= DISCARD_SEGMENT_LEN * u64::from(MAX_DISCARD_SEG)
            }
        };
        if !ok {
            return err("data length or sector range not valid for its kind");
        }
    }
    Ok(())
}
