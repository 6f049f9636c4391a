//! Page codec: turns a run of consecutive guest pages into the payload of a `Pages`
//! message, and back.
//!
//! ```text
//! first_gpa   u64   guest-physical address of the first page (4 KiB aligned)
//! page_count  u16   1 ..= MAX_PAGES_PER_FRAME
//! reserved    u16   0
//! stored_len  u16 x page_count
//!               0        zero page, no data      (needs ZERO_PAGES)
//!               1..4095  LZ4 block of that size  (needs LZ4_PAGES)
//!               4096     raw page
//! data        the stored bytes of every page, in order, nothing after
//! ```
//!
//! Why this shape: one descriptor table up front lets the decoder check the whole run (every
//! length, the exact payload size) before writing a byte of guest memory, and the stored
//! length alone says how a page is encoded. LZ4 is only kept when strictly smaller than the
//! page. A cheap sampling test skips the LZ4 attempt on pages that look random, which is what
//! keeps raw-page throughput close to memcpy.

use alloc::vec;
use alloc::vec::Vec;

use lz4_flex::block::{CompressTable, compress_into_with_table, decompress_into};

use crate::dirty::DirtyBitmap;
use crate::negotiation::Capabilities;
use crate::wire::{DecodeError, MAX_PAGES_PER_FRAME, PAGE_SIZE, Reader, Writer};

const RUN_HEADER_LEN: usize = 12;
const PAGE_LEN_U16: u16 = PAGE_SIZE as u16;

/// How one page was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageEncoding {
    /// All zero; no data on the wire.
    Zero,
    /// LZ4 block of the given length (< one page).
    Lz4(u16),
    /// The page as is.
    Raw,
}

/// Counts of the encodings used for a run (and, summed, for a round).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// Zero pages.
    pub zero: u64,
    /// LZ4-compressed pages.
    pub lz4: u64,
    /// Raw pages.
    pub raw: u64,
}

impl PageCounts {
    /// Total pages.
    pub fn total(&self) -> u64 {
        self.zero + self.lz4 + self.raw
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: PageCounts) {
        self.zero += other.zero;
        self.lz4 += other.lz4;
        self.raw += other.raw;
    }
}

/// Whether a page is all zero. ORs 512-byte blocks as words without branching (the compiler
/// turns this into wide vector ORs) and stops at the first non-zero block.
pub fn is_zero_page(page: &[u8]) -> bool {
    let (blocks, tail) = page.as_chunks::<512>();
    for block in blocks {
        let (words, _) = block.as_chunks::<8>();
        let mut acc = [0u64; 8];
        for lane in words.chunks_exact(8) {
            for (a, w) in acc.iter_mut().zip(lane) {
                *a |= u64::from_ne_bytes(*w);
            }
        }
        if acc.iter().fold(0, |x, a| x | a) != 0 {
            return false;
        }
    }
    tail.iter().all(|b| *b == 0)
}

/// Sampling test: 16 samples of 8 bytes spread over the page; if they hold more than 72
/// distinct byte values the page is almost surely incompressible (random or encrypted data
/// gives about 100 of 128, text and code give 20 to 60), and LZ4 is not tried.
pub fn looks_incompressible(page: &[u8]) -> bool {
    let mut seen = [0u64; 4];
    let stride = (page.len() / 16).max(8);
    let mut distinct = 0u32;
    for start in (0..page.len().saturating_sub(7)).step_by(stride) {
        for &b in &page[start..start + 8] {
            let (word, bit) = (usize::from(b >> 6), b & 63);
            if seen[word] & (1 << bit) == 0 {
                seen[word] |= 1 << bit;
                distinct += 1;
            }
        }
    }
    distinct > 72
}

/// Encoder state reused across runs (LZ4 hash table and output scratch).
pub struct PageEncoder {
    table: CompressTable,
    scratch: Vec<u8>,
}

