//! Seed scripts for the sealed source: honest migrations in every version, with and
//! without a delta cache and the whole-memory digest, and a small output buffer. The tests
//! pin what each reaches (completion with the memories compared), so a change of the script
//! format that would make the checked-in corpus meaningless fails here.

use alloc::vec;
use alloc::vec::Vec;

/// An honest migration: setup (`flags`: versions in bits 0-1, small output buffer in bit 2;
/// 3 pages, 1 vCPU, all capabilities, `delta_pages` pages of delta cache), every page, a
/// guest write reported and the page sent again, the vCPU, commit (with the whole-memory
/// digest if `full`), relay.
fn honest_script(flags: u8, delta_pages: u8, full: bool) -> Vec<u8> {
    let mut input = vec![flags, 2, 0, 0, delta_pages];
    input.extend_from_slice(&[0, 1, 0, 2, 1]); // pages 0..3, not relayed yet
    input.extend_from_slice(&[3, 0, 0, 1, 0x5a, 1]); // guest writes 0x5a in page 0, reported
    input.extend_from_slice(&[0, 1, 0, 0, 1]); // page 0 again (a delta with a cache)
    input.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // vCPU 0, rip 0
    input.extend_from_slice(&[7, u8::from(!full), 1]); // commit, relay all
    input
}

/// The seed scripts, named.
pub fn sealed_source_seeds() -> Vec<(alloc::string::String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (flags, name) in [(0, "v2-3"), (1, "v2"), (2, "v3"), (6, "v3-small-buffer")] {
        for (delta, full) in [(0, true), (2, false)] {
            let digest = if full { "full" } else { "page-digest" };
            seeds.push((
                alloc::format!("honest-{name}-delta{delta}-{digest}"),
                honest_script(flags, delta, full),
            ));
        }
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::super::sealed_source;
    use super::*;

    #[test]
    fn honest_scripts_complete_and_the_memories_match() {
        for (name, script) in sealed_source_seeds() {
            let outcome = sealed_source(&script);
            // Version 2 needs the whole-memory digest: without it the commit is refused.
            if name.starts_with("honest-v2-delta2") {
                assert!(!outcome.completed, "{name}: {outcome:?}");
                continue;
            }
            assert!(outcome.completed && outcome.verified, "{name}: {outcome:?}");
            assert_eq!(outcome.runs_sent, 2, "{name}");
        }
    }

    #[test]
    fn a_lost_write_is_not_verified_but_a_reported_one_is() {
        let mut lost = honest_script(2, 0, false);
        // The guest write's "reported" byte: 0 makes one_in(16) true, a lost write.
        lost[15] = 0;
        let outcome = sealed_source(&lost);
        assert!(outcome.completed && !outcome.verified, "{outcome:?}");
    }

    #[test]
    fn random_scripts_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300 {
            let len = (x % 200) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            sealed_source(&input);
        }
    }
}
