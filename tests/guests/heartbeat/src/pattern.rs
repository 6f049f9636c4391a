//! The working-set pattern: every 64-bit word of every page is a function of (page index,
//! generation, word index), so the guest can verify its whole working set at any time and
//! name the exact word that differs. A page lost in migration (zero-filled) or sent from an
//! older round (previous generation) both show up as a mismatch.
//!
//! Pages are rewritten round-robin: [`Sweep`] keeps only the number of completed sweeps and
//! the cursor, from which the generation of every page follows, so no per-page bookkeeping
//! lives in the working set itself.

/// Size of a page of the working set.
pub const PAGE_SIZE: u64 = 4096;
/// 64-bit words per page.
pub const WORDS_PER_PAGE: u64 = PAGE_SIZE / 8;

/// The expected value of word `word` of page `page` at generation `generation`.
pub fn word(page: u64, generation: u64, word: u64) -> u64 {
    let key = (page << 32) ^ generation;
    // Distinct odd multipliers mix page/generation and word index; the constant keeps a
    // zero page from ever matching.
    key.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ word.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        ^ 0x5a5a_0000_0000_a5a5
}

/// The generation word `word` of a page at `generation` holds when each rewrite changes only
/// the first `dirty_words` words: the rest keep the initial generation 0.
pub fn word_generation(generation: u64, word: u64, dirty_words: u64) -> u64 {
    if word < dirty_words { generation } else { 0 }
}

/// Round-robin rewrite position over `pages` pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    pages: u64,
    completed: u64,
    cursor: u64,
}

impl Sweep {
    /// A sweep over `pages` pages, all at generation 0.
    pub fn new(pages: u64) -> Self {
        Self {
            pages,
            completed: 0,
            cursor: 0,
        }
    }

    /// Number of pages swept.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The generation page `page` currently holds: pages before the cursor have been
    /// rewritten once more in the current sweep.
    pub fn generation_of(&self, page: u64) -> u64 {
        self.completed + u64::from(page < self.cursor)
    }

    /// The next page to rewrite and the generation to write into it; advances the cursor.
    /// Returns `None` for an empty working set.
    pub fn advance(&mut self) -> Option<(u64, u64)> {
        if self.pages == 0 {
            return None;
        }
        let page = self.cursor;
        let generation = self.completed + 1;
        self.cursor += 1;
        if self.cursor == self.pages {
            self.cursor = 0;
            self.completed += 1;
        }
        Some((page, generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_follow_the_cursor() {
        let mut s = Sweep::new(3);
        assert_eq!([0, 1, 2].map(|p| s.generation_of(p)), [0, 0, 0]);
        assert_eq!(s.advance(), Some((0, 1)));
        assert_eq!([0, 1, 2].map(|p| s.generation_of(p)), [1, 0, 0]);
        assert_eq!(s.advance(), Some((1, 1)));
        assert_eq!(s.advance(), Some((2, 1)));
        assert_eq!([0, 1, 2].map(|p| s.generation_of(p)), [1, 1, 1]);
        assert_eq!(s.advance(), Some((0, 2)));
        assert_eq!([0, 1, 2].map(|p| s.generation_of(p)), [2, 1, 1]);
        assert_eq!(Sweep::new(0).advance(), None);
    }

    #[test]
    fn pattern_distinguishes_page_generation_word_and_zero() {
        let base = word(5, 7, 9);
        assert_ne!(base, word(6, 7, 9));
        assert_ne!(base, word(5, 8, 9));
        assert_ne!(base, word(5, 7, 10));
        for w in 0..WORDS_PER_PAGE {
            assert_ne!(word(0, 0, w), 0);
        }
    }

    #[test]
    fn partial_rewrites_leave_the_tail_at_generation_zero() {
        assert_eq!(word_generation(5, 0, 16), 5);
        assert_eq!(word_generation(5, 15, 16), 5);
        assert_eq!(word_generation(5, 16, 16), 0);
        assert_eq!(word_generation(5, 511, WORDS_PER_PAGE), 5);
    }

    #[test]
    fn simulated_memory_verifies_after_many_rewrites() {
        let pages = 7;
        let mut mem = vec![0u64; (pages * WORDS_PER_PAGE) as usize];
        let mut s = Sweep::new(pages);
        let fill = |mem: &mut Vec<u64>, page: u64, generation: u64| {
            for w in 0..WORDS_PER_PAGE {
                mem[(page * WORDS_PER_PAGE + w) as usize] = word(page, generation, w);
            }
        };
        for p in 0..pages {
            fill(&mut mem, p, 0);
        }
        for _ in 0..23 {
            let (p, g) = s.advance().expect("non-empty");
            fill(&mut mem, p, g);
            for p in 0..pages {
                for w in 0..WORDS_PER_PAGE {
                    assert_eq!(
                        mem[(p * WORDS_PER_PAGE + w) as usize],
                        word(p, s.generation_of(p), w)
                    );
                }
            }
        }
    }
}