impl Default for PageEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl PageEncoder {
    /// A fresh encoder.
    pub fn new() -> Self {
        PageEncoder {
            table: CompressTable::small(),
            scratch: vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)],
        }
    }

    /// Encodes one page, appending its stored bytes to `data`.
    pub fn encode_page(
        &mut self,
        page: &[u8],
        caps: Capabilities,
        data: &mut Vec<u8>,
    ) -> PageEncoding {
        if caps.contains(Capabilities::ZERO_PAGES) && is_zero_page(page) {
            return PageEncoding::Zero;
        }
        if caps.contains(Capabilities::LZ4_PAGES)
            && !looks_incompressible(page)
            && let Ok(len) = compress_into_with_table(page, &mut self.scratch, &mut self.table)
            && len < PAGE_SIZE
        {
            data.extend_from_slice(&self.scratch[..len]);
            // len < PAGE_SIZE fits u16.
            return PageEncoding::Lz4(len as u16);
        }
        data.extend_from_slice(page);
        PageEncoding::Raw
    }

    /// Appends the `Pages` payload for `pages` (a whole number of pages, at most
    /// `MAX_PAGES_PER_FRAME`) starting at `first_gpa`.
    pub fn encode_run(
        &mut self,
        first_gpa: u64,
        pages: &[u8],
        caps: Capabilities,
        out: &mut Vec<u8>,
    ) -> Result<PageCounts, PageRunError> {
        check_run_shape(first_gpa, pages.len())?;
        let count = pages.len() / PAGE_SIZE;
        let start = out.len();
        let mut w = Writer::new(out);
        w.u64(first_gpa);
        w.u16(count as u16);
        w.u16(0);
        let desc_at = out.len();
        out.resize(desc_at + 2 * count, 0);
        let mut counts = PageCounts::default();
        for (i, page) in pages.chunks_exact(PAGE_SIZE).enumerate() {
            let stored = match self.encode_page(page, caps, out) {
                PageEncoding::Zero => {
                    counts.zero += 1;
                    0
                }
                PageEncoding::Lz4(len) => {
                    counts.lz4 += 1;
                    len
                }
                PageEncoding::Raw => {
                    counts.raw += 1;
                    PAGE_LEN_U16
                }
            };
            out[desc_at + 2 * i..desc_at + 2 * i + 2].copy_from_slice(&stored.to_le_bytes());
        }
        debug_assert!(out.len() > start);
        Ok(counts)
    }
}

/// Why a run handed to the encoder cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageRunError {
    /// `first_gpa` is not 4 KiB aligned.
    Unaligned(u64),
    /// The data is empty or not a whole number of pages.
    NotWholePages(usize),
    /// More pages than fit one frame.
    TooManyPages(usize),
    /// The run wraps past the end of the 64-bit address space.
    AddressOverflow,
}

impl core::fmt::Display for PageRunError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PageRunError::Unaligned(gpa) => write!(f, "guest address {gpa:#x} is not page aligned"),
            PageRunError::NotWholePages(len) => {
                write!(f, "{len} bytes is not a non-empty whole number of pages")
            }
            PageRunError::TooManyPages(n) => {
                write!(f, "{n} pages in one run, at most {MAX_PAGES_PER_FRAME}")
            }
            PageRunError::AddressOverflow => write!(f, "page run overflows the address space"),
        }
    }
}

