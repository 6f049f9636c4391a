//! A fuzz input read as a script of small decisions.
//!
//! Why not `arbitrary`: the stable driver (`examples/fuzz.rs`), the host tests and the
//! cargo-fuzz targets share the harnesses, and the crate takes no dependency for them. A
//! plain byte cursor serves libFuzzer just as well: each decision consumes a byte or a few,
//! so a mutation changes one decision and leaves the others in place. Past the end of the
//! input every read yields zero, which makes every input, however short, a complete script.

/// The cursor over one fuzz input.
pub(crate) struct Script<'a> {
    data: &'a [u8],
}

impl<'a> Script<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Script { data }
    }

    /// Whether the input is used up.
    pub(crate) fn is_done(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A choice among `n` (0 if `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n.max(1)
    }

    /// True about once in `n` times.
    pub(crate) fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// Up to `len` bytes (fewer at the end of the input).
    pub(crate) fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        taken
    }

    /// A length-prefixed blob (u16 length, at most `max` bytes).
    pub(crate) fn blob(&mut self, max: usize) -> &'a [u8] {
        let len = usize::from(self.u16()) % (max + 1);
        self.bytes(len)
    }

    /// A 32-byte array (zero-padded at the end of the input).
    pub(crate) fn array32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        let b = self.bytes(32);
        out[..b.len()].copy_from_slice(b);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_are_zero() {
        let mut s = Script::new(&[1, 2, 3]);
        assert_eq!(s.u16(), 0x0201);
        assert_eq!(s.u32(), 3);
        assert!(s.is_done());
        assert_eq!(s.bytes(5), &[] as &[u8]);
        assert_eq!(s.below(7), 0);
    }

    #[test]
    fn blob_is_length_prefixed_and_bounded() {
        let mut s = Script::new(&[2, 0, 9, 8, 7, 7, 0, 1, 2, 3, 4]);
        assert_eq!(s.blob(3), &[9, 8]);
        assert_eq!(s.u8(), 7);
        // 7 % (3 + 1): the length wraps into the bound.
        assert_eq!(s.blob(3), &[1, 2, 3]);
        assert_eq!(s.u8(), 4);
    }
}
