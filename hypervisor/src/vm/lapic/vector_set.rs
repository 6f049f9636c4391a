//! A 256-bit set of interrupt vectors: the shape of the APIC's IRR, ISR and TMR (SDM Vol. 3A
//! 11.8.4, Figure 11-20), eight 32-bit words exactly as the registers are laid out at
//! offsets 0x100/0x180/0x200 + 0x10 * word.

/// 256 vectors, one bit each; word `i` holds vectors `32 * i ..= 32 * i + 31`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VectorSet {
    words: [u32; 8],
}

impl VectorSet {
    /// The set with the given register words.
    pub fn from_words(words: [u32; 8]) -> Self {
        Self { words }
    }

    /// The register words.
    pub fn words(&self) -> [u32; 8] {
        self.words
    }

    /// One register word (index 0..8; larger indices read 0).
    pub fn word(&self, index: usize) -> u32 {
        self.words.get(index).copied().unwrap_or(0)
    }

    /// Whether `vector` is in the set.
    pub fn contains(&self, vector: u8) -> bool {
        self.words[usize::from(vector >> 5)] & (1 << (vector & 31)) != 0
    }

    /// Adds `vector`.
    pub fn insert(&mut self, vector: u8) {
        self.words[usize::from(vector >> 5)] |= 1 << (vector & 31);
    }

    /// Removes `vector`.
    pub fn remove(&mut self, vector: u8) {
        self.words[usize::from(vector >> 5)] &= !(1 << (vector & 31));
    }

    /// The highest vector in the set (the highest priority, SDM 11.8.3).
    pub fn highest(&self) -> Option<u8> {
        (0..8u8).rev().find_map(|i| {
            let w = self.words[usize::from(i)];
            // 31 - leading_zeros < 32, so the sum fits a u8.
            (w != 0).then(|| i * 32 + (31 - w.leading_zeros() as u8))
        })
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_highest() {
        let mut s = VectorSet::default();
        assert_eq!(s.highest(), None);
        s.insert(0x31);
        s.insert(0xfe);
        s.insert(0x20);
        assert_eq!(s.highest(), Some(0xfe));
        assert!(s.contains(0x31));
        assert_eq!(s.word(1), 1 << 17 | 1);
        s.remove(0xfe);
        assert_eq!(s.highest(), Some(0x31));
        s.insert(255);
        assert_eq!(s.highest(), Some(255));
        assert_eq!(s.word(9), 0);
    }
}
