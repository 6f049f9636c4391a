//! `cargo xtask fuzz TARGET [--runs N]`: the coverage-guided fuzz targets of
//! `migration-proto/fuzz/` (cargo-fuzz, libFuzzer) as one documented command.
//!
//! A developer command, not part of `test` or CI: cargo-fuzz needs the nightly toolchain,
//! and CI must not. When nightly or cargo-fuzz is missing it prints the commands that
//! install them instead of installing anything itself. The run mutates a working corpus
//! under the target directory seeded from the checked-in one, so new inputs never land in
//! the repository; crashes go to `migration-proto/fuzz/artifacts/TARGET/`.

use anyhow::{Context, Result, bail};
use std::process::Command;

use crate::prereq::run;
use crate::workspace::Workspace;

/// The targets, with the longest input each is run with (`None`: libFuzzer's default).
/// The sealed targets' inputs are scripts of operations; past 256 bytes they only take
/// longer (every page a script sends is encoded, sealed, opened, decoded and hashed).
pub const TARGETS: [(&str, Option<u32>); 3] = [
    ("decoders", None),
    ("sealed_session", Some(256)),
    ("sealed_source", Some(256)),
];

/// Runs `target` for `runs` inputs (one process, one core).
pub fn fuzz(ws: &Workspace, target: &str, runs: u64) -> Result<()> {
    let Some(&(_, max_len)) = TARGETS.iter().find(|(name, _)| *name == target) else {
        let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
        bail!(
            "unknown fuzz target `{target}`; targets: {}",
            names.join(", ")
        );
    };
    check_tools()?;
    let crate_dir = ws.root.join("migration-proto");
    let seeds = crate_dir.join("fuzz/corpus").join(target);
    let work = ws.target_dir.join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&crate_dir)
        .args(["+nightly", "fuzz", "run", "--sanitizer", "none", target])
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-runs={runs}"))
        .arg("-print_final_stats=1");
    if let Some(max_len) = max_len {
        cmd.arg(format!("-max_len={max_len}"));
    }
    run(&mut cmd)
}

/// Nightly and cargo-fuzz are there, or the error says how to install them.
fn check_tools() -> Result<()> {
    let nightly = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("nightly"))
        .unwrap_or(false);
    let cargo_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if nightly && cargo_fuzz {
        return Ok(());
    }
    let mut steps = Vec::new();
    if !nightly {
        steps.push("rustup toolchain install nightly --profile minimal");
    }
    if !cargo_fuzz {
        steps.push("cargo install cargo-fuzz");
    }
    bail!(
        "the fuzz targets need the nightly toolchain and cargo-fuzz; install with:\n  {}",
        steps.join("\n  ")
    )
}
