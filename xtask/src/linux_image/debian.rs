//! Debian packages fetched with `apt-get download` into a cache keyed by version, and
//! unpacked with `dpkg-deb -x`: the only way the Linux image gets its kernel and busybox.
//!
//! Only the mirror apt is configured with is used (no URLs of our own). A package that is
//! already cached is not fetched again, so offline rebuilds work once the cache is filled.

use crate::progress::Step;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Debian binary package at an exact version.
#[derive(Clone, Copy, Debug)]
pub struct PinnedPackage {
    /// Package name.
    pub name: &'static str,
    /// Exact version (with epoch if it has one).
    pub version: &'static str,
}

impl PinnedPackage {
    /// The file name `apt-get download` gives the package (`:` of the epoch as `%3a`).
    pub fn deb_file_name(&self) -> String {
        format!(
            "{}_{}_amd64.deb",
            self.name,
            self.version.replace(':', "%3a")
        )
    }

    /// `name=version`, the form apt takes.
    pub fn apt_spec(&self) -> String {
        format!("{}={}", self.name, self.version)
    }
}

/// The cached `.deb` of `package` in `cache`, downloaded if it is not there yet.
pub fn fetch(package: &PinnedPackage, cache: &Path) -> Result<PathBuf> {
    let deb = cache.join(package.deb_file_name());
    if deb.exists() {
        return Ok(deb);
    }
    std::fs::create_dir_all(cache).with_context(|| format!("create {}", cache.display()))?;
    let step = Step::start(format!("apt-get download {}", package.apt_spec()));
    if let Err(first) = apt_download(package, cache) {
        // A fresh machine may have no package lists yet: refresh them once (as root) and retry.
        if !crate::prereq::is_root() {
            bail!("{first}\n{}", gone_hint(package));
        }
        eprintln!("[xtask]   {first}; running apt-get update and trying again");
        crate::prereq::run(
            Command::new("apt-get")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .context("apt-get update (is this machine offline?)")?;
        apt_download(package, cache)
            .map_err(|again| anyhow::anyhow!("{again}\n{}", gone_hint(package)))?;
    }
    if !deb.exists() {
        bail!(
            "apt-get download {} succeeded but {} is not there (apt named the file differently?)",
            package.apt_spec(),
            deb.display()
        );
    }
    step.done();
    Ok(deb)
}

fn apt_download(package: &PinnedPackage, cache: &Path) -> Result<()> {
    let out = Command::new("apt-get")
        .args(["download", "-q", &package.apt_spec()])
        .current_dir(cache)
        .output()
        .context(
            "run apt-get (the Linux image is built from Debian packages: a Debian host is needed)",
        )?;
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "apt-get download {} failed: {}",
        package.apt_spec(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// What an operator does when the pinned version cannot be had.
fn gone_hint(package: &PinnedPackage) -> String {
    let available = Command::new("apt-cache")
        .args(["madison", package.name])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "either this machine cannot reach its Debian mirror (offline?), or the mirror no longer \
         has {} (Debian drops superseded kernels). Versions the mirror offers:\n{}\n\
         Update the pin in xtask/src/linux_image/mod.rs (and the reference transcript).",
        package.apt_spec(),
        if available.is_empty() {
            "  (none)"
        } else {
            &available
        }
    )
}

/// Unpack `deb` into `dir` (once: a marker file records a complete unpack).
pub fn unpack(deb: &Path, dir: &Path) -> Result<()> {
    let marker = dir.join(".unpacked");
    if marker.exists() {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("remove partial {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    crate::prereq::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir))
        .with_context(|| format!("unpack {}", deb.display()))?;
    std::fs::write(&marker, b"").with_context(|| format!("write {}", marker.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_match_what_apt_writes() {
        let busybox = PinnedPackage {
            name: "busybox-static",
            version: "1:1.35.0-4+deb12u1+b1",
        };
        assert_eq!(
            busybox.deb_file_name(),
            "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb"
        );
        assert_eq!(busybox.apt_spec(), "busybox-static=1:1.35.0-4+deb12u1+b1");
    }
}