/// Checks that a run can be one `Pages` message (alignment, whole pages, size, no wrap).
pub fn check_run_shape(first_gpa: u64, len: usize) -> Result<(), PageRunError> {
    if !first_gpa.is_multiple_of(PAGE_SIZE as u64) {
        return Err(PageRunError::Unaligned(first_gpa));
    }
    if len == 0 || !len.is_multiple_of(PAGE_SIZE) {
        return Err(PageRunError::NotWholePages(len));
    }
    if len / PAGE_SIZE > MAX_PAGES_PER_FRAME {
        return Err(PageRunError::TooManyPages(len / PAGE_SIZE));
    }
    first_gpa
        .checked_add(len as u64)
        .ok_or(PageRunError::AddressOverflow)?;
    Ok(())
}

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
            let len = u16::from_le_bytes(*d);
            if len > PAGE_LEN_U16 {
                return Err(DecodeError::InvalidValue {
                    field: "pages.stored_len",
                    value: len.into(),
                });
            }
            total += usize::from(len);
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
            .map(|d| match u16::from_le_bytes(*d) {
                0 => PageEncoding::Zero,
                PAGE_LEN_U16 => PageEncoding::Raw,
                n => PageEncoding::Lz4(n),
            })
    }

    /// The optional capabilities the run's encodings need.
    pub fn required_capabilities(&self) -> Capabilities {
        self.encodings()
            .fold(Capabilities::NONE, |caps, e| match e {
                PageEncoding::Zero => caps.union(Capabilities::ZERO_PAGES),
                PageEncoding::Lz4(_) => caps.union(Capabilities::LZ4_PAGES),
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
        let mut data = self.data;
        for (i, (enc, page)) in self
            .encodings()
            .zip(out.chunks_exact_mut(PAGE_SIZE))
            .enumerate()
        {
            match enc {
                PageEncoding::Zero => {
                    zero(i, page);
                    counts.zero += 1;
                }
                PageEncoding::Raw => {
                    let (stored, rest) = data.split_at(PAGE_SIZE);
                    page.copy_from_slice(stored);
                    data = rest;
                    counts.raw += 1;
                }
                PageEncoding::Lz4(len) => {
                    let (stored, rest) = data.split_at(usize::from(len));
                    match decompress_into(stored, page) {
                        Ok(PAGE_SIZE) => {}
                        _ => return Err(DecodeError::BadCompressedPage { index: i }),
                    }
                    data = rest;
                    counts.lz4 += 1;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_pages() -> Vec<u8> {
        let mut pages = vec![0u8; 4 * PAGE_SIZE];
        for (i, b) in pages[PAGE_SIZE..2 * PAGE_SIZE].iter_mut().enumerate() {
            *b = b"the quick brown fox "[i % 20];
        }
        let mut x = 0x1234_5678_9abc_def0u64;
        for b in &mut pages[2 * PAGE_SIZE..3 * PAGE_SIZE] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        pages[4 * PAGE_SIZE - 1] = 1;
        pages
    }

    #[test]
    fn every_encoding_round_trips() {
        let pages = sample_pages();
        let all = Capabilities::ZERO_PAGES.union(Capabilities::LZ4_PAGES);
        let mut enc = PageEncoder::new();
        let mut out = Vec::new();
        let counts = enc.encode_run(0x10_0000, &pages, all, &mut out).unwrap();
        assert_eq!(
            counts,
            PageCounts {
                zero: 1,
                lz4: 2,
                raw: 1
            }
        );
        let view = PageRunView::parse(&out).unwrap();
        assert_eq!(view.first_gpa(), 0x10_0000);
        assert_eq!(view.required_capabilities(), all);
        assert_eq!(view.decode().unwrap(), pages);

        let mut plain = Vec::new();
        let counts = enc
            .encode_run(0, &pages, Capabilities::NONE, &mut plain)
            .unwrap();
        assert_eq!(counts.raw, 4);
        let view = PageRunView::parse(&plain).unwrap();
        assert_eq!(view.required_capabilities(), Capabilities::NONE);
        assert_eq!(view.decode().unwrap(), pages);
    }

    #[test]
    fn tracked_decode_skips_known_zero_pages_only() {
        let pages = sample_pages();
        let all = Capabilities::ZERO_PAGES.union(Capabilities::LZ4_PAGES);
        let mut enc = PageEncoder::new();
        let mut wire = Vec::new();
        enc.encode_run(0, &pages, all, &mut wire).unwrap();
        let mut mem = vec![0u8; 4 * PAGE_SIZE];
        let mut maybe_nonzero = DirtyBitmap::new(4);
        PageRunView::parse(&wire)
            .unwrap()
            .decode_into_tracked(&mut mem, &mut maybe_nonzero, 0)
            .unwrap();
        assert_eq!(mem, pages);
        assert_eq!(maybe_nonzero.iter_set().collect::<Vec<_>>(), [1, 2, 3]);
        // The pages become zero: tracked pages are cleared again.
        let zeros = vec![0u8; 4 * PAGE_SIZE];
        let mut wire = Vec::new();
        enc.encode_run(0, &zeros, all, &mut wire).unwrap();
        PageRunView::parse(&wire)
            .unwrap()
            .decode_into_tracked(&mut mem, &mut maybe_nonzero, 0)
            .unwrap();
        assert_eq!(mem, zeros);
        assert_eq!(maybe_nonzero.count(), 0);
    }

    #[test]
    fn malformed_runs_are_rejected() {
        let mut enc = PageEncoder::new();
        assert_eq!(
            enc.encode_run(1, &[0; PAGE_SIZE], Capabilities::NONE, &mut Vec::new()),
            Err(PageRunError::Unaligned(1))
        );
        assert!(
            enc.encode_run(0, &[0; 100], Capabilities::NONE, &mut Vec::new())
                .is_err()
        );
        let mut out = Vec::new();
        enc.encode_run(0, &sample_pages(), Capabilities::LZ4_PAGES, &mut out)
            .unwrap();
        assert!(PageRunView::parse(&out[..out.len() - 1]).is_err());
        let mut longer = out.clone();
        longer.push(0);
        assert_eq!(
            PageRunView::parse(&longer).err(),
            Some(DecodeError::TrailingBytes { count: 1 })
        );
        // Corrupt the LZ4 data of page 1: must fail cleanly, not panic.
        let mut bad = out.clone();
        let data_start = RUN_HEADER_LEN + 8;
        for b in &mut bad[data_start..data_start + 40] {
            *b = 0xff;
        }
        let view = PageRunView::parse(&bad).unwrap();
        assert!(view.decode().is_err());
    }

    #[test]
    fn random_pages_skip_lz4_and_text_does_not() {
        let pages = sample_pages();
        assert!(looks_incompressible(&pages[2 * PAGE_SIZE..3 * PAGE_SIZE]));
        assert!(!looks_incompressible(&pages[PAGE_SIZE..2 * PAGE_SIZE]));
        assert!(is_zero_page(&pages[..PAGE_SIZE]));
        assert!(!is_zero_page(&pages[3 * PAGE_SIZE..]));
    }
}
