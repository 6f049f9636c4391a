//! Prerequisites: Debian packages (emulators, firmware, FAT tools) and the pinned Rust
//! toolchain's targets and components.
//!
//! Presence is decided by files the packages install and by `rustup ... --installed`, so a
//! machine that has everything pays a few milliseconds. What is missing is installed when we
//! are root on a machine with apt-get; otherwise we stop and print the exact command.

use crate::progress::Step;
use crate::workspace::{BARE_TARGET, UEFI_TARGET, Workspace};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// A Debian package and a file whose presence proves it is installed.
struct SystemPackage {
    name: &'static str,
    evidence: &'static str,
    why: &'static str,
}

const PACKAGES: &[SystemPackage] = &[
    SystemPackage {
        name: "bochs",
        evidence: "/usr/bin/bochs",
        why: "VT-x emulator (also provides bxhub)",
    },
    SystemPackage {
        name: "bochs",
        evidence: "/usr/bin/bxhub",
        why: "Ethernet hub for Bochs hosts",
    },
    SystemPackage {
        name: "bochsbios",
        evidence: "/usr/share/bochs/BIOS-bochs-latest",
        why: "Bochs default ROMs",
    },
    SystemPackage {
        name: "vgabios",
        evidence: "/usr/share/vgabios/vgabios.bin",
        why: "VGA ROM for Bochs",
    },
    SystemPackage {
        name: "ovmf",
        evidence: "/usr/share/ovmf/OVMF.fd",
        why: "UEFI firmware for both emulators",
    },
    SystemPackage {
        name: "qemu-system-x86",
        evidence: "/usr/bin/qemu-system-x86_64",
        why: "fast emulator without VT-x",
    },
    SystemPackage {
        name: "mtools",
        evidence: "/usr/bin/mcopy",
        why: "copies files into the FAT image",
    },
    SystemPackage {
        name: "dosfstools",
        evidence: "/usr/sbin/mkfs.fat",
        why: "formats the FAT image",
    },
    SystemPackage {
        name: "e2fsprogs",
        evidence: "/usr/sbin/mkfs.ext4",
        why: "makes the Linux guest's ext4 disk image",
    },
];

/// Rust components every developer command needs.
const COMPONENTS: &[&str] = &["clippy", "rustfmt"];

/// Check everything; install what is missing if we can, else fail with the command to run.
pub fn ensure(ws: &Workspace) -> Result<()> {
    let step = Step::start("check prerequisites");
    ensure_system_packages()?;
    ensure_rust(ws)?;
    step.done();
    Ok(())
}

fn ensure_system_packages() -> Result<()> {
    let missing = missing_packages(|path| Path::new(path).exists());
    for package in PACKAGES.iter().filter(|p| missing.contains(&p.name)) {
        eprintln!(
            "[xtask]   missing {} ({}): no {}",
            package.name, package.why, package.evidence
        );
    }
    if missing.is_empty() {
        return Ok(());
    }
    let command = install_command(&missing);
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        bail!("missing system packages; as root, run:\n    {command}");
    }
    let step = Step::start(format!("install {}", missing.join(" ")));
    run(Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    step.done();
    for package in PACKAGES {
        if !Path::new(package.evidence).exists() {
            bail!(
                "{} is still missing after installing {}",
                package.evidence,
                package.name
            );
        }
    }
    Ok(())
}

/// The packages (each once) whose evidence file does not exist.
fn missing_packages(exists: impl Fn(&str) -> bool) -> Vec<&'static str> {
    let mut missing: Vec<&'static str> = Vec::new();
    for package in PACKAGES {
        if !exists(package.evidence) && !missing.contains(&package.name) {
            missing.push(package.name);
        }
    }
    missing
}

/// The command an administrator runs to install `missing`.
fn install_command(missing: &[&str]) -> String {
    format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
        missing.join(" ")
    )
}

fn ensure_rust(ws: &Workspace) -> Result<()> {
    let toolchain = ws.toolchain()?;
    let targets = rustup_list(&["target", "list", "--installed", "--toolchain", &toolchain])?;
    let components = rustup_list(&[
        "component",
        "list",
        "--installed",
        "--toolchain",
        &toolchain,
    ])?;
    let missing_targets: Vec<&str> = [BARE_TARGET, UEFI_TARGET]
        .into_iter()
        .filter(|t| !targets.iter().any(|have| have == t))
        .collect();
    let missing_components: Vec<&str> = COMPONENTS
        .iter()
        .copied()
        .filter(|c| {
            !components
                .iter()
                .any(|have| have.starts_with(&format!("{c}-")) || have == c)
        })
        .collect();
    if missing_targets.is_empty() && missing_components.is_empty() {
        return Ok(());
    }
    let step = Step::start(format!(
        "rustup: add {}",
        missing_targets
            .iter()
            .chain(&missing_components)
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // `toolchain install` on an installed toolchain adds what is missing and is idempotent.
    run(Command::new("rustup").args([
        "toolchain",
        "install",
        &toolchain,
        "--profile",
        "minimal",
        "-c",
        &COMPONENTS.join(","),
        "-t",
        &format!("{BARE_TARGET},{UEFI_TARGET}"),
    ]))?;
    step.done();
    Ok(())
}

fn rustup_list(args: &[&str]) -> Result<Vec<String>> {
    let out = Command::new("rustup")
        .args(args)
        .output()
        .context("run rustup (is it installed? see README)")?;
    if !out.status.success() {
        bail!(
            "`rustup {}` failed:\n{}\ninstall the toolchain with: rustup toolchain install {} --profile minimal",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            args.last().copied().unwrap_or("")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect())
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Run a command with inherited output; fail if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_when_every_file_exists() {
        assert!(missing_packages(|_| true).is_empty());
    }

    #[test]
    fn a_package_with_two_missing_files_is_listed_once() {
        let missing = missing_packages(|path| !path.starts_with("/usr/bin/b"));
        assert_eq!(missing, ["bochs"]);
        assert_eq!(
            install_command(&missing),
            "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y bochs"
        );
    }

    #[test]
    fn everything_missing_lists_each_package() {
        let missing = missing_packages(|_| false);
        for name in [
            "bochs",
            "bochsbios",
            "vgabios",
            "ovmf",
            "qemu-system-x86",
            "mtools",
            "dosfstools",
            "e2fsprogs",
        ] {
            assert!(missing.contains(&name), "{name} not listed: {missing:?}");
        }
        assert_eq!(missing.len(), 8);
    }
}
