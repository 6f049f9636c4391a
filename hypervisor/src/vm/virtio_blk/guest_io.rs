//! Moving request bytes between guest buffers and the host: scatter a read's data, gather
//! a write's, and finish a request with its status byte and used-ring element.
//!
//! Every address here came out of a walked chain, so it was inside guest RAM when the
//! request was taken; the accesses are still checked, and a failure is a fatal driver
//! error (the guest changed its memory map under an in-flight request), never a crash.

use alloc::vec::Vec;

use super::blk_device::BlkError;
use super::request::GuestRange;
use crate::vm::virtio::guest_memory::GuestMemory;
use crate::vm::virtio::queue_error::QueueError;
use crate::vm::virtio::split_queue::SplitQueue;

/// Write the status byte and return the head with `written` data bytes plus the status.
pub fn complete(
    q: &mut SplitQueue,
    mem: &mut impl GuestMemory,
    head: u16,
    status_gpa: u64,
    status: u8,
    written: u32,
) -> Result<(), BlkError> {
    mem.write(status_gpa, &[status])
        .map_err(|access| QueueError::OutsideRam {
            what: "status byte",
            access,
        })?;
    q.push_used(mem, head, written.saturating_add(1))?;
    Ok(())
}

/// Copy `bytes` into the guest ranges, as far as they reach; returns the bytes written.
pub fn scatter(
    mem: &mut impl GuestMemory,
    ranges: &[GuestRange],
    bytes: &[u8],
) -> Result<u32, BlkError> {
    let mut done = 0usize;
    for r in ranges {
        if done == bytes.len() {
            break;
        }
        let n = (r.len as usize).min(bytes.len() - done);
        mem.write(r.gpa, &bytes[done..done + n])
            .map_err(|access| QueueError::OutsideRam {
                what: "read data buffer",
                access,
            })?;
        done += n;
    }
    // At most MAX_REQUEST_BYTES (or 20 for GET_ID).
    Ok(done as u32)
}

/// Read the guest ranges into one buffer; `None` when the host cannot allocate it.
pub fn gather(mem: &impl GuestMemory, ranges: &[GuestRange]) -> Result<Option<Vec<u8>>, BlkError> {
    let total: u64 = ranges.iter().map(|r| u64::from(r.len)).sum();
    let mut out = Vec::new();
    let Ok(total) = usize::try_from(total) else {
        return Ok(None);
    };
    if out.try_reserve_exact(total).is_err() {
        return Ok(None);
    }
    for r in ranges {
        let at = out.len();
        out.resize(at + r.len as usize, 0);
        mem.read(r.gpa, &mut out[at..])
            .map_err(|access| QueueError::OutsideRam {
                what: "write data buffer",
                access,
            })?;
    }
    Ok(Some(out))
}
