//! `cargo xtask build`: compile every binary for its own target, then lay out the ESP.
//!
//! Each crate is built with an explicit `--target` (the workspace mixes host, UEFI and
//! bare-metal crates; per-package targets are nightly-only). Guests are built only when
//! their package is in the workspace.

use crate::esp::{self, EspContents};
use crate::hostcfg::{HostConfig, NetConfig};
use crate::progress::Step;
use crate::workspace::{BARE_TARGET, GUESTS, UEFI_TARGET, Workspace, cargo};
use crate::{image, linux_image, prereq};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// Options of `cargo xtask build`.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Debug profile instead of release.
    pub debug: bool,
    /// Network settings of the default host config.
    pub net: NetConfig,
}

/// The compiled binaries.
pub struct Binaries {
    /// The UEFI loader (`loader.efi`).
    pub loader: PathBuf,
    /// The hypervisor ELF.
    pub hypervisor: PathBuf,
    /// Guest name and ELF.
    pub guests: Vec<(String, PathBuf)>,
}

/// Check prerequisites, compile, assemble `build/esp` and `build/tern-esp.img`.
pub fn build(ws: &Workspace, options: &BuildOptions) -> Result<Binaries> {
    prereq::ensure(ws)?;
    let binaries = compile(ws, options.debug)?;
    let linux = linux_image::build(ws)?;
    eprintln!(
        "[xtask] Linux guest: {} + {}",
        linux.kernel.display(),
        linux.initrd.display()
    );
    let guest_names: Vec<String> = binaries
        .guests
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    let key = hostcfg_key(&options.net)?;
    let config = HostConfig::new(0, options.net.clone(), key, &guest_names);
    let step = Step::start(format!("assemble ESP directory {}", ws.esp_dir().display()));
    let mut contents = EspContents::new(&binaries, config.render());
    contents.add(esp::LINUX_KERNEL_PATH, linux.kernel.clone());
    contents.add(esp::LINUX_INITRD_PATH, linux.initrd.clone());
    contents.add(esp::LINUX_DISK_PATH, linux.disk.clone());
    esp::assemble(&ws.esp_dir(), &contents)?;
    step.done();
    let step = Step::start(format!("write FAT16 image {}", ws.esp_image().display()));
    image::write_fat_image(&ws.esp_dir(), &ws.esp_image())?;
    step.done();
    Ok(binaries)
}

/// A migration key when the host is networked.
fn hostcfg_key(net: &NetConfig) -> Result<Option<String>> {
    if *net == NetConfig::None {
        return Ok(None);
    }
    crate::hostcfg::random_key()
        .map(Some)
        .context("read /dev/urandom")
}

/// Compile loader, hypervisor and guests.
pub fn compile(ws: &Workspace, debug: bool) -> Result<Binaries> {
    let profile = if debug { "debug" } else { "release" };
    cargo_build(ws, "loader", UEFI_TARGET, debug, &[])?;
    cargo_build(ws, "hypervisor", BARE_TARGET, debug, &[])?;
    let mut guests = Vec::new();
    for &guest in GUESTS {
        if ws.has_package(guest) {
            cargo_build(ws, guest, BARE_TARGET, debug, &[])?;
            guests.push((guest.to_string(), ws.artifact(BARE_TARGET, profile, guest)));
        } else {
            eprintln!("[xtask] guest package `{guest}` is not in the workspace: skipped");
        }
    }
    Ok(Binaries {
        loader: ws.artifact(UEFI_TARGET, profile, "loader.efi"),
        hypervisor: ws.artifact(BARE_TARGET, profile, "hypervisor"),
        guests,
    })
}

/// `cargo build -p PACKAGE --target TARGET [--release] EXTRA...`
fn cargo_build(
    ws: &Workspace,
    package: &str,
    target: &str,
    debug: bool,
    extra: &[&str],
) -> Result<()> {
    let step = Step::start(format!("build {package} ({target})"));
    let mut cmd = Command::new(cargo());
    cmd.args(["build", "-p", package, "--target", target])
        .args(extra)
        .current_dir(&ws.root);
    if !debug {
        cmd.arg("--release");
    }
    prereq::run(&mut cmd).with_context(|| format!("building {package} for {target}"))?;
    step.done();
    Ok(())
}
