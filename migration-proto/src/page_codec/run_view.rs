//! Decoding side: a checked view of a `Pages` payload and its decoding into guest memory.

use alloc::vec;
use alloc::vec::Vec;

use lz4_flex::block::decompress_into;

use super::{PageCounts, PageEncoding, RUN_HEADER_LEN, check_run_shape, is_zero_page};
use crate::dirty::DirtyBitmap;
use crate::negotiation::Capabilities;
use crate::wire::{DecodeError, MAX_PAGES_PER_FRAME, PAGE_SIZE, Reader};

/// A checked view of a `Pages` payload: the descriptor table and data sizes are valid.
#[derive(Clone, Copy, Debug)]
pub struct PageRunView<'a> {
    first_gpa: u64,
    descriptors: &'a [u8],
    data: &'a [u8],
}

impl<'a> PageRunView<'a> {
    /// Checks the run header, every descriptor and the exact payload length.
    pub fn parse(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let first_gpa = r.u64("pages.first_gpa")?;
        let count = usize::from(r.u16("pages.page_count")?);
        if count == 0 || count > MAX_PAGES_PER_FRAME {
            return Err(DecodeError::InvalidValue {
                field: "pages.page_count",
                value: count as u64,
            });
        }
        let reserved = r.u16("pages.reserved")?;
        if reserved != 0 {
            return Err(DecodeError::InvalidValue {
                field: "pages.reserved",
                value: reserved.into(),
            });
        }
        if check_run_shape(first_gpa, count * PAGE_SIZE).is_err() {
            return Err(DecodeError::InvalidValue {
                field: "pages.first_gpa",
                value: first_gpa,
            });
        }
        let descriptors = r.bytes(2 * count, "pages.stored_len")?;
        let mut total = 0usize;
        for d in descriptors.as_chunks::<2>().0 {
            let descriptor = u16::from_le_bytes(*d);
            let Some(encoding) = PageEncoding::from_descriptor(descriptor) else {
                return Err(DecodeError::InvalidValue {
                    field: "pages.stored_len",
                    value: descriptor.into(),
                });
            };
            total += encoding.stored_len();
        }
        let data = r.bytes(total, "pages.data")?;
        r.finish()?;
        debug_assert_eq!(payload.len(), RUN_HEADER_LEN + 2 * count + total);
        Ok(PageRunView {
            first_gpa,
            descriptors,
            data,
        })
    }

    /// Guest-physical address of the first page.
    pub fn first_gpa(&self) -> u64 {
        self.first_gpa
    }

    /// Number of pages.
    pub fn page_count(&self) -> usize {
        self.descriptors.len() / 2
    }

    /// Bytes of guest memory the run covers.
    pub fn byte_len(&self) -> usize {
        self.page_count() * PAGE_SIZE
    }

