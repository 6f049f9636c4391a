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
//! page. A cheap sampling test skips the LZ4 attempt on pages that look random, so that a
//! random page costs little more than copying it.

use alloc::vec;
use alloc::vec::Vec;

use lz4_flex::block::{CompressTable, compress_into_with_table};

use crate::negotiation::Capabilities;
use crate::wire::{MAX_PAGES_PER_FRAME, PAGE_SIZE, Writer};

mod run_view;
#[cfg(test)]
mod tests;

pub use run_view::PageRunView;
pub(crate) use run_view::decode_page;

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

impl PageEncoding {
    /// Bytes the page takes in the run's data.
    pub fn stored_len(self) -> usize {
        match self {
            PageEncoding::Zero => 0,
            PageEncoding::Lz4(n) => usize::from(n),
            PageEncoding::Raw => PAGE_SIZE,
        }
    }
}

impl PageCounts {
    /// Counts one page.
    pub fn count(&mut self, enc: PageEncoding) {
        match enc {
            PageEncoding::Zero => self.zero += 1,
            PageEncoding::Lz4(_) => self.lz4 += 1,
            PageEncoding::Raw => self.raw += 1,
        }
    }

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

/// Sampling test: 8 samples of 8 bytes spread over the page; if they hold more than 44
/// distinct byte values the page is almost surely incompressible (random or encrypted data
/// gives 57 of 64 on average, text and code 15 to 35), and LZ4 is not tried. Branch-free:
/// the byte set is built with ORs and counted with popcount.
pub fn looks_incompressible(page: &[u8]) -> bool {
    let mut seen = [0u64; 4];
    let stride = (page.len() / 8).max(8);
    for start in (0..page.len().saturating_sub(7)).step_by(stride) {
        for &b in &page[start..start + 8] {
            seen[usize::from(b >> 6)] |= 1 << (b & 63);
        }
    }
    seen.iter().map(|w| w.count_ones()).sum::<u32>() > 44
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
