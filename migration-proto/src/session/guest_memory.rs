//! Where the destination puts incoming pages.
//!
//! Two ways, same checks: `DestinationSession::handle_input` decodes each run into a
//! `DestinationEvent::Pages` buffer that the caller copies into guest memory (simple, one
//! extra copy); `handle_input_into` decodes page by page straight into the caller's
//! `GuestMemory` (no allocation, no copy, and the page digest hashes the page where the VM
//! will read it: what the hypervisor's poll loop uses). Either way the session keeps a
//! bitmap of pages that may be non-zero, so a zero page that lands on a page still zero
//! from allocation costs nothing.

use alloc::vec::Vec;

use crate::dirty::DirtyBitmap;
use crate::page_codec::{PageEncoding, PageRunView, decode_page};
use crate::page_digest::PageDigestTable;
use crate::wire::PAGE_SIZE;

use super::SessionError;

/// The destination VM's memory, as the session sees it: page by page, because a VM's RAM is
/// a list of scattered host frames, not one slice. Memory must be zero-filled when the
/// session starts (as freshly allocated guest memory is); the page digest (version 3) or the
/// whole-memory digest catches any difference anyway.
pub trait GuestMemory {
    /// The 4 KiB page at `gpa` (page aligned), or `None` if it is not backed.
    fn page_mut(&mut self, gpa: u64) -> Option<&mut [u8]>;
}

impl GuestMemory for [u8] {
    fn page_mut(&mut self, gpa: u64) -> Option<&mut [u8]> {
        let start = usize::try_from(gpa).ok()?;
        self.get_mut(start..start.checked_add(PAGE_SIZE)?)
    }
}

impl GuestMemory for Vec<u8> {
    fn page_mut(&mut self, gpa: u64) -> Option<&mut [u8]> {
        self.as_mut_slice().page_mut(gpa)
    }
}

/// Applies a checked run to guest memory, or decodes it into a buffer for an event.
///
/// With a page digest (version 3) every page is hashed as it now stands: read back from
/// guest memory after the decoder wrote it, or from the event buffer the caller will copy.
pub(crate) fn apply_run<M: GuestMemory + ?Sized>(
    view: &PageRunView<'_>,
    maybe_nonzero: &mut DirtyBitmap,
    page_digest: Option<&mut PageDigestTable>,
    memory: Option<&mut M>,
    delta_scratch: &mut Vec<u8>,
    spare_buffers: &mut Vec<Vec<u8>>,
) -> Result<Option<Vec<u8>>, SessionError> {
    let first_pfn = (view.first_gpa() / PAGE_SIZE as u64) as usize;
    let frame_error = |e: crate::wire::DecodeError| SessionError::Frame(e.into());
    match memory {
        Some(memory) => {
            let mut page_digest = page_digest;
            for (index, (enc, stored)) in view.stored_pages().enumerate() {
                let gpa = view.first_gpa() + (index * PAGE_SIZE) as u64;
                let Some(target) = memory.page_mut(gpa) else {
                    return Err(SessionError::GuestMemoryUnavailable {
                        gpa,
                        len: PAGE_SIZE as u64,
                    });
                };
                if target.len() != PAGE_SIZE {
                    return Err(SessionError::GuestMemoryUnavailable {
                        gpa,
                        len: PAGE_SIZE as u64,
                    });
                }
                let pfn = first_pfn + index;
                let scratch = matches!(enc, PageEncoding::Delta(_)).then(|| {
                    delta_scratch.resize(PAGE_SIZE, 0);
                    &mut delta_scratch[..]
                });
                decode_page(index, enc, stored, target, scratch, |page| {
                    // Reading is cheaper than writing, and fresh guest memory is zero.
                    if maybe_nonzero.is_set(pfn) {
                        page.fill(0);
                        maybe_nonzero.clear(pfn);
                    }
                })
                .map_err(frame_error)?;
                if enc != PageEncoding::Zero {
                    maybe_nonzero.set(pfn);
                }
                if let Some(table) = page_digest.as_deref_mut() {
                    table.record(pfn, target);
                }
            }
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
            if let Some(table) = page_digest {
                table.record_run(first_pfn, &data);
            }
            Ok(Some(data))
        }
    }
}
