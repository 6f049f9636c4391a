//! A request the device has taken from the queue and handed to the backend, and the rules
//! that decide whether a framed request goes to the backend at all (VIRTIO 1.2 5.2.6.2).
//!
//! An in-flight request holds only guest addresses, never data: a write's bytes are read
//! from guest memory when it is submitted, a read's bytes are written when it completes.
//! That keeps the saved state small and lets a destination host resubmit every request
//! that was in flight at the source (guest memory and disk arrive first).

use alloc::vec::Vec;

use super::backend::SECTOR_SIZE;
use super::config::{MAX_DISCARD_SEG, MAX_REQUEST_BYTES, SEG_MAX, blk_feature};
use super::request::{FramedRequest, GuestRange, request_type, status_byte};

/// What a backend-bound request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// VIRTIO_BLK_T_IN.
    Read,
    /// VIRTIO_BLK_T_OUT.
    Write,
    /// VIRTIO_BLK_T_FLUSH.
    Flush,
    /// VIRTIO_BLK_T_DISCARD.
    Discard,
}

impl RequestKind {
    /// Encoding in saved state.
    pub fn code(self) -> u8 {
        match self {
            Self::Read => 0,
            Self::Write => 1,
            Self::Flush => 2,
            Self::Discard => 3,
        }
    }

    /// Inverse of [`Self::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Read,
            1 => Self::Write,
            2 => Self::Flush,
            3 => Self::Discard,
            _ => return None,
        })
    }
}

/// A request owned by the device until it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// Tag of its backend operation.
    pub tag: u64,
    /// Chain head, returned in the used ring.
    pub head: u16,
    /// What it does.
    pub kind: RequestKind,
    /// First sector.
    pub sector: u64,
    /// Data buffers: written into for reads, read from for writes and discards.
    pub data: Vec<GuestRange>,
    /// Where its status byte goes.
    pub status_gpa: u64,
    /// Whether the current backend has it (false after a restore until resubmitted).
    pub submitted: bool,
}

impl InFlight {
    /// Total data bytes.
    pub fn data_len(&self) -> u64 {
        self.data.iter().map(|r| u64::from(r.len)).sum()
    }
}

/// What to do with a framed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Hand it to the backend.
    Backend(RequestKind),
    /// Answer GET_ID from the device itself.
    GetId,
    /// Complete it at once with this status byte.
    Refuse(u8),
}

/// Decide what a framed request becomes, given the disk and the negotiated features.
pub fn classify(
    req: &FramedRequest,
    capacity_sectors: u64,
    read_only: bool,
    driver_features: u64,
) -> Disposition {
    let len = req.data_len();
    // More data segments than seg_max is a driver bug (5.2.4); refusing it also bounds the
    // size of a saved in-flight request.
    if req.data.len() > SEG_MAX as usize {
        return Disposition::Refuse(status_byte::IOERR);
    }
    match req.request_type {
        request_type::IN | request_type::OUT => {
            let kind = if req.request_type == request_type::IN {
                RequestKind::Read
            } else {
                RequestKind::Write
            };
            if kind == RequestKind::Write && read_only {
                return Disposition::Refuse(status_byte::IOERR);
            }
            if !len.is_multiple_of(SECTOR_SIZE) || len > MAX_REQUEST_BYTES {
                return Disposition::Refuse(status_byte::IOERR);
            }
            if !sectors_in_disk(req.sector, len / SECTOR_SIZE, capacity_sectors) {
                return Disposition::Refuse(status_byte::IOERR);
            }
            Disposition::Backend(kind)
        }
        request_type::FLUSH => Disposition::Backend(RequestKind::Flush),
        request_type::GET_ID => Disposition::GetId,
        request_type::DISCARD => {
            if driver_features & blk_feature::DISCARD == 0 {
                return Disposition::Refuse(status_byte::UNSUPP);
            }
            if read_only {
                return Disposition::Refuse(status_byte::IOERR);
            }
            let segments = len / DISCARD_SEGMENT_LEN;
            if len == 0
                || !len.is_multiple_of(DISCARD_SEGMENT_LEN)
                || segments > u64::from(MAX_DISCARD_SEG)
            {
                return Disposition::Refuse(status_byte::IOERR);
            }
            Disposition::Backend(RequestKind::Discard)
        }
        _ => Disposition::Refuse(status_byte::UNSUPP),
    }
}

/// Size of one `struct virtio_blk_discard_write_zeroes` (5.2.6).
pub const DISCARD_SEGMENT_LEN: u64 = 16;

/// Whether `count` sectors from `sector` lie inside a disk of `capacity` sectors.
pub fn sectors_in_disk(sector: u64, count: u64, capacity: u64) -> bool {
    sector.checked_add(count).is_some_and(|end| end <= capacity)
}
