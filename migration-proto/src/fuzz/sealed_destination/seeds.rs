//! Seed scripts for the sealed destination: short inputs that reach the deep states (a
//! released VM in every version and delivery mode, a commit refused on a forged page digest,
//! runs of every page encoding). The checked-in corpus is written from these
//! (`examples/fuzz.rs --write-corpus`), and the tests below pin what each one reaches, so a
//! change of the script format that would make the corpus meaningless fails here.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Setup bytes: flags (versions: 0 = 2..=3, 1 = 2, 2 = 3; bit 2 = pages as events), the
/// capabilities each side withholds (none), pages, vCPUs.
fn setup(versions: u8, events: bool, pages: u8, vcpus: u8) -> Vec<u8> {
    vec![
        versions | if events { 4 } else { 0 },
        0,
        0,
        pages - 1,
        vcpus - 1,
    ]
}

/// An honest migration (op 19; the zero bytes after it finish it).
fn honest(versions: u8, events: bool) -> Vec<u8> {
    let mut input = setup(versions, events, 5, 2);
    input.push(19);
    input
}

/// Version 3, 3 pages, 1 vCPU: all pages, the vCPU, a page digest (`digest` = its mode
/// bytes), commit. Every frame is followed by its delivery byte (1 = unsplit).
fn commit_script(digest: &[u8]) -> Vec<u8> {
    let mut input = setup(2, false, 3, 1);
    input.extend_from_slice(&[6, 0x11, 0, 0, 0, 1]); // all pages: fill, patch, delivery
    input.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]); // vCPU 0, rip 0
    input.push(9);
    input.extend_from_slice(digest);
    input.push(1);
    input.extend_from_slice(&[11, 1]); // commit
    input
}

/// Version 3 into memory, 4 pages: one planned run per page encoding, then (`finish`) an
/// honest end without sending the pages again, or (otherwise) a run of garbage LZ4.
fn planned_runs(finish: bool) -> Vec<u8> {
    let mut input = setup(2, false, 4, 1);
    // op 2 (planned run), first page (after a "not far" byte), one page (after a "not long"
    // byte), the page: encoding and content (kind 0 = a fill byte), delivery byte.
    let run = |pfn: u8, page: &[u8]| [&[2, 1, pfn, 1, 0][..], page, &[1]].concat();
    input.extend(run(0, &[0])); // zero page
    input.extend(run(1, &[1, 0, 0x11])); // raw
    input.extend(run(2, &[2, 0, 0x22])); // LZ4
    input.extend(run(3, &[3, 0, 0x33, 0])); // delta against the destination's copy
    input.extend(run(1, &[4, 0, 0x44, 1, 0, 0x55])); // delta against a wrong base
    if finish {
        input.extend_from_slice(&[19, 2]);
    } else {
        input.extend(run(2, &[5, 0, 3, 0, 1, 2, 3])); // garbage LZ4: refused
    }
    input
}

/// The seed scripts, named.
pub fn sealed_destination_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for versions in 0..3u8 {
        for events in [false, true] {
            let mode = if events { "events" } else { "memory" };
            let name = alloc::format!(
                "honest-v{}-{mode}",
                ["2-3", "2", "3"][usize::from(versions)]
            );
            seeds.push((name, honest(versions, events)));
        }
    }
    seeds.push(("commit-honest-digest".into(), commit_script(&[0])));
    seeds.push(("commit-forged-digest".into(), commit_script(&[1, 3, 2])));
    seeds.push(("planned-runs-released".into(), planned_runs(true)));
    seeds.push(("planned-runs-garbage".into(), planned_runs(false)));
    seeds
}

#[cfg(test)]
mod tests {
    use super::super::sealed_destination;
    use super::*;

    #[test]
    fn an_honest_script_reaches_released_in_every_mode() {
        for versions in 0..3 {
            for events in [false, true] {
                let outcome = sealed_destination(&honest(versions, events));
                assert!(
                    outcome.released,
                    "versions {versions} events {events}: {outcome:?}"
                );
                assert!(outcome.commit_requested && outcome.runs_accepted >= 1);
            }
        }
    }

    #[test]
    fn a_forged_page_digest_never_commits() {
        let honest = sealed_destination(&commit_script(&[0]));
        assert!(honest.commit_requested && !honest.failed, "{honest:?}");
        let forged = sealed_destination(&commit_script(&[1, 3, 2])); // byte 3, bit 2 flipped
        assert!(forged.failed && !forged.commit_requested, "{forged:?}");
    }

    #[test]
    fn runs_of_every_page_encoding_are_modelled() {
        // The model is checked inside the harness at commit and at the end of the input.
        let garbage = sealed_destination(&planned_runs(false));
        assert_eq!(garbage.runs_accepted, 5, "{garbage:?}");
        assert!(garbage.failed, "{garbage:?}");
        let released = sealed_destination(&planned_runs(true));
        assert_eq!(released.runs_accepted, 5, "{released:?}");
        assert!(released.released, "{released:?}");
    }

    #[test]
    fn random_scripts_never_panic_and_some_commit() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut commits = 0;
        for _ in 0..400 {
            let len = (next() % 300) as usize;
            let input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if sealed_destination(&input).commit_requested {
                commits += 1;
            }
        }
        assert!(commits > 0, "no random script reached the commit");
    }
}
