//! The delta cache of the source (capability DELTA_PAGES, protocol version 3): the copy of
//! each recently sent page, so that a page sent again can go as the LZ4 block of its XOR
//! with what the destination already holds.
//!
//! Why: a guest that keeps rewriting a few words of its hot pages (counters, queues, the
//! stack) makes each round resend whole pages; the XOR with the last copy is almost all
//! zero and compresses to a few dozen bytes (QEMU's XBZRLE does the same with its own
//! run-length format; LZ4 of the XOR gets the same effect from the codec we already have).
//!
//! Shape: direct-mapped, one slot per page-sized block of the budget (`pfn % slots`), each
//! holding the page number it caches. Bounded by construction, no eviction policy to tune,
//! O(1) per page; hot pages keep their slot because they are stored on every send. The
//! cache only ever holds what was encoded last for a page (every send stores, including
//! sends that did not use a delta), so a delta always applies to the destination's current
//! copy; the page digest checks the result anyway.

use alloc::vec::Vec;

use crate::wire::PAGE_SIZE;

/// Copies of recently sent pages, within a fixed budget.
pub struct DeltaCache {
    /// Page number cached in each slot (`usize::MAX` = empty).
    tags: Vec<usize>,
    pages: Vec<u8>,
}

impl DeltaCache {
    /// A cache of `budget_bytes` (rounded down to whole pages), or `None` if the budget is
    /// below one page or the memory cannot be had (never an allocation failure).
    pub fn try_new(budget_bytes: usize) -> Option<Self> {
        let slots = budget_bytes / PAGE_SIZE;
        if slots == 0 {
            return None;
        }
        let mut tags = Vec::new();
        tags.try_reserve_exact(slots).ok()?;
        tags.resize(slots, usize::MAX);
        let mut pages = Vec::new();
        pages.try_reserve_exact(slots * PAGE_SIZE).ok()?;
        pages.resize(slots * PAGE_SIZE, 0);
        Some(DeltaCache { tags, pages })
    }

    /// Pages the cache can hold.
    pub fn slots(&self) -> usize {
        self.tags.len()
    }

    fn slot(&self, pfn: usize) -> usize {
        pfn % self.tags.len()
    }

    /// The copy of page `pfn` as last sent, if still cached.
    pub fn previous(&self, pfn: usize) -> Option<&[u8]> {
        let slot = self.slot(pfn);
        (self.tags[slot] == pfn).then(|| &self.pages[slot * PAGE_SIZE..][..PAGE_SIZE])
    }

    /// Records `content` (one page) as what was sent for page `pfn`.
    pub fn store(&mut self, pfn: usize, content: &[u8]) {
        let slot = self.slot(pfn);
        self.tags[slot] = pfn;
        self.pages[slot * PAGE_SIZE..][..PAGE_SIZE].copy_from_slice(content);
    }
}

/// `out = a XOR b` (all one page long).
pub(crate) fn xor_pages(a: &[u8], b: &[u8], out: &mut [u8]) {
    for ((o, x), y) in out
        .as_chunks_mut::<8>()
        .0
        .iter_mut()
        .zip(a.as_chunks::<8>().0)
        .zip(b.as_chunks::<8>().0)
    {
        *o = (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y)).to_ne_bytes();
    }
}

/// `page ^= delta` (one page each).
pub(crate) fn xor_into(page: &mut [u8], delta: &[u8]) {
    for (p, d) in page
        .as_chunks_mut::<8>()
        .0
        .iter_mut()
        .zip(delta.as_chunks::<8>().0)
    {
        *p = (u64::from_ne_bytes(*p) ^ u64::from_ne_bytes(*d)).to_ne_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn direct_mapped_slots_hold_the_last_copy() {
        assert!(DeltaCache::try_new(100).is_none());
        let mut cache = DeltaCache::try_new(2 * PAGE_SIZE + 5).unwrap();
        assert_eq!(cache.slots(), 2);
        assert!(cache.previous(4).is_none());
        cache.store(4, &vec![1; PAGE_SIZE]);
        cache.store(4, &vec![2; PAGE_SIZE]);
        assert_eq!(cache.previous(4).unwrap()[0], 2);
        cache.store(6, &vec![3; PAGE_SIZE]); // same slot as 4
        assert!(cache.previous(4).is_none());
        assert_eq!(cache.previous(6).unwrap()[9], 3);
    }

    #[test]
    fn xor_round_trips() {
        let a: Vec<u8> = (0..PAGE_SIZE).map(|i| i as u8).collect();
        let mut b = a.clone();
        b[100] ^= 0x55;
        let mut d = vec![0; PAGE_SIZE];
        xor_pages(&a, &b, &mut d);
        assert_eq!(d.iter().filter(|x| **x != 0).count(), 1);
        let mut back = a.clone();
        xor_into(&mut back, &d);
        assert_eq!(back, b);
    }
}
