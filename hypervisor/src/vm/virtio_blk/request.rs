//! Reading a virtio-blk request out of a descriptor chain (VIRTIO 1.2 5.2.6).
//!
//! A request is a 16-byte device-readable header `{ le32 type; le32 reserved; le64 sector }`,
//! data (device-readable for OUT and DISCARD, device-writable for IN and GET_ID) and a
//! one-byte device-writable status. The device must not depend on how the driver split
//! these over descriptors (2.6.4), so the chain is read as two byte streams: the header is
//! the first 16 readable bytes, the status the last writable byte, the data what lies
//! between. A chain that does not fit that shape is a framing error: the driver is broken
//! and the device needs a reset. A well-framed request that cannot be served (bad sector,
//! odd length, unknown type) is not a framing error; it completes with IOERR or UNSUPP.

use alloc::vec::Vec;
use core::fmt;

use crate::vm::virtio::descriptor_chain::{DescriptorChain, Segment};
use crate::vm::virtio::guest_memory::GuestMemory;
use crate::vm::virtio::queue_error::QueueError;

/// Request types (5.2.6).
pub mod request_type {
    /// Read sectors.
    pub const IN: u32 = 0;
    /// Write sectors.
    pub const OUT: u32 = 1;
    /// Flush the write cache.
    pub const FLUSH: u32 = 4;
    /// Read the device ID string.
    pub const GET_ID: u32 = 8;
    /// Discard sector ranges.
    pub const DISCARD: u32 = 11;
}

/// Status byte values (5.2.6).
pub mod status_byte {
    /// Success.
    pub const OK: u8 = 0;
    /// The request failed.
    pub const IOERR: u8 = 1;
    /// The request type or a flag is not supported.
    pub const UNSUPP: u8 = 2;
}

/// Size of the request header.
pub const HEADER_LEN: u64 = 16;

/// A contiguous piece of guest memory holding request data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRange {
    /// Guest-physical address.
    pub gpa: u64,
    /// Length in bytes (non-zero).
    pub len: u32,
}

/// A chain that is not a virtio-blk request: a driver bug, fatal for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The chain starts with a device-writable descriptor: the header must be readable.
    HeaderNotReadable {
        /// The head.
        head: u16,
    },
    /// Fewer than 16 device-readable bytes.
    HeaderTooShort {
        /// The head.
        head: u16,
        /// Readable bytes.
        readable: u64,
    },
    /// No device-writable byte for the status.
    StatusMissing {
        /// The head.
        head: u16,
    },
    /// An IN or GET_ID request with device-readable data after its header.
    DataNotWritable {
        /// The head.
        head: u16,
    },
    /// An OUT or DISCARD request with device-writable data before its status.
    DataNotReadable {
        /// The head.
        head: u16,
    },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderNotReadable { head } => write!(
                f,
                "request at head {head}: the header descriptor is device-writable"
            ),
            Self::HeaderTooShort { head, readable } => write!(
                f,
                "request at head {head}: {readable} readable bytes, the header needs 16"
            ),
            Self::StatusMissing { head } => {
                write!(f, "request at head {head}: no writable status byte")
            }
            Self::DataNotWritable { head } => write!(
                f,
                "request at head {head}: a read request with a device-readable data buffer"
            ),
            Self::DataNotReadable { head } => write!(
                f,
                "request at head {head}: a write request with a device-writable data buffer"
            ),
        }
    }
}

/// A framed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedRequest {
    /// The chain head.
    pub head: u16,
    /// The header's type field.
    pub request_type: u32,
    /// The header's sector field.
    pub sector: u64,
    /// The data buffers (readable or writable depending on the type).
    pub data: Vec<GuestRange>,
    /// Where the status byte goes.
    pub status_gpa: u64,
}

impl FramedRequest {
    /// Total data bytes.
    pub fn data_len(&self) -> u64 {
        self.data.iter().map(|r| u64::from(r.len)).sum()
    }
}

/// A framing error or a guest-memory failure while reading the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingFailure {
    /// The chain is not a request.
    Request(RequestError),
    /// The header could not be read.
    Queue(QueueError),
}

/// Frame the request in `chain`, reading its header from `mem`.
pub fn frame_request(
    mem: &impl GuestMemory,
    chain: &DescriptorChain,
) -> Result<FramedRequest, FramingFailure> {
    let head = chain.head;
    let fail = |e| Err(FramingFailure::Request(e));
    if chain.segments.first().is_none_or(|s| s.writable) {
        return fail(RequestError::HeaderNotReadable { head });
    }
    let readable: Vec<Segment> = chain
        .segments
        .iter()
        .copied()
        .filter(|s| !s.writable)
        .collect();
    let writable: Vec<Segment> = chain
        .segments
        .iter()
        .copied()
        .filter(|s| s.writable)
        .collect();
    let readable_len = chain.readable_len();
    let writable_len = chain.writable_len();
    if readable_len < HEADER_LEN {
        return fail(RequestError::HeaderTooShort {
            head,
            readable: readable_len,
        });
    }
    if writable_len == 0 {
        return fail(RequestError::StatusMissing { head });
    }
    let mut header = [0u8; HEADER_LEN as usize];
    let mut filled = 0usize;
    for r in slice_ranges(&readable, 0, HEADER_LEN) {
        let n = r.len as usize;
        mem.read(r.gpa, &mut header[filled..filled + n])
            .map_err(|access| {
                FramingFailure::Queue(QueueError::OutsideRam {
                    what: "request header",
                    access,
                })
            })?;
        filled += n;
    }
    let request_type = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let sector = u64::from_le_bytes([
        header[8], header[9], header[10], header[11], header[12], header[13], header[14],
        header[15],
    ]);
    let status = slice_ranges(&writable, writable_len - 1, 1);
    let status_gpa = status.first().map_or(0, |r| r.gpa);
    let data = match request_type {
        request_type::IN | request_type::GET_ID => {
            if readable_len != HEADER_LEN {
                return fail(RequestError::DataNotWritable { head });
            }
            slice_ranges(&writable, 0, writable_len - 1)
        }
        request_type::OUT | request_type::DISCARD => {
            if writable_len != 1 {
                return fail(RequestError::DataNotReadable { head });
            }
            slice_ranges(&readable, HEADER_LEN, readable_len - HEADER_LEN)
        }
        // FLUSH and unknown types carry no data the device looks at.
        _ => Vec::new(),
    };
    Ok(FramedRequest {
        head,
        request_type,
        sector,
        data,
        status_gpa,
    })
}

/// The guest ranges holding bytes `[offset, offset + len)` of the stream `segments`.
pub fn slice_ranges(segments: &[Segment], offset: u64, len: u64) -> Vec<GuestRange> {
    let mut out = Vec::new();
    let (mut skip, mut want) = (offset, len);
    for s in segments {
        if want == 0 {
            break;
        }
        let slen = u64::from(s.len);
        if skip >= slen {
            skip -= slen;
            continue;
        }
        let take = (slen - skip).min(want);
        // `take` is at most `s.len`, so it fits a u32, and `s.gpa + skip` cannot overflow:
        // the walk checked `gpa + len`.
        out.push(GuestRange {
            gpa: s.gpa + skip,
            len: take as u32,
        });
        want -= take;
        skip = 0;
    }
    out
}
