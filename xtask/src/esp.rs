//! The ESP directory: the fixed layout the loader expects (contract with the loader):
//!
//! ```text
//! EFI/BOOT/BOOTX64.EFI     the loader
//! tern/hypervisor.elf      the hypervisor
//! tern/tern.cfg            the host config
//! tern/guests/NAME.elf     guest images
//! tern/linux/vmlinuz       the Linux test guest's kernel (Debian's, see linux_image)
//! tern/linux/initrd.cpio   and its initramfs
//! ```
//!
//! A directory (not only an image) because both emulators boot one directly (Bochs vvfat,
//! QEMU `fat:rw:`), which makes editing `tern.cfg` between runs trivial.

use crate::build::Binaries;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Loader path on the ESP (the removable-media default boot path for x86_64).
pub const LOADER_PATH: &str = "EFI/BOOT/BOOTX64.EFI";
/// Hypervisor path on the ESP.
pub const HYPERVISOR_PATH: &str = "tern/hypervisor.elf";
/// Host config path on the ESP.
pub const CONFIG_PATH: &str = "tern/tern.cfg";
/// Guest image directory on the ESP.
pub const GUEST_DIR: &str = "tern/guests";

/// What goes onto the ESP.
pub struct EspContents {
    files: Vec<(String, PathBuf)>,
    config: String,
}

impl EspContents {
    /// The binaries at their contract paths, plus `config` as `tern/tern.cfg`.
    pub fn new(binaries: &Binaries, config: String) -> EspContents {
        let mut files = vec![
            (LOADER_PATH.to_string(), binaries.loader.clone()),
            (HYPERVISOR_PATH.to_string(), binaries.hypervisor.clone()),
        ];
        for (name, path) in &binaries.guests {
            files.push((format!("{GUEST_DIR}/{name}.elf"), path.clone()));
        }
        EspContents { files, config }
    }
}

/// Where the Linux test guest's kernel goes on the ESP.
pub const LINUX_KERNEL_PATH: &str = "tern/linux/vmlinuz";
/// Where its initramfs goes.
pub const LINUX_INITRD_PATH: &str = "tern/linux/initrd.cpio";

impl EspContents {
    /// Also copy `source` to `relative` on the ESP.
    pub fn add(&mut self, relative: &str, source: PathBuf) {
        self.files.push((relative.to_string(), source));
    }
}

/// Recreate `dir` with exactly `contents`.
pub fn assemble(dir: &Path, contents: &EspContents) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("remove old {}", dir.display()))?;
    }
    for (relative, source) in &contents.files {
        let target = dir.join(relative);
        create_parent(&target)?;
        std::fs::copy(source, &target)
            .with_context(|| format!("copy {} to {}", source.display(), target.display()))?;
    }
    write_config(dir, &contents.config)
}

/// Write the host config of the ESP at `dir`.
pub fn write_config(dir: &Path, text: &str) -> Result<()> {
    let path = dir.join(CONFIG_PATH);
    create_parent(&path)?;
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) => {
            std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))
        }
        None => Ok(()),
    }
}
