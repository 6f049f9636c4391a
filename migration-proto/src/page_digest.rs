//! The page digest (protocol version 3): end-to-end verification of guest memory whose cost
//! follows the pages sent, not the size of the VM.
//!
//! Version 2 hashed the whole guest memory on both sides while the VM was paused, so the
//! downtime grew with the VM (5.6 s for 16 MiB in Bochs; tens of seconds for 64 GiB on real
//! hardware). Version 3 keeps the guarantee — before it commits, the destination proves it
//! holds exactly the memory the source sent, page for page — but does the work as pages move:
//!
//! - Both sides keep one 128-bit keyed hash per guest page, `h(pfn, content)`, and an
//!   order-independent accumulator: the sum of all page hashes modulo 2^128. Sending (or
//!   receiving) a page again replaces its hash: `sum += new - old`, O(1) per page.
//! - The source hashes each page as it hands it to the encoder; the destination hashes each
//!   page *in its guest memory after the decoder wrote it*, so what it proves is what the VM
//!   will run on, not what arrived on the wire.
//! - At commit the source sends its accumulator; the destination compares it with its own
//!   and insists that every page arrived at least once. At stop time only the pages of the
//!   last round are hashed, on either side.
//!
//! Why a sum of keyed hashes: an additive multiset hash (Bellare–Micciancio's AdHash) is
//! incremental and order-independent, and with a secret key per session (derived from the
//! session keys, so nobody on the wire knows it) an error cannot be chosen to cancel out;
//! an accidental difference survives with probability 2^-128. The page number is inside each
//! hash, so the same content at another address, or two pages swapped, does not match.
//!
//! What the page digest alone cannot see is a page the source's dirty tracking never
//! reported: both sides then hash the same stale copy. The source session therefore also
//! remembers pages the caller declared dirty and not yet re-sent (`mark_dirty`, refused at
//! commit), and the hypervisor samples clean pages against their recorded hash during
//! pre-copy (or, with `verify full`, hashes all memory at stop time as version 2 did).

use alloc::vec;
use alloc::vec::Vec;

use crate::dirty::DirtyBitmap;
use crate::page_codec::is_zero_page;
use crate::wire::PAGE_SIZE;

/// The per-session key of the page hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct PageDigestKey(pub [u8; 32]);

impl core::fmt::Debug for PageDigestKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PageDigestKey(..)")
    }
}

/// The accumulator as sent in `PageDigest` (little-endian u128).
pub type Accumulator = [u8; 16];

