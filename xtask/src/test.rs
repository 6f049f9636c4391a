//! `cargo xtask test`: everything CI checks, in order, with a summary.
//!
//! 1. `cargo fmt --check`
//! 2. clippy `-D warnings` for every crate on its own target
//! 3. host tests (`cargo test`, the workspace's default members)
//! 4. `cargo xtask build`
//! 5. system tests: `cargo test -p system-tests -- --ignored --test-threads=2` (two emulators
//!    at a time: the machines have two cores and Bochs takes one whole core)
//!
//! Every step runs even if an earlier one failed (a CI log should show all problems at
//! once), except the system tests, which need a build.

use crate::build::{self, BuildOptions};
use crate::hostcfg::NetConfig;
use crate::progress::{Step, seconds};
use crate::workspace::{BARE_TARGET, GUESTS, UEFI_TARGET, Workspace, cargo};
use crate::{prereq, workspace};
use anyhow::{Result, bail};
use std::process::Command;
use std::time::Duration;

/// Options of `cargo xtask test`.
#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    /// Skip the system tests.
    pub quick: bool,
    /// Only system tests whose name contains this.
    pub filter: Option<String>,
    /// Emulators at a time.
    pub threads: Option<usize>,
}

/// Outcome of one step.
struct Outcome {
    name: String,
    passed: Option<bool>,
    took: Duration,
}

/// Run all checks; fail if any failed.
pub fn test(ws: &Workspace, options: &TestOptions) -> Result<()> {
    prereq::ensure(ws)?;
    let mut outcomes = Vec::new();
    let mut step = |name: &str, cmd: Command| {
        let outcome = run_step(name, cmd);
        outcomes.push(outcome);
    };
    step("rustfmt", cargo_cmd(&["fmt", "--all", "--", "--check"]));
    step(
        "clippy (host crates)",
        cargo_cmd(&["clippy", "--all-targets", "--", "-D", "warnings"]),
    );
    step(
        "clippy (hypervisor, bare metal)",
        cargo_cmd(&[
            "clippy",
            "-p",
            "hypervisor",
            "--target",
            BARE_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
    );
    step(
        "clippy (loader, UEFI)",
        cargo_cmd(&[
            "clippy",
            "-p",
            "loader",
            "--target",
            UEFI_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
    );
    step(
        "clippy (migration-proto, no_std)",
        cargo_cmd(&[
            "clippy",
            "-p",
            "migration-proto",
            "--no-default-features",
            "--target",
            BARE_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
    );
    for &guest in GUESTS.iter().filter(|g| ws.has_package(g)) {
        step(
            &format!("clippy ({guest} guest)"),
            cargo_cmd(&[
                "clippy",
                "-p",
                guest,
                "--target",
                BARE_TARGET,
                "--",
                "-D",
                "warnings",
            ]),
        );
    }
    step("host tests", cargo_cmd(&["test"]));

    let s = Step::start("xtask build");
    let built = build::build(
        ws,
        &BuildOptions {
            debug: false,
            net: NetConfig::None,
        },
    )
    .map_err(|e| eprintln!("[xtask] xtask build: FAILED: {e:#}"))
    .is_ok();
    outcomes.push(Outcome {
        name: "xtask build".into(),
        passed: Some(built),
        took: s.done(),
    });

    if options.quick {
        outcomes.push(Outcome {
            name: "system tests (--quick)".into(),
            passed: None,
            took: Duration::ZERO,
        });
    } else if !built {
        eprintln!("[xtask] system tests skipped: the build failed");
        outcomes.push(Outcome {
            name: "system tests (no build)".into(),
            passed: None,
            took: Duration::ZERO,
        });
    } else {
        let work = ws.build_dir().join("test-runs");
        if work.exists() {
            let _ = std::fs::remove_dir_all(&work);
        }
        let threads = options.threads.unwrap_or(2).to_string();
        let mut args = vec![
            "test",
            "-p",
            "system-tests",
            "--",
            "--ignored",
            "--test-threads",
            &threads,
        ];
        if let Some(filter) = &options.filter {
            args.push(filter);
        }
        let mut cmd = cargo_cmd(&args);
        cmd.env(system_tests::ESP_DIR_ENV, ws.esp_dir())
            .env(system_tests::ESP_IMAGE_ENV, ws.esp_image())
            .env(system_tests::WORK_DIR_ENV, &work)
            .env(
                system_tests::linux::LINUX_DIR_ENV,
                crate::linux_image::dir(ws),
            );
        eprintln!("[xtask] system test transcripts go to {}", work.display());
        outcomes.push(run_step("system tests", cmd));
    }
    summarize(&outcomes)
}

/// Run one command as a step.
fn run_step(name: &str, mut cmd: Command) -> Outcome {
    let step = Step::start(name);
    let passed = prereq::run(&mut cmd)
        .map_err(|e| eprintln!("[xtask] {name}: FAILED: {e:#}"))
        .is_ok();
    Outcome {
        name: name.to_string(),
        passed: Some(passed),
        took: step.done(),
    }
}

fn cargo_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.args(args).current_dir(workspace::root());
    cmd
}

fn summarize(outcomes: &[Outcome]) -> Result<()> {
    eprintln!("\n[xtask] summary:");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for outcome in outcomes {
        let verdict = match outcome.passed {
            Some(true) => {
                passed += 1;
                "ok    "
            }
            Some(false) => {
                failed += 1;
                "FAILED"
            }
            None => {
                skipped += 1;
                "skip  "
            }
        };
        eprintln!(
            "[xtask]   {verdict} {:40} {:>8}",
            outcome.name,
            seconds(outcome.took)
        );
    }
    // The plain closing line CI reads.
    println!("xtask: {passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        bail!("{failed} step(s) failed");
    }
    Ok(())
}
