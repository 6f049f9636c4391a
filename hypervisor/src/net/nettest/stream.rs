//! The nettest payload: a deterministic pseudo-random byte stream and its CRC-32.
//!
//! Pseudo-random so that compression or a stuck buffer cannot fake a result; deterministic
//! from a seed so a failure is reproducible; CRC-32 (IEEE 802.3, reflected 0xEDB88320)
//! because it catches reordering, duplication and loss that a plain sum would not.

/// xorshift64* generator producing the payload, byte for byte independent of how the
/// caller slices it.
#[derive(Debug, Clone)]
pub struct PayloadStream {
    state: u64,
    pending: [u8; 8],
    used: usize,
}

impl PayloadStream {
    /// A stream from `seed` (zero is replaced, xorshift has no zero state).
    pub fn new(seed: u64) -> Self {
        let state = if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        };
        Self {
            state,
            pending: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fill `out` with the next `out.len()` bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut at = 0;
        while at < out.len() {
            if self.used == 8 {
                // Whole words straight into the output while they fit.
                while out.len() - at >= 8 {
                    let word = self.next_word().to_le_bytes();
                    out[at..at + 8].copy_from_slice(&word);
                    at += 8;
                }
                if at == out.len() {
                    break;
                }
                self.pending = self.next_word().to_le_bytes();
                self.used = 0;
            }
            let take = (8 - self.used).min(out.len() - at);
            out[at..at + take].copy_from_slice(&self.pending[self.used..self.used + take]);
            self.used += take;
            at += take;
        }
    }
}

/// Slicing-by-8 tables: `TABLES[0]` is the classic byte table, `TABLES[k][b]` the CRC of
/// byte `b` followed by `k` zero bytes. Eight bytes per step keeps the receiver's checksum
/// cheap under slow emulators (Bochs runs ~120 M instructions/s).
const fn crc_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let previous = tables[k - 1][i];
            tables[k][i] = (previous >> 8) ^ tables[0][(previous & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
}

static CRC_TABLES: [[u32; 256]; 8] = crc_tables();

/// Incremental CRC-32 (IEEE).
#[derive(Debug, Clone, Copy)]
pub struct Crc32 {
    state: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// An empty checksum.
    pub fn new() -> Self {
        Self { state: 0xffff_ffff }
    }

    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        let t = &CRC_TABLES;
        let mut crc = self.state;
        let mut chunks = data.chunks_exact(8);
        for chunk in &mut chunks {
            let low = crc ^ u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let high = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            crc = t[7][(low & 0xff) as usize]
                ^ t[6][((low >> 8) & 0xff) as usize]
                ^ t[5][((low >> 16) & 0xff) as usize]
                ^ t[4][(low >> 24) as usize]
                ^ t[3][(high & 0xff) as usize]
                ^ t[2][((high >> 8) & 0xff) as usize]
                ^ t[1][((high >> 16) & 0xff) as usize]
                ^ t[0][(high >> 24) as usize];
        }
        for &byte in chunks.remainder() {
            crc = t[0][usize::from((crc as u8) ^ byte)] ^ (crc >> 8);
        }
        self.state = crc;
    }

    /// The checksum of everything fed so far.
    pub fn value(&self) -> u32 {
        !self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        let mut crc = Crc32::new();
        crc.update(b"123456789");
        assert_eq!(crc.value(), 0xcbf4_3926);
    }

    proptest! {
        #[test]
        fn stream_is_independent_of_slicing(seed: u64, cuts in proptest::collection::vec(0usize..50, 1..20)) {
            let total: usize = cuts.iter().sum();
            let mut whole = vec![0u8; total];
            PayloadStream::new(seed).fill(&mut whole);
            let mut pieces = PayloadStream::new(seed);
            let mut joined = vec![0u8; total];
            let mut at = 0;
            for cut in cuts {
                pieces.fill(&mut joined[at..at + cut]);
                at += cut;
            }
            prop_assert_eq!(whole, joined);
        }

        #[test]
        fn crc_matches_the_bitwise_definition(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut reference = 0xffff_ffffu32;
            for &byte in &data {
                reference ^= u32::from(byte);
                for _ in 0..8 {
                    reference = if reference & 1 != 0 { (reference >> 1) ^ 0xedb8_8320 } else { reference >> 1 };
                }
            }
            let mut crc = Crc32::new();
            crc.update(&data);
            prop_assert_eq!(crc.value(), !reference);
        }

        #[test]
        fn crc_is_incremental(data in proptest::collection::vec(any::<u8>(), 0..300), split in 0usize..300) {
            let split = split.min(data.len());
            let mut whole = Crc32::new();
            whole.update(&data);
            let mut parts = Crc32::new();
            parts.update(&data[..split]);
            parts.update(&data[split..]);
            prop_assert_eq!(whole.value(), parts.value());
        }
    }

    #[test]
    fn different_seeds_differ() {
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        PayloadStream::new(1).fill(&mut a);
        PayloadStream::new(2).fill(&mut b);
        assert_ne!(a, b);
    }
}