/// The hash of one guest page: BLAKE3 keyed with the session's page-digest key, over the
/// page number (u64 LE) alone for an all-zero page, or over the page number and the 4096
/// bytes otherwise; the first 16 bytes of the output, as a little-endian u128. The two input
/// lengths differ, so a zero page and a page of data can never share a hash.
///
/// How it is computed (the value is the same either way, BLAKE3 being incremental): with a
/// SIMD BLAKE3 (`std`: runtime detection) the page number and a whole page are copied into
/// one 4104-byte buffer and hashed in one `update`, so that the first four 1 KiB chunks form
/// one subtree that BLAKE3 compresses in parallel; fed as two updates, the 8-byte prefix
/// shifts the chunks and BLAKE3 can only take them one or two at a time (measured in
/// docs/bench/migration-proto.md). The bare-metal build's BLAKE3 is portable (no SIMD on a
/// soft-float target), where the copy would only cost, so it feeds two updates.
pub fn page_hash(key: &PageDigestKey, pfn: u64, content: &[u8]) -> u128 {
    let mut hasher = blake3::Hasher::new_keyed(&key.0);
    if is_zero_page(content) {
        hasher.update(&pfn.to_le_bytes());
    } else if cfg!(feature = "std") && content.len() == PAGE_SIZE {
        let mut joined = [0u8; 8 + PAGE_SIZE];
        joined[..8].copy_from_slice(&pfn.to_le_bytes());
        joined[8..].copy_from_slice(content);
        hasher.update(&joined);
    } else {
        hasher.update(&pfn.to_le_bytes());
        hasher.update(content);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    u128::from_le_bytes(out)
}

/// One side's record of what each page held when it was last sent (source) or written
/// (destination), and the accumulator over it.
pub struct PageDigestTable {
    key: PageDigestKey,
    hashes: Vec<u128>,
    covered: DirtyBitmap,
    covered_count: usize,
    sum: u128,
}

impl PageDigestTable {
    /// An empty table for `pages` guest pages.
    pub fn new(key: PageDigestKey, pages: usize) -> Self {
        PageDigestTable {
            key,
            hashes: vec![0; pages],
            covered: DirtyBitmap::new(pages),
            covered_count: 0,
            sum: 0,
        }
    }

    /// Like `new`, or `None` when the 16 bytes per page cannot be had (a hypervisor's heap
    /// is bounded; a migration must fail cleanly rather than take the host down).
    pub fn try_new(key: PageDigestKey, pages: usize) -> Option<Self> {
        let mut hashes = Vec::new();
        hashes.try_reserve_exact(pages).ok()?;
        let mut covered_words = Vec::new();
        covered_words.try_reserve_exact(pages.div_ceil(64)).ok()?;
        hashes.resize(pages, 0);
        covered_words.resize(pages.div_ceil(64), 0);
        Some(PageDigestTable {
            key,
            hashes,
            covered: DirtyBitmap::from_words(covered_words, pages),
            covered_count: 0,
            sum: 0,
        })
    }

    /// Host memory the table of `pages` pages takes, for messages.
    pub fn bytes_for(pages: usize) -> u64 {
        pages as u64 * 16 + pages.div_ceil(64) as u64 * 8
    }

    /// Pages in the table.
    pub fn pages(&self) -> usize {
        self.hashes.len()
    }

    /// Records the content of the page `pfn` (exactly one page of bytes). Out-of-range page
    /// numbers are ignored (the sessions check ranges before they get here).
    pub fn record(&mut self, pfn: usize, content: &[u8]) {
        debug_assert_eq!(content.len(), PAGE_SIZE);
        let Some(slot) = self.hashes.get_mut(pfn) else {
            return;
        };
        let new = page_hash(&self.key, pfn as u64, content);
        self.sum = self.sum.wrapping_sub(*slot).wrapping_add(new);
        *slot = new;
        if !self.covered.is_set(pfn) {
            self.covered.set(pfn);
            self.covered_count += 1;
        }
    }

    /// Records every page of a run starting at page `first_pfn`.
    pub fn record_run(&mut self, first_pfn: usize, data: &[u8]) {
        for (i, page) in data.chunks_exact(PAGE_SIZE).enumerate() {
            self.record(first_pfn + i, page);
        }
    }

    /// Whether `content` is what the table recorded for page `pfn` (false if the page was
    /// never recorded).
    pub fn matches(&self, pfn: usize, content: &[u8]) -> bool {
        self.hashes.get(pfn).is_some_and(|recorded| {
            self.covered.is_set(pfn) && *recorded == page_hash(&self.key, pfn as u64, content)
        })
    }

    /// Pages recorded at least once.
    pub fn covered(&self) -> usize {
        self.covered_count
    }

    /// The first page never recorded, if any.
    pub fn first_uncovered(&self) -> Option<usize> {
        (0..self.pages()).find(|&p| !self.covered.is_set(p))
    }

    /// The accumulator: the sum of all recorded page hashes modulo 2^128.
    pub fn accumulator(&self) -> Accumulator {
        self.sum.to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PageDigestKey {
        PageDigestKey([b; 32])
    }

    fn page(fill: u8) -> Vec<u8> {
        vec![fill; PAGE_SIZE]
    }

    /// The definition, fed as two updates (what the bare-metal build does).
    fn page_hash_by_definition(key: &PageDigestKey, pfn: u64, content: &[u8]) -> u128 {
        let mut hasher = blake3::Hasher::new_keyed(&key.0);
        hasher.update(&pfn.to_le_bytes());
        if content.iter().any(|&b| b != 0) {
            hasher.update(content);
        }
        u128::from_le_bytes(hasher.finalize().as_bytes()[..16].try_into().unwrap())
    }

    #[test]
    fn the_one_update_hash_is_the_defined_hash() {
        let mut content = page(0);
        for (i, b) in content.iter_mut().enumerate() {
            *b = (i * 7 + i / 251) as u8;
        }
        for pfn in [0, 1, 0x1234_5678, u64::MAX] {
            assert_eq!(
                page_hash(&key(3), pfn, &content),
                page_hash_by_definition(&key(3), pfn, &content)
            );
            assert_eq!(
                page_hash(&key(3), pfn, &page(0)),
                page_hash_by_definition(&key(3), pfn, &page(0))
            );
        }
        // A byte of the last (ninth-kilobyte) chunk and of the first both count.
        let mut last = content.clone();
        last[PAGE_SIZE - 1] ^= 1;
        let mut first = content.clone();
        first[0] ^= 1;
        let h = page_hash(&key(3), 5, &content);
        assert_ne!(page_hash(&key(3), 5, &last), h);
        assert_ne!(page_hash(&key(3), 5, &first), h);
    }

    #[test]
    fn order_of_recording_does_not_matter_and_last_copy_wins() {
        let mut a = PageDigestTable::new(key(1), 4);
        let mut b = PageDigestTable::new(key(1), 4);
        a.record(0, &page(1));
        a.record(1, &page(2));
        a.record(0, &page(3)); // re-sent in a later round
        b.record(1, &page(2));
        b.record(0, &page(3));
        assert_eq!(a.accumulator(), b.accumulator());
        assert_eq!(a.covered(), 2);
        assert_eq!(a.first_uncovered(), Some(2));
        assert!(a.matches(0, &page(3)));
        assert!(!a.matches(0, &page(1)));
        assert!(!a.matches(2, &page(0)));
    }

    #[test]
    fn a_stale_swapped_or_corrupted_page_changes_the_accumulator() {
        let mut reference = PageDigestTable::new(key(1), 3);
        reference.record(0, &page(1));
        reference.record(1, &page(2));
        reference.record(2, &page(0));

        let mut stale = PageDigestTable::new(key(1), 3);
        stale.record(0, &page(9)); // an older copy of page 0
        stale.record(1, &page(2));
        stale.record(2, &page(0));
        assert_ne!(stale.accumulator(), reference.accumulator());

        let mut swapped = PageDigestTable::new(key(1), 3);
        swapped.record(0, &page(2));
        swapped.record(1, &page(1));
        swapped.record(2, &page(0));
        assert_ne!(swapped.accumulator(), reference.accumulator());

        let mut corrupt = page(1);
        corrupt[4095] ^= 1;
        let mut flipped = PageDigestTable::new(key(1), 3);
        flipped.record(0, &corrupt);
        flipped.record(1, &page(2));
        flipped.record(2, &page(0));
        assert_ne!(flipped.accumulator(), reference.accumulator());

        let mut other_key = PageDigestTable::new(key(2), 3);
        other_key.record(0, &page(1));
        other_key.record(1, &page(2));
        other_key.record(2, &page(0));
        assert_ne!(other_key.accumulator(), reference.accumulator());
    }

    #[test]
    fn zero_pages_hash_by_address() {
        let k = key(3);
        assert_ne!(page_hash(&k, 0, &page(0)), page_hash(&k, 1, &page(0)));
        let mut almost_zero = page(0);
        almost_zero[17] = 1;
        assert_ne!(page_hash(&k, 0, &page(0)), page_hash(&k, 0, &almost_zero));
    }

    #[test]
    fn a_table_too_large_for_the_host_is_refused_not_a_panic() {
        assert!(PageDigestTable::try_new(key(1), usize::MAX / 4).is_none());
        let t = PageDigestTable::try_new(key(1), 100).unwrap();
        assert_eq!((t.pages(), t.covered()), (100, 0));
        assert_eq!(PageDigestTable::bytes_for(64), 64 * 16 + 8);
    }

    #[test]
    fn out_of_range_records_are_ignored() {
        let mut t = PageDigestTable::new(key(1), 1);
        t.record(5, &page(1));
        assert_eq!(t.covered(), 0);
        assert_eq!(t.accumulator(), [0; 16]);
    }
}
