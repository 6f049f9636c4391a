//! The host's self-check (`selfcheck`): digests of what no guest may change, so that a test
//! (or an operator) can compare them before and after a hostile guest has run.
//!
//! What is covered, and why:
//! - the hypervisor image's read-only part (text and rodata, from `__image_start` to
//!   `__readonly_end`): code and constant tables; a guest that could write here would own
//!   the host;
//! - canary frames the host allocates right before and after each VM's RAM, filled with a
//!   pattern derived from their own physical address: an EPT mapping that spilled one page
//!   past a VM's RAM, or a copy that ran over, lands there first;
//! - the RAM of every VM that is not running (a running VM changes its own RAM).
//!
//! Digests are BLAKE3. This part is portable (host-tested); the kernel's `vms` module
//! gathers the memory.

use core::fmt;

/// Bytes per canary frame.
pub const CANARY_BYTES: usize = 4096;

/// The canary word at byte offset `8 * index` of the frame at `phys`: distinct per frame and
/// per word, so a copy of one canary onto another is caught too.
pub fn canary_word(phys: u64, index: usize) -> u64 {
    (phys ^ 0x7465_726e_6361_6e61).rotate_left(13)
        ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Fill a canary frame at `phys` (its bytes in `frame`).
pub fn fill_canary(phys: u64, frame: &mut [u8]) {
    for (i, chunk) in frame.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&canary_word(phys, i).to_le_bytes());
    }
}

/// The first byte offset in `frame` that no longer holds the canary for `phys`.
pub fn first_canary_mismatch(phys: u64, frame: &[u8]) -> Option<usize> {
    frame
        .chunks_exact(8)
        .enumerate()
        .find(|(i, chunk)| **chunk != canary_word(phys, *i).to_le_bytes())
        .map(|(i, _)| i * 8)
}

/// A digest printed as 64 lower-case hex digits.
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One line of `selfcheck` output: `selfcheck WHAT blake3=HEX DETAIL`.
pub fn write_line(
    out: &mut dyn fmt::Write,
    what: &str,
    digest: &blake3::Hash,
    detail: fmt::Arguments<'_>,
) -> fmt::Result {
    writeln!(
        out,
        "selfcheck {what} blake3={} {detail}",
        Hex(digest.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;

    #[test]
    fn canary_detects_a_changed_word_and_a_moved_frame() {
        let mut frame = vec![0u8; CANARY_BYTES];
        fill_canary(0x1000, &mut frame);
        assert_eq!(first_canary_mismatch(0x1000, &frame), None);
        assert_eq!(first_canary_mismatch(0x2000, &frame), Some(0));
        frame[4000] ^= 1;
        assert_eq!(first_canary_mismatch(0x1000, &frame), Some(4000));
    }

    #[test]
    fn line_format() {
        let mut out = String::new();
        let digest = blake3::hash(b"abc");
        write_line(&mut out, "image", &digest, format_args!("bytes=3")).unwrap();
        assert_eq!(
            out,
            "selfcheck image blake3=6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85 bytes=3\n"
        );
    }
}
