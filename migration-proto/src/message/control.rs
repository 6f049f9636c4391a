//! The remaining messages: round statistics, device and disk state, the memory digest,
//! progress, and abort.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::digest::Digest;
use crate::wire::{DecodeError, Reader, Writer};

/// Longest device identifier.
pub const MAX_DEVICE_ID_LEN: usize = 64;
/// Largest device state blob (fits one frame with room for the header fields).
pub const MAX_DEVICE_STATE_LEN: usize = 1024 * 1024 - 1024;
/// Largest disk block run in one message.
pub const MAX_DISK_RUN_LEN: usize = 256 * 1024;
/// Longest abort detail text.
pub const MAX_ABORT_DETAIL_LEN: usize = 512;

/// Source -> destination at the end of a pre-copy round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Round number, from 0.
    pub round: u32,
    /// Pages sent in the round.
    pub pages_sent: u64,
    /// Of which zero pages.
    pub zero_pages: u64,
    /// Of which LZ4 pages.
    pub lz4_pages: u64,
    /// Of which raw pages.
    pub raw_pages: u64,
    /// Payload bytes of the round's `Pages` frames.
    pub payload_bytes: u64,
    /// Pages dirtied during the round (to send in the next one).
    pub dirty_pages_remaining: u64,
    /// Round duration in microseconds (by the source's clock).
    pub duration_us: u64,
}

impl RoundStats {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.round);
        for v in [
            self.pages_sent,
            self.zero_pages,
            self.lz4_pages,
            self.raw_pages,
            self.payload_bytes,
            self.dirty_pages_remaining,
            self.duration_us,
        ] {
            w.u64(v);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let s = RoundStats {
            round: r.u32("round.round")?,
            pages_sent: r.u64("round.pages_sent")?,
            zero_pages: r.u64("round.zero_pages")?,
            lz4_pages: r.u64("round.lz4_pages")?,
            raw_pages: r.u64("round.raw_pages")?,
            payload_bytes: r.u64("round.payload_bytes")?,
            dirty_pages_remaining: r.u64("round.dirty_pages_remaining")?,
            duration_us: r.u64("round.duration_us")?,
        };
        let sum = s
            .zero_pages
            .checked_add(s.lz4_pages)
            .and_then(|v| v.checked_add(s.raw_pages));
        if sum != Some(s.pages_sent) {
            return Err(DecodeError::InvalidValue {
                field: "round.pages_sent",
                value: s.pages_sent,
            });
        }
        Ok(s)
    }
}

/// Opaque state of one device model, tagged with the model's own state version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceState {
    /// Device identifier (e.g. `com1`, `virtio-net0`), unique within the VM.
    pub id: String,
    /// Version of the device's state format; the destination model decides what it accepts.
    pub version: u32,
    /// The serialized state.
    pub data: Vec<u8>,
}

impl DeviceState {
    /// Checks the field rules the decoder enforces.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.id.is_empty() || self.id.len() > MAX_DEVICE_ID_LEN {
            return Err(DecodeError::TooLong {
                field: "device.id",
                len: self.id.len(),
                max: MAX_DEVICE_ID_LEN,
            });
        }
        if self.data.len() > MAX_DEVICE_STATE_LEN {
            return Err(DecodeError::TooLong {
                field: "device.data",
                len: self.data.len(),
                max: MAX_DEVICE_STATE_LEN,
            });
        }
        Ok(())
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.text16(&self.id);
        w.u32(self.version);
        w.blob32(&self.data);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let s = DeviceState {
            id: r.text16("device.id", MAX_DEVICE_ID_LEN)?,
            version: r.u32("device.version")?,
            data: r.blob32("device.data", MAX_DEVICE_STATE_LEN)?.to_vec(),
        };
        s.validate()?;
        Ok(s)
    }
}

/// A run of consecutive blocks of one virtual disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskBlocks {
    /// Disk number within the VM.
    pub disk_id: u32,
    /// First logical block address.
    pub first_lba: u64,
    /// Block size: 512 or 4096.
    pub block_size: u32,
    /// Block contents (a whole, non-zero number of blocks, at most `MAX_DISK_RUN_LEN`).
    pub data: Vec<u8>,
}

impl DiskBlocks {
    /// Checks the field rules the decoder enforces.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.block_size != 512 && self.block_size != 4096 {
            return Err(DecodeError::InvalidValue {
                field: "disk.block_size",
                value: self.block_size.into(),
            });
        }
        let len = self.data.len();
        if len > MAX_DISK_RUN_LEN {
            return Err(DecodeError::TooLong {
                field: "disk.data",
                len,
                max: MAX_DISK_RUN_LEN,
            });
        }
        if len == 0 || !len.is_multiple_of(self.block_size as usize) {
            return Err(DecodeError::InvalidValue {
                field: "disk.data_len",
                value: len as u64,
            });
        }
        let blocks = (len / self.block_size as usize) as u64;
        if self.first_lba.checked_add(blocks).is_none() {
            return Err(DecodeError::InvalidValue {
                field: "disk.first_lba",
                value: self.first_lba,
            });
        }
        Ok(())
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.disk_id);
        w.u64(self.first_lba);
        w.u32(self.block_size);
        w.blob32(&self.data);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let s = DiskBlocks {
            disk_id: r.u32("disk.disk_id")?,
            first_lba: r.u64("disk.first_lba")?,
            block_size: r.u32("disk.block_size")?,
            data: r.blob32("disk.data", MAX_DISK_RUN_LEN)?.to_vec(),
        };
        s.validate()?;
        Ok(s)
    }
}

