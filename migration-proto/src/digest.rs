//! The memory digest: BLAKE3 over the whole guest memory, in guest-physical order.
//!
//! Both sides compute it over their copy of the memory after the last page was applied; the
//! destination refuses to commit when the two differ. It is a derive-key-mode hash with its
//! own context string, so it can never be confused with the MACs or keys of the session.

/// A 32-byte memory digest.
pub type Digest = [u8; 32];

const CONTEXT: &str = "tern migration 2026-11 guest memory digest";

/// Incremental digest: feed guest memory in order, in chunks of any size.
#[derive(Clone)]
pub struct MemoryDigester {
    hasher: blake3::Hasher,
}

impl MemoryDigester {
    /// Starts a digest over `memory_bytes` bytes of guest memory (the size is hashed first, so
    /// memories of different sizes never share a digest).
    pub fn new(memory_bytes: u64) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
        hasher.update(&memory_bytes.to_le_bytes());
        MemoryDigester { hasher }
    }

    /// Hashes the next chunk of memory.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
    }

    /// The digest.
    pub fn finalize(&self) -> Digest {
        *self.hasher.finalize().as_bytes()
    }
}

/// Digest of a complete memory image.
pub fn digest_memory(memory: &[u8]) -> Digest {
    let mut d = MemoryDigester::new(memory.len() as u64);
    d.update(memory);
    d.finalize()
}

/// Constant-time comparison of two digests or tags.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_digest_equals_whole_digest() {
        let mem: alloc::vec::Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
        let mut d = MemoryDigester::new(mem.len() as u64);
        for chunk in mem.chunks(333) {
            d.update(chunk);
        }
        assert_eq!(d.finalize(), digest_memory(&mem));
        let mut other = mem.clone();
        other[19_999] ^= 1;
        assert_ne!(digest_memory(&other), digest_memory(&mem));
        assert_ne!(digest_memory(&mem[..4096]), digest_memory(&mem[..8192]));
    }
}
