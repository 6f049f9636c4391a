//! Dirty-page bitmap helpers for pre-copy: one bit per 4 KiB guest page.
//!
//! The hypervisor harvests dirty bits (EPT D-bits or PML) into a `DirtyBitmap` per round;
//! the source walks it as runs of consecutive pages (the unit of a `Pages` message) and
//! merges rounds when a round is abandoned or when pages must be re-sent.

use alloc::vec;
use alloc::vec::Vec;

/// One bit per guest page frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyBitmap {
    words: Vec<u64>,
    pages: usize,
}

impl DirtyBitmap {
    /// An all-clean bitmap for `pages` pages.
    pub fn new(pages: usize) -> Self {
        DirtyBitmap {
            words: vec![0; pages.div_ceil(64)],
            pages,
        }
    }

    /// An all-dirty bitmap (the first pre-copy round sends everything).
    pub fn all_dirty(pages: usize) -> Self {
        let mut b = DirtyBitmap {
            words: vec![u64::MAX; pages.div_ceil(64)],
            pages,
        };
        b.clear_tail();
        b
    }

    /// From raw words as harvested (bits past `pages` are ignored).
    pub fn from_words(words: Vec<u64>, pages: usize) -> Self {
        let mut words = words;
        words.resize(pages.div_ceil(64), 0);
        let mut b = DirtyBitmap { words, pages };
        b.clear_tail();
        b
    }

    fn clear_tail(&mut self) {
        let rem = self.pages % 64;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << rem) - 1;
        }
    }

    /// Number of pages covered.
    pub fn len(&self) -> usize {
        self.pages
    }

    /// Whether the bitmap covers no page.
    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    /// The raw words.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Marks page `pfn` dirty; out-of-range frames are ignored and reported as `false`.
    pub fn set(&mut self, pfn: usize) -> bool {
        if pfn >= self.pages {
            return false;
        }
        self.words[pfn / 64] |= 1 << (pfn % 64);
        true
    }

    /// Marks page `pfn` clean.
    pub fn clear(&mut self, pfn: usize) {
        if pfn < self.pages {
            self.words[pfn / 64] &= !(1 << (pfn % 64));
        }
    }

    /// Whether page `pfn` is dirty.
    pub fn is_set(&self, pfn: usize) -> bool {
        pfn < self.pages && self.words[pfn / 64] & (1 << (pfn % 64)) != 0
    }

    /// Number of dirty pages.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Marks everything clean.
    pub fn clear_all(&mut self) {
        self.words.fill(0);
    }

    /// ORs `other` into `self` (pages dirty in either round). Sizes must match; the
    /// shorter extent is merged otherwise.
    pub fn merge(&mut self, other: &DirtyBitmap) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
        self.clear_tail();
    }

    /// Takes the current contents, leaving the bitmap clean (end of a harvest).
    pub fn take(&mut self) -> DirtyBitmap {
        let words = core::mem::replace(&mut self.words, vec![0; self.pages.div_ceil(64)]);
        DirtyBitmap {
            words,
            pages: self.pages,
        }
    }

    /// Iterates dirty page frame numbers in increasing order, skipping clean words whole.
    pub fn iter_set(&self) -> SetBits<'_> {
        self.iter_set_from(0)
    }

    /// Like `iter_set`, starting at page `from` (a sender resuming a round where its output
    /// buffer filled up).
    pub fn iter_set_from(&self, from: usize) -> SetBits<'_> {
        let index = from / 64;
        let below = (1u64 << (from % 64)) - 1;
        SetBits {
            words: &self.words,
            index,
            current: self.words.get(index).map_or(0, |w| w & !below),
        }
    }

    /// Iterates runs of consecutive dirty pages as `(first_pfn, count)`, each at most
    /// `max_run` long (use `MAX_PAGES_PER_FRAME` to get one `Pages` message per run).
    pub fn runs(&self, max_run: usize) -> Runs<'_> {
        self.runs_from(0, max_run)
    }

    /// Like `runs`, starting at page `from`.
    pub fn runs_from(&self, from: usize, max_run: usize) -> Runs<'_> {
        Runs {
            bits: self.iter_set_from(from).peekable(),
            max_run: max_run.max(1),
        }
    }
}

/// Iterator over dirty page frame numbers.
pub struct SetBits<'a> {
    words: &'a [u64],
    index: usize,
    current: u64,
}

impl Iterator for SetBits<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.current == 0 {
            self.index += 1;
            self.current = *self.words.get(self.index)?;
        }
        let bit = self.current.trailing_zeros() as usize;
        self.current &= self.current - 1;
        Some(self.index * 64 + bit)
    }
}

/// Iterator over runs of consecutive dirty pages.
pub struct Runs<'a> {
    bits: core::iter::Peekable<SetBits<'a>>,
    max_run: usize,
}

impl Iterator for Runs<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let first = self.bits.next()?;
        let mut count = 1;
        while count < self.max_run && self.bits.peek() == Some(&(first + count)) {
            self.bits.next();
            count += 1;
        }
        Some((first, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_bits_runs_and_merge() {
        let mut a = DirtyBitmap::new(200);
        for pfn in [0, 1, 2, 63, 64, 65, 130, 199] {
            assert!(a.set(pfn));
        }
        assert!(!a.set(200));
        assert_eq!(
            a.iter_set().collect::<Vec<_>>(),
            [0, 1, 2, 63, 64, 65, 130, 199]
        );
        assert_eq!(
            a.runs(64).collect::<Vec<_>>(),
            [(0, 3), (63, 3), (130, 1), (199, 1)]
        );
        assert_eq!(
            a.runs(2).collect::<Vec<_>>(),
            [(0, 2), (2, 1), (63, 2), (65, 1), (130, 1), (199, 1)]
        );
        let mut b = DirtyBitmap::new(200);
        b.set(3);
        b.merge(&a);
        assert_eq!(b.count(), 9);
        let taken = b.take();
        assert_eq!(taken.count(), 9);
        assert_eq!(b.count(), 0);
        let all = DirtyBitmap::all_dirty(130);
        assert_eq!(all.count(), 130);
        assert_eq!(
            all.runs(64).collect::<Vec<_>>(),
            [(0, 64), (64, 64), (128, 2)]
        );
        assert_eq!(DirtyBitmap::from_words(vec![u64::MAX; 3], 70).count(), 70);
        assert_eq!(a.iter_set_from(64).collect::<Vec<_>>(), [64, 65, 130, 199]);
        assert_eq!(a.iter_set_from(2).next(), Some(2));
        assert_eq!(a.iter_set_from(200).next(), None);
        assert_eq!(a.iter_set_from(1000).next(), None);
        assert_eq!(
            a.runs_from(1, 64).collect::<Vec<_>>(),
            [(1, 2), (63, 3), (130, 1), (199, 1)]
        );
    }
}
