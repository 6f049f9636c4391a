//! Deterministic fuzzing: random bytes and random mutations of a valid config must produce a
//! config or an error, never a panic. A seeded xorshift keeps every run identical, so a
//! failure is reproducible from the printed seed and iteration.

use alloc::string::String;
use alloc::vec::Vec;

use super::super::*;
use super::FULL_EXAMPLE;

/// Marsaglia's xorshift64: tiny, deterministic, good enough to pick mutations.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or("")
    }
}

/// Fragments that are meaningful to the parser, so mutations reach deep code paths.
const FRAGMENTS: &[&str] = &[
    "[",
    "]",
    "=",
    "#",
    "\"",
    "\r",
    "\n",
    "\t",
    " ",
    "\u{feff}",
    "é",
    "\u{10ffff}",
    "\0",
    "/",
    "\\",
    "..",
    ":",
    ".",
    "[vm x]",
    "[host]",
    "[net]",
    "[migration]",
    "name",
    "mode",
    "static",
    "address",
    "gateway",
    "mac",
    "memory",
    "image",
    "kernel",
    "initrd",
    "cmdline",
    "vcpus",
    "autostart",
    "cpu",
    "tigerlake",
    "port",
    "key",
    "64M",
    "4294967296",
    "99999999999999999999",
    "0",
    "1",
    "255",
    "/33",
    "ff",
    "yes",
];

/// Checks the invariants every result must satisfy, beyond not panicking.
fn check_result(text: &str) {
    match parse(text) {
        Ok(config) => {
            assert!(config.vms.len() <= MAX_VMS);
            assert!(!config.host.name.is_empty());
            for vm in &config.vms {
                assert!(vm.memory_bytes % 4096 == 0 && vm.memory_bytes >= 1 << 20);
                assert!(vm.cmdline.len() <= MAX_CMDLINE_LEN);
                assert_eq!(vm.vcpus, 1);
            }
        }
        Err(err) => {
            // Formatting must not panic either, and the line is within the file.
            let _ = alloc::format!("{err}");
            let lines = text.split('\n').count();
            assert!(
                usize::try_from(err.line).unwrap_or(usize::MAX) <= lines,
                "{err:?}"
            );
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
        let _ = parse_bytes(&bytes);
        check_result(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn random_mutations_of_the_example_never_panic() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut parsed_ok = 0;
    for _ in 0..3000 {
        let mut text = String::from(FULL_EXAMPLE);
        for _ in 0..=rng.below(4) {
            // Only cut at char boundaries when building the mutant; the parser gets a &str.
            let boundaries: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect();
            let at = boundaries
                .get(rng.below(boundaries.len()))
                .copied()
                .unwrap_or(0);
            let end = boundaries
                .get(rng.below(boundaries.len()))
                .copied()
                .unwrap_or(0)
                .max(at);
            // Cuts end at a char boundary too: at most `n` bytes after `at`.
            let cut = |n: usize| {
                boundaries
                    .iter()
                    .copied()
                    .filter(|&b| b >= at && b <= end.min(at + n))
                    .max()
                    .unwrap_or(at)
            };
            match rng.below(4) {
                0 => text.insert_str(at, rng.pick(FRAGMENTS)),
                1 => text.replace_range(at..cut(8), ""),
                2 => text.replace_range(at..cut(3), rng.pick(FRAGMENTS)),
                _ => {
                    // Duplicate a line elsewhere.
                    let lines: Vec<&str> = text.lines().collect();
                    let line = String::from(
                        lines
                            .get(rng.below(lines.len().max(1)))
                            .copied()
                            .unwrap_or(""),
                    );
                    text.insert_str(at, &alloc::format!("\n{line}\n"));
                }
            }
        }
        check_result(&text);
        parsed_ok += usize::from(parse(&text).is_ok());
    }
    // The mutations are small: some mutants must still parse, or the test exercises nothing
    // but the first error of every file.
    assert!(parsed_ok > 100, "only {parsed_ok} mutants parsed");
}

#[test]
fn every_line_of_the_example_shuffled_into_random_orders_never_panics() {
    let mut rng = XorShift(0xdead_beef_cafe_f00d);
    let lines: Vec<&str> = FULL_EXAMPLE.lines().collect();
    for _ in 0..1000 {
        let count = rng.below(lines.len() * 2);
        let text: Vec<&str> = (0..count)
            .map(|_| lines.get(rng.below(lines.len())).copied().unwrap_or(""))
            .collect();
        check_result(&text.join(if rng.below(2) == 0 { "\n" } else { "\r\n" }));
    }
}
