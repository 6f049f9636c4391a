//! Where things are: the workspace root, cargo's target directory, the artifacts `cargo
//! xtask build` produces, and which optional packages (test guests) the workspace has.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Target triple of the UEFI loader.
pub const UEFI_TARGET: &str = "x86_64-unknown-uefi";
/// Target triple of the hypervisor and the guests.
pub const BARE_TARGET: &str = "x86_64-unknown-none";
/// Test guests built when their package is in the workspace (package name = binary name).
pub const GUESTS: &[&str] = &["heartbeat"];

/// Facts about the workspace, read once from `cargo metadata`.
pub struct Workspace {
    /// The workspace root.
    pub root: PathBuf,
    /// Cargo's target directory (honours `CARGO_TARGET_DIR`).
    pub target_dir: PathBuf,
    /// Names of the workspace's packages.
    pub packages: Vec<String>,
}

impl Workspace {
    /// Ask cargo about the workspace.
    pub fn load() -> Result<Workspace> {
        let root = root();
        let out = Command::new(cargo())
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--offline",
            ])
            .current_dir(&root)
            .output()
            .context("run `cargo metadata`")?;
        if !out.status.success() {
            bail!(
                "`cargo metadata` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let json = String::from_utf8_lossy(&out.stdout);
        let target_dir = json_string_after(&json, "\"target_directory\":")
            .map(PathBuf::from)
            .context("no target_directory in `cargo metadata` output")?;
        Ok(Workspace {
            root,
            target_dir,
            packages: package_names(&json),
        })
    }

    /// Whether the workspace has a package of this name.
    pub fn has_package(&self, name: &str) -> bool {
        self.packages.iter().any(|p| p == name)
    }

    /// The build output directory.
    pub fn build_dir(&self) -> PathBuf {
        self.root.join("build")
    }

    /// The ESP directory.
    pub fn esp_dir(&self) -> PathBuf {
        self.build_dir().join("esp")
    }

    /// The raw FAT image of the ESP.
    pub fn esp_image(&self) -> PathBuf {
        self.build_dir().join("tern-esp.img")
    }

    /// A binary built for `target` in `profile` ("release" or "debug").
    pub fn artifact(&self, target: &str, profile: &str, file: &str) -> PathBuf {
        self.target_dir.join(target).join(profile).join(file)
    }

    /// The pinned toolchain channel from `rust-toolchain.toml`.
    pub fn toolchain(&self) -> Result<String> {
        let path = self.root.join("rust-toolchain.toml");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        text.lines()
            .filter_map(|line| line.trim().strip_prefix("channel"))
            .filter_map(|rest| rest.trim().strip_prefix('='))
            .map(|value| value.trim().trim_matches('"').to_string())
            .next()
            .with_context(|| format!("no `channel = ...` in {}", path.display()))
    }
}

/// The workspace root (xtask lives in `<root>/xtask`).
pub fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The cargo that runs us (`$CARGO`), else `cargo` from PATH.
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The JSON string value that follows `key` (no escapes expected in paths we read).
fn json_string_after<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let rest = &json[json.find(key)? + key.len()..];
    let rest = rest.trim_start().strip_prefix('"')?;
    rest.find('"').map(|end| &rest[..end])
}

/// Package names from `cargo metadata --no-deps`: in a package object `"name"` is followed
/// by `"version"`; in dependency and target objects it is followed by other keys.
fn package_names(json: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = json;
    while let Some(pos) = rest.find("{\"name\":\"") {
        rest = &rest[pos + 9..];
        if let Some(end) = rest.find('"') {
            if rest[end..].starts_with("\",\"version\":") {
                names.push(rest[..end].to_string());
            }
            rest = &rest[end..];
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_packages_but_not_dependencies_or_targets() {
        let json = r#"{"packages":[{"name":"loader","version":"0.1.0","dependencies":[{"name":"uefi","source":"x"}],"targets":[{"kind":["bin"],"name":"loader2","src_path":"x"}]},{"name":"heartbeat","version":"0.1.0"}],"target_directory":"/t/x"}"#;
        assert_eq!(package_names(json), ["loader", "heartbeat"]);
        assert_eq!(
            json_string_after(json, "\"target_directory\":"),
            Some("/t/x")
        );
    }
}