    /// Encodings used, per page.
    pub fn encodings(&self) -> impl Iterator<Item = PageEncoding> + '_ {
        self.descriptors
            .as_chunks::<2>()
            .0
            .iter()
            // `parse` checked every descriptor.
            .map(|d| {
                PageEncoding::from_descriptor(u16::from_le_bytes(*d)).unwrap_or(PageEncoding::Raw)
            })
    }

    /// The optional capabilities the run's encodings need.
    pub fn required_capabilities(&self) -> Capabilities {
        self.encodings()
            .fold(Capabilities::NONE, |caps, e| match e {
                PageEncoding::Zero => caps.union(Capabilities::ZERO_PAGES),
                PageEncoding::Lz4(_) => caps.union(Capabilities::LZ4_PAGES),
                PageEncoding::Delta(_) => caps.union(Capabilities::DELTA_PAGES),
                PageEncoding::Raw => caps,
            })
    }

    /// Writes the decoded pages into `out`, which must be exactly `byte_len()` long.
    pub fn decode_into(&self, out: &mut [u8]) -> Result<PageCounts, DecodeError> {
        self.decode_pages(out, |_, page| {
            // Reading is cheaper than writing, and fresh guest memory is already zero.
            if !is_zero_page(page) {
                page.fill(0);
            }
        })
    }

    /// Like `decode_into`, for a destination that tracks which of its pages may be non-zero
    /// (`maybe_nonzero`, one bit per page of `out`'s guest memory, `first_pfn` = page number
    /// of `out[0]`; all clear for fresh, zeroed memory). A zero page landing on a page known
    /// to be zero costs nothing; every written page updates the bitmap.
    pub fn decode_into_tracked(
        &self,
        out: &mut [u8],
        maybe_nonzero: &mut DirtyBitmap,
        first_pfn: usize,
    ) -> Result<PageCounts, DecodeError> {
        let counts = self.decode_pages(out, |index, page| {
            if maybe_nonzero.is_set(first_pfn + index) {
                page.fill(0);
                maybe_nonzero.clear(first_pfn + index);
            }
        })?;
        for (index, enc) in self.encodings().enumerate() {
            if enc != PageEncoding::Zero {
                maybe_nonzero.set(first_pfn + index);
            }
        }
        Ok(counts)
    }

    /// Each page's encoding and stored bytes, in order (the lengths were checked by
    /// `parse`).
    pub fn stored_pages(&self) -> impl Iterator<Item = (PageEncoding, &'a [u8])> + 'a {
        let mut data = self.data;
        let descriptors = self.descriptors;
        descriptors.as_chunks::<2>().0.iter().map(move |d| {
            // `parse` checked every descriptor and the data length they add up to.
            let enc =
                PageEncoding::from_descriptor(u16::from_le_bytes(*d)).unwrap_or(PageEncoding::Raw);
            let (stored, rest) = data.split_at(enc.stored_len());
            data = rest;
            (enc, stored)
        })
    }

    fn decode_pages(
        &self,
        out: &mut [u8],
        mut zero: impl FnMut(usize, &mut [u8]),
    ) -> Result<PageCounts, DecodeError> {
        if out.len() != self.byte_len() {
            return Err(DecodeError::InvalidValue {
                field: "pages.output_len",
                value: out.len() as u64,
            });
        }
        let mut counts = PageCounts::default();
        for (i, ((enc, stored), page)) in self
            .stored_pages()
            .zip(out.chunks_exact_mut(PAGE_SIZE))
            .enumerate()
        {
            decode_page(i, enc, stored, page, None, |page| zero(i, page))?;
            counts.count(enc);
        }
        Ok(counts)
    }

    /// Decodes into a new buffer.
    pub fn decode(&self) -> Result<Vec<u8>, DecodeError> {
        let mut out = vec![0u8; self.byte_len()];
        self.decode_into(&mut out)?;
        Ok(out)
    }
}

/// Decodes one stored page (from `PageRunView::stored_pages`; `index` is its place in the
/// run, for errors) into `page` (one page long); a zero page calls `zero` instead of
/// writing, so the caller decides whether the target needs clearing. A delta page is
/// applied to what `page` holds (the destination's current copy), through `delta_scratch`
/// (one page); without one (decoding into a fresh buffer) it is refused.
pub(crate) fn decode_page(
    index: usize,
    enc: PageEncoding,
    stored: &[u8],
    page: &mut [u8],
    delta_scratch: Option<&mut [u8]>,
    zero: impl FnOnce(&mut [u8]),
) -> Result<(), DecodeError> {
    if page.len() != PAGE_SIZE {
        return Err(DecodeError::InvalidValue {
            field: "pages.output_len",
            value: page.len() as u64,
        });
    }
    match enc {
        PageEncoding::Zero => zero(page),
        PageEncoding::Raw => page.copy_from_slice(stored),
        PageEncoding::Lz4(_) => match decompress_into(stored, page) {
            Ok(PAGE_SIZE) => {}
            _ => return Err(DecodeError::BadCompressedPage { index }),
        },
        PageEncoding::Delta(_) => {
            let Some(delta) = delta_scratch.filter(|d| d.len() == PAGE_SIZE) else {
                return Err(DecodeError::InvalidValue {
                    field: "pages.delta_without_guest_memory",
                    value: index as u64,
                });
            };
            match decompress_into(stored, delta) {
                Ok(PAGE_SIZE) => super::delta::xor_into(page, delta),
                _ => return Err(DecodeError::BadCompressedPage { index }),
            }
        }
    }
    Ok(())
}
