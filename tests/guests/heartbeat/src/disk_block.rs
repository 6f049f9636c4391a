//! The heartbeat's self-checking disk blocks (`hb.disk=1`).
//!
//! Why this format: after a storage migration the guest must be able to tell, from one
//! 512-byte sector alone, whether it holds exactly what it wrote last there. So each block
//! names itself (its number), carries the number of the write that produced it (a global
//! sequence, so a stale block from an earlier pass is told apart from the current one),
//! a payload derived from both, and a checksum over all of it (a torn or damaged block).
//!
//! Write `w` (0, 1, 2...) goes to block `w % blocks` with sequence `w`, so what a block must
//! hold after `writes` writes is computable ([`expected_sequence`]) with no table in memory.
//!
//! Layout: `HBDISK01` | block u64 LE | sequence u64 LE | 480 payload bytes | FNV-1a-64 of the
//! first 504 bytes, LE.

/// Bytes in a block: one sector.
pub const BLOCK_BYTES: usize = 512;

const MAGIC: &[u8; 8] = b"HBDISK01";
const SUM_AT: usize = BLOCK_BYTES - 8;

/// What is wrong with a block read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockMismatch {
    /// No heartbeat block there at all (never written, or overwritten by something else).
    NoMagic,
    /// The checksum does not match the contents: damaged or torn.
    BadChecksum,
    /// An intact block of another block number: a write landed in the wrong place.
    WrongBlock {
        /// The block number it names.
        found: u64,
    },
    /// An intact block of this number from another write: stale (a lost write) or from
    /// the future (a write that should not have happened).
    WrongSequence {
        /// The sequence it carries.
        found: u64,
    },
}

impl BlockMismatch {
    /// The word used in the guest's `CORRUPT` line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NoMagic => "no-magic",
            Self::BadChecksum => "bad-checksum",
            Self::WrongBlock { .. } => "wrong-block",
            Self::WrongSequence { .. } => "wrong-sequence",
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn payload_byte(block: u64, sequence: u64, i: usize) -> u8 {
    let x = block
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(sequence.rotate_left(17))
        .wrapping_add(i as u64);
    (x ^ (x >> 29)).to_le_bytes()[i % 8]
}

/// The block that write `sequence` puts at block number `block`.
pub fn encode(block: u64, sequence: u64) -> [u8; BLOCK_BYTES] {
    let mut out = [0u8; BLOCK_BYTES];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&block.to_le_bytes());
    out[16..24].copy_from_slice(&sequence.to_le_bytes());
    for (i, b) in out[24..SUM_AT].iter_mut().enumerate() {
        *b = payload_byte(block, sequence, i);
    }
    let sum = fnv1a(&out[..SUM_AT]);
    out[SUM_AT..].copy_from_slice(&sum.to_le_bytes());
    out
}

fn u64_at(bytes: &[u8; BLOCK_BYTES], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Checks that `bytes` is block `block` as written by write `sequence`.
pub fn check(bytes: &[u8; BLOCK_BYTES], block: u64, sequence: u64) -> Result<(), BlockMismatch> {
    if &bytes[..8] != MAGIC {
        return Err(BlockMismatch::NoMagic);
    }
    if fnv1a(&bytes[..SUM_AT]) != u64_at(bytes, SUM_AT) {
        return Err(BlockMismatch::BadChecksum);
    }
    let found = u64_at(bytes, 8);
    if found != block {
        return Err(BlockMismatch::WrongBlock { found });
    }
    let found = u64_at(bytes, 16);
    if found != sequence {
        return Err(BlockMismatch::WrongSequence { found });
    }
    Ok(())
}

/// The sequence an intact heartbeat block numbered `block` carries, if `bytes` is one
/// (a disk that kept a previous run's blocks, e.g. on the host disk across a reboot).
pub fn sequence_of(bytes: &[u8; BLOCK_BYTES], block: u64) -> Option<u64> {
    let found = u64_at(bytes, 16);
    check(bytes, block, found).ok().map(|()| found)
}

/// The sequence block `block` holds after `writes` writes over `blocks` blocks, or `None`
/// if no write has reached it yet.
pub fn expected_sequence(block: u64, writes: u64, blocks: u64) -> Option<u64> {
    if blocks == 0 || block >= blocks || writes <= block {
        return None;
    }
    let last = writes - 1;
    // The largest w <= last with w % blocks == block.
    Some(last - (last + blocks - block) % blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_of_reads_intact_blocks_of_the_right_number_only() {
        let b = encode(3, 77);
        assert_eq!(sequence_of(&b, 3), Some(77));
        assert_eq!(sequence_of(&b, 4), None);
        let mut torn = b;
        torn[100] ^= 1;
        assert_eq!(sequence_of(&torn, 3), None);
        assert_eq!(sequence_of(&[0; BLOCK_BYTES], 0), None);
    }

    #[test]
    fn a_block_checks_as_itself_only() {
        let b = encode(7, 1234);
        assert_eq!(check(&b, 7, 1234), Ok(()));
        assert_eq!(
            check(&b, 8, 1234),
            Err(BlockMismatch::WrongBlock { found: 7 })
        );
        assert_eq!(
            check(&b, 7, 1300),
            Err(BlockMismatch::WrongSequence { found: 1234 })
        );
        assert_eq!(
            check(&[0; BLOCK_BYTES], 7, 1234),
            Err(BlockMismatch::NoMagic)
        );
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let good = encode(3, 99);
        for byte in 8..BLOCK_BYTES {
            let mut bad = good;
            bad[byte] ^= 0x10;
            assert!(check(&bad, 3, 99).is_err(), "byte {byte}");
        }
    }

    #[test]
    fn expected_sequence_is_the_last_write_to_the_block() {
        let blocks = 4;
        // Writes 0..10 go to blocks 0,1,2,3,0,1,2,3,0,1.
        let mut last = [None; 4];
        for writes in 0..=10u64 {
            for b in 0..blocks {
                assert_eq!(
                    expected_sequence(b, writes, blocks),
                    last[b as usize],
                    "{b} {writes}"
                );
            }
            if writes < 10 {
                last[(writes % blocks) as usize] = Some(writes);
            }
        }
        assert_eq!(expected_sequence(4, 100, 4), None);
        assert_eq!(expected_sequence(0, 100, 0), None);
    }
}
