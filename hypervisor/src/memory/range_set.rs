//! A fixed-capacity set of disjoint half-open physical ranges `[start, end)`.
//!
//! The frame allocator is built before there is a heap (the heap is carved out of it), so its
//! bookkeeping cannot allocate. A sorted array of coalesced ranges is small (one entry per hole
//! in the memory map), makes contiguous allocations a simple first-fit scan, and makes freeing
//! with neighbour coalescing easy to check.
//!
//! When the array is full, every operation errs on the safe side: an insertion that does not
//! fit is dropped (memory is lost, never double-owned) and a removal that would need one more
//! slot removes the whole tail piece instead of keeping part of a range that should be gone.

/// A half-open range of physical addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    pub start: u64,
    pub end: u64,
}

impl PhysRange {
    pub const EMPTY: PhysRange = PhysRange { start: 0, end: 0 };

    pub const fn new(start: u64, end: u64) -> PhysRange {
        PhysRange { start, end }
    }

    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether `other` lies entirely inside `self`.
    pub const fn contains_range(&self, other: &PhysRange) -> bool {
        other.start >= self.start && other.end <= self.end
    }

    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Sorted, disjoint, coalesced ranges; at most `N` of them.
#[derive(Clone, Debug)]
pub struct RangeSet<const N: usize> {
    ranges: [PhysRange; N],
    count: usize,
    /// Bytes dropped because the set was full (diagnostics; should stay 0).
    dropped_bytes: u64,
}

impl<const N: usize> Default for RangeSet<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RangeSet<N> {
    pub const fn new() -> Self {
        RangeSet {
            ranges: [PhysRange::EMPTY; N],
            count: 0,
            dropped_bytes: 0,
        }
    }

    pub fn as_slice(&self) -> &[PhysRange] {
        &self.ranges[..self.count]
    }

    pub fn total_bytes(&self) -> u64 {
        self.as_slice().iter().map(PhysRange::len).sum()
    }

    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// Whether `r` lies entirely inside one range of the set (ranges are coalesced, so this is
    /// the same as being covered by the set).
    pub fn contains(&self, r: &PhysRange) -> bool {
        self.as_slice().iter().any(|s| s.contains_range(r))
    }

    /// Whether any byte of `r` is in the set.
    pub fn overlaps(&self, r: &PhysRange) -> bool {
        self.as_slice().iter().any(|s| s.overlaps(r))
    }

    /// Adds `r` to the set (union), merging with touching or overlapping neighbours.
    pub fn insert(&mut self, r: PhysRange) {
        if r.is_empty() {
            return;
        }
        let mut merged = r;
        // First range that ends at or after r.start (could touch or overlap).
        let first = self
            .as_slice()
            .iter()
            .position(|s| s.end >= r.start)
            .unwrap_or(self.count);
        let mut last = first;
        while last < self.count && self.ranges[last].start <= merged.end {
            merged.start = merged.start.min(self.ranges[last].start);
            merged.end = merged.end.max(self.ranges[last].end);
            last += 1;
        }
        let absorbed = last - first;
        if absorbed == 0 {
            if self.count == N {
                self.dropped_bytes += merged.len();
                return;
            }
            self.ranges.copy_within(first..self.count, first + 1);
            self.count += 1;
        } else {
            self.ranges.copy_within(last..self.count, first + 1);
            self.count -= absorbed - 1;
        }
        self.ranges[first] = merged;
    }

    /// Removes every byte of `r` from the set (difference).
    pub fn remove(&mut self, r: PhysRange) {
        if r.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.count {
            let s = self.ranges[i];
            if !s.overlaps(&r) {
                i += 1;
                continue;
            }
            let left = PhysRange::new(s.start, r.start.max(s.start));
            let right = PhysRange::new(r.end.min(s.end), s.end);
            match (left.is_empty(), right.is_empty()) {
                (true, true) => {
                    self.ranges.copy_within(i + 1..self.count, i);
                    self.count -= 1;
                    continue;
                }
                (false, true) => self.ranges[i] = left,
                (true, false) => self.ranges[i] = right,
                (false, false) => {
                    self.ranges[i] = left;
                    if self.count == N {
                        // No slot for the right piece: drop it rather than keep too much.
                        self.dropped_bytes += right.len();
                    } else {
                        self.ranges.copy_within(i + 1..self.count, i + 2);
                        self.ranges[i + 1] = right;
                        self.count += 1;
                    }
                    return;
                }
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: u64, e: u64) -> PhysRange {
        PhysRange::new(s, e)
    }

    #[test]
    fn insert_merges_touching_and_overlapping() {
        let mut s = RangeSet::<8>::new();
        s.insert(r(10, 20));
        s.insert(r(30, 40));
        s.insert(r(20, 30));
        assert_eq!(s.as_slice(), &[r(10, 40)]);
        s.insert(r(5, 12));
        s.insert(r(50, 60));
        s.insert(r(0, 1));
        assert_eq!(s.as_slice(), &[r(0, 1), r(5, 40), r(50, 60)]);
        s.insert(r(2, 55));
        assert_eq!(s.as_slice(), &[r(0, 1), r(2, 60)]);
    }

    #[test]
    fn remove_splits_trims_and_deletes() {
        let mut s = RangeSet::<8>::new();
        s.insert(r(0, 100));
        s.remove(r(10, 20));
        assert_eq!(s.as_slice(), &[r(0, 10), r(20, 100)]);
        s.remove(r(0, 5));
        s.remove(r(90, 200));
        assert_eq!(s.as_slice(), &[r(5, 10), r(20, 90)]);
        s.remove(r(0, 1000));
        assert!(s.as_slice().is_empty());
    }

    #[test]
    fn full_set_drops_instead_of_overcommitting() {
        let mut s = RangeSet::<2>::new();
        s.insert(r(0, 10));
        s.insert(r(20, 30));
        s.insert(r(40, 50));
        assert_eq!(s.as_slice(), &[r(0, 10), r(20, 30)]);
        assert_eq!(s.dropped_bytes(), 10);
        s.remove(r(2, 4));
        assert_eq!(s.as_slice(), &[r(0, 2), r(20, 30)]);
        assert!(!s.overlaps(&r(2, 10)));
    }
}