/// Source -> destination: the digest of the source's memory after the final round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryDigestMessage {
    /// Memory size the digest covers (must equal the offered VM's size).
    pub memory_bytes: u64,
    /// `digest::digest_memory` of the source memory.
    pub digest: Digest,
}

impl MemoryDigestMessage {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u64(self.memory_bytes);
        w.bytes(&self.digest);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MemoryDigestMessage {
            memory_bytes: r.u64("digest.memory_bytes")?,
            digest: r.array("digest.digest")?,
        })
    }
}

/// Source -> destination (version 3): the page-digest accumulator of the source, sent with
/// `Commit` (see `page_digest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageDigestMessage {
    /// Memory size the accumulator covers (must equal the offered VM's size).
    pub memory_bytes: u64,
    /// Sum of the page hashes modulo 2^128, little-endian.
    pub accumulator: crate::page_digest::Accumulator,
}

impl PageDigestMessage {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u64(self.memory_bytes);
        w.bytes(&self.accumulator);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PageDigestMessage {
            memory_bytes: r.u64("page_digest.memory_bytes")?,
            accumulator: r.array("page_digest.accumulator")?,
        })
    }
}

/// Source -> destination: what `info migrate` shows, mirrored to the destination console.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Current round.
    pub round: u32,
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// Bytes estimated remaining.
    pub bytes_remaining: u64,
    /// Pages dirtied per second.
    pub dirty_pages_per_sec: u64,
    /// Measured throughput.
    pub throughput_bytes_per_sec: u64,
    /// Expected downtime if switching over now.
    pub expected_downtime_us: u64,
}

impl Progress {
    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.round);
        for v in [
            self.bytes_sent,
            self.bytes_remaining,
            self.dirty_pages_per_sec,
            self.throughput_bytes_per_sec,
            self.expected_downtime_us,
        ] {
            w.u64(v);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Progress {
            round: r.u32("progress.round")?,
            bytes_sent: r.u64("progress.bytes_sent")?,
            bytes_remaining: r.u64("progress.bytes_remaining")?,
            dirty_pages_per_sec: r.u64("progress.dirty_pages_per_sec")?,
            throughput_bytes_per_sec: r.u64("progress.throughput_bytes_per_sec")?,
            expected_downtime_us: r.u64("progress.expected_downtime_us")?,
        })
    }
}

/// Why a side aborted. Codes are stable wire values; an unknown code is kept as `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// No more specific reason.
    Unspecified,
    /// No common protocol version.
    UnsupportedVersion,
    /// Key proof failed.
    AuthenticationFailed,
    /// A required capability is not available.
    MissingCapability,
    /// The CPU descriptor is not compatible with the destination.
    CpuIncompatible,
    /// The destination's operator or policy refused the VM.
    Rejected,
    /// A message arrived out of order or broke a session rule.
    ProtocolViolation,
    /// A frame failed to parse or authenticate.
    BadFrame,
    /// The destination's memory digest differs from the source's.
    DigestMismatch,
    /// The peer stayed silent too long.
    Timeout,
    /// Not enough resources (memory) for the VM.
    ResourceExhausted,
    /// A local failure on the aborting side.
    Internal,
    /// A code this implementation does not know.
    Other(u16),
}

impl AbortReason {
    /// Wire code.
    pub fn code(self) -> u16 {
        match self {
            AbortReason::Unspecified => 0,
            AbortReason::UnsupportedVersion => 1,
            AbortReason::AuthenticationFailed => 2,
            AbortReason::MissingCapability => 3,
            AbortReason::CpuIncompatible => 4,
            AbortReason::Rejected => 5,
            AbortReason::ProtocolViolation => 6,
            AbortReason::BadFrame => 7,
            AbortReason::DigestMismatch => 8,
            AbortReason::Timeout => 9,
            AbortReason::ResourceExhausted => 10,
            AbortReason::Internal => 11,
            AbortReason::Other(c) => c,
        }
    }

    /// From a wire code.
    pub fn from_code(code: u16) -> Self {
        match code {
            0 => AbortReason::Unspecified,
            1 => AbortReason::UnsupportedVersion,
            2 => AbortReason::AuthenticationFailed,
            3 => AbortReason::MissingCapability,
            4 => AbortReason::CpuIncompatible,
            5 => AbortReason::Rejected,
            6 => AbortReason::ProtocolViolation,
            7 => AbortReason::BadFrame,
            8 => AbortReason::DigestMismatch,
            9 => AbortReason::Timeout,
            10 => AbortReason::ResourceExhausted,
            11 => AbortReason::Internal,
            c => AbortReason::Other(c),
        }
    }
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortReason::Other(c) => write!(f, "reason code {c}"),
            r => fmt::Debug::fmt(r, f),
        }
    }
}

/// Either direction: the session is over, with a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Abort {
    /// Reason.
    pub reason: AbortReason,
    /// Human-readable detail (at most `MAX_ABORT_DETAIL_LEN` bytes).
    pub detail: String,
}

impl Abort {
    /// An abort, with the detail cut at a character boundary to fit the limit.
    pub fn new(reason: AbortReason, detail: &str) -> Self {
        let mut end = detail.len().min(MAX_ABORT_DETAIL_LEN);
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        Abort {
            reason,
            detail: String::from(&detail[..end]),
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u16(self.reason.code());
        w.text16(&self.detail);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Abort {
            reason: AbortReason::from_code(r.u16("abort.reason")?),
            detail: r.text16("abort.detail", MAX_ABORT_DETAIL_LEN)?,
        })
    }
}
