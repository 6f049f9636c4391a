//! Where the destination puts incoming pages.
//!
//! Two ways, same checks: `DestinationSession::handle_input` decodes each run into a
//! `DestinationEvent::Pages` buffer that the caller copies into guest memory (simple, one
//! extra copy); `handle_input_into` decodes straight into the caller's `GuestMemory` (no
//! allocation, no copy: what the hypervisor's poll loop uses). Either way the session keeps a
//! bitmap of pages that may be non-zero, so a zero page that lands on a page still zero
//! from allocation costs nothing.

use alloc::vec::Vec;

use crate::dirty::DirtyBitmap;
use crate::page_codec::{PageEncoding, PageRunView};
use crate::wire::PAGE_SIZE;

use super::SessionError;

/// The destination VM's memory, as the session sees it. Memory must be zero-filled when the
/// session starts (as freshly allocated guest memory is); the final digest check catches any
/// difference anyway.
pub trait GuestMemory {
    /// The bytes `[gpa, gpa + len)`, or `None` if they are not backed.
    fn slice_mut(&mut self, gpa: u64, len: usize) -> Option<&mut [u8]>;
}

impl GuestMemory for [u8] {
    fn slice_mut(&mut self, gpa: u64, len: usize) -> Option<&mut [u8]> {
        let start = usize::try_from(gpa).ok()?;
        self.get_mut(start..start.checked_add(len)?)
    }
}

impl GuestMemory for Vec<u8> {
    fn slice_mut(&mut self, gpa: u64, len: usize) -> Option<&mut [u8]> {
        self.as_mut_slice().slice_mut(gpa, len)
    }
}

/// Applies a checked run to guest memory, or decodes it into a buffer for an event.
pub(crate) fn apply_run<M: GuestMemory + ?Sized>(
    view: &PageRunView<'_>,
    maybe_nonzero: &mut DirtyBitmap,
    memory: Option<&mut M>,
    spare_buffers: &mut Vec<Vec<u8>>,
) -> Result<Option<Vec<u8>>, SessionError> {
    let first_pfn = (view.first_gpa() / PAGE_SIZE as u64) as usize;
    let frame_error = |e: crate::wire::DecodeError| SessionError::Frame(e.into());
    match memory {
        Some(memory) => {
            let len = view.byte_len();
            let Some(target) = memory.slice_mut(view.first_gpa(), len) else {
                return Err(SessionError::GuestMemoryUnavailable {
                    gpa: view.first_gpa(),
                    len: len as u64,
                });
            };
            view.decode_into_tracked(target, maybe_nonzero, first_pfn)
                .map_err(frame_error)?;
            Ok(None)
        }
        None => {
            // A recycled buffer avoids an allocation (and its page faults) per frame; every
            // byte is overwritten by the decoder.
            let mut data = spare_buffers.pop().unwrap_or_default();
            data.truncate(view.byte_len());
            data.resize(view.byte_len(), 0);
            view.decode_into(&mut data).map_err(frame_error)?;
            // The caller writes every page of `data`, zero pages included.
            for (i, encoding) in view.encodings().enumerate() {
                if encoding == PageEncoding::Zero {
                    maybe_nonzero.clear(first_pfn + i);
                } else {
                    maybe_nonzero.set(first_pfn + i);
                }
            }
            Ok(Some(data))
        }
    }
}
