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
//!               0x8000 | 1..4095
//!                        LZ4 block of that size holding the XOR of the page with the
//!                        destination's current copy (needs DELTA_PAGES, version 3)
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

mod delta;
mod run_view;
#[cfg(test)]
mod tests;

pub use delta::DeltaCache;
pub use run_view::PageRunView;
pub(crate) use run_view::decode_page;

const RUN_HEADER_LEN: usize = 12;
const PAGE_LEN_U16: u16 = PAGE_SIZE as u16;
/// Descriptor bit of a delta page (the low bits are its LZ4 length).
const DELTA_FLAG: u16 = 0x8000;

/// How one page was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageEncoding {
    /// All zero; no data on the wire.
    Zero,
    /// LZ4 block of the given length (< one page).
    Lz4(u16),
    /// The page as is.
    Raw,
    /// LZ4 block of the given length (< one page) of the XOR with the destination's copy.
    Delta(u16),
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
    /// Pages sent as the LZ4 block of their XOR with the previous copy.
    pub delta: u64,
}

impl PageEncoding {
    /// Bytes the page takes in the run's data.
    pub fn stored_len(self) -> usize {
        match self {
            PageEncoding::Zero => 0,
            PageEncoding::Lz4(n) | PageEncoding::Delta(n) => usize::from(n),
            PageEncoding::Raw => PAGE_SIZE,
        }
    }

    /// The descriptor on the wire.
    pub fn descriptor(self) -> u16 {
        match self {
            PageEncoding::Zero => 0,
            PageEncoding::Lz4(n) => n,
            PageEncoding::Raw => PAGE_LEN_U16,
            PageEncoding::Delta(n) => DELTA_FLAG | n,
        }
    }

    /// Parses a descriptor (`None` for a value no version defines).
    pub fn from_descriptor(d: u16) -> Option<Self> {
        match d {
            0 => Some(PageEncoding::Zero),
            PAGE_LEN_U16 => Some(PageEncoding::Raw),
            n if n < PAGE_LEN_U16 => Some(PageEncoding::Lz4(n)),
            n if n & DELTA_FLAG != 0 && (1..PAGE_LEN_U16).contains(&(n & !DELTA_FLAG)) => {
                Some(PageEncoding::Delta(n & !DELTA_FLAG))
            }
            _ => None,
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
            PageEncoding::Delta(_) => self.delta += 1,
        }
    }

    /// Total pages.
    pub fn total(&self) -> u64 {
        self.zero + self.lz4 + self.raw + self.delta
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: PageCounts) {
        self.zero += other.zero;
        self.lz4 += other.lz4;
        self.raw += other.raw;
        self.delta += other.delta;
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
    /// The XOR of a page with its previous copy (DELTA_PAGES).
    delta: Vec<u8>,
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
            delta: Vec::new(),
        }
    }

    /// Encodes one page, appending its stored bytes to `data`. With `previous` (the copy the
    /// destination holds, from a `DeltaCache`, when DELTA_PAGES was negotiated) the LZ4
    /// block of the XOR with it is sent when that is the smallest choice.
    pub fn encode_page(
        &mut self,
        page: &[u8],
        previous: Option<&[u8]>,
        caps: Capabilities,
        data: &mut Vec<u8>,
    ) -> PageEncoding {
        if caps.contains(Capabilities::ZERO_PAGES) && is_zero_page(page) {
            return PageEncoding::Zero;
        }
        if let Some(previous) = previous.filter(|_| caps.contains(Capabilities::DELTA_PAGES)) {
            let plain_limit = self.plain_size_limit(page, caps);
            self.delta.resize(PAGE_SIZE, 0);
            delta::xor_pages(page, previous, &mut self.delta);
            if let Ok(len) =
                compress_into_with_table(&self.delta, &mut self.scratch, &mut self.table)
                && len < plain_limit
            {
                data.extend_from_slice(&self.scratch[..len]);
                // len < PAGE_SIZE fits u16.
                return PageEncoding::Delta(len as u16);
            }
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

    /// An upper bound of what the page costs without a delta: a page that looks random goes
    /// raw; otherwise a delta must beat half a page to be worth skipping the LZ4 attempt
    /// (a partly rewritten page's delta is typically a few dozen bytes).
    fn plain_size_limit(&self, page: &[u8], caps: Capabilities) -> usize {
        if caps.contains(Capabilities::LZ4_PAGES) && !looks_incompressible(page) {
            PAGE_SIZE / 2
        } else {
            PAGE_SIZE
        }
    }

    /// Appends the `Pages` payload for `pages` (a whole number of pages, at most
    /// `MAX_PAGES_PER_FRAME`) starting at `first_gpa`. With a `cache` (DELTA_PAGES), pages
    /// it holds may go as deltas, and every page is stored in it as sent.
    pub fn encode_run(
        &mut self,
        first_gpa: u64,
        pages: &[u8],
        caps: Capabilities,
        mut cache: Option<&mut DeltaCache>,
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
        let first_pfn = (first_gpa / PAGE_SIZE as u64) as usize;
        for (i, page) in pages.chunks_exact(PAGE_SIZE).enumerate() {
            let previous = cache.as_deref().and_then(|c| c.previous(first_pfn + i));
            let encoding = self.encode_page(page, previous, caps, out);
            if let Some(cache) = cache.as_deref_mut() {
                cache.store(first_pfn + i, page);
            }
            counts.count(encoding);
            out[desc_at + 2 * i..desc_at + 2 * i + 2]
                .copy_from_slice(&encoding.descriptor().to_le_bytes());
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
