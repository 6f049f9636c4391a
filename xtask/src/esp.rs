//! The ESP directory: the fixed layout the loader expects (contract with the loader):
//!
//! ```text
//! EFI/BOOT/BOOTX64.EFI     the loader
//! tern/hypervisor.elf      the hypervisor
//! tern/tern.cfg            the host config
//! tern/guests/NAME.elf     guest images
//! tern/disks/test.img      a 1 MiB raw test disk (`[vm NAME] disk =`), see [`test_disk_image`]
//! tern/linux/vmlinuz       the Linux test guest's kernel (Debian's, see linux_image)
//! tern/linux/initrd.cpio   and its initramfs
//! tern/disks/linux.img     and its 4 MiB ext4 disk
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

/// The test disk's path on the ESP.
pub const TEST_DISK_PATH: &str = "tern/disks/test.img";
/// The test disk's size: 2048 sectors.
pub const TEST_DISK_BYTES: usize = 1 << 20;

/// The test disk's contents: every 512-byte sector starts with `TERNDISK` and its sector
/// number (u64 little-endian), the rest is zero. A guest that reads a sector back can tell
/// it came from the right place; the heartbeat's disk mode overwrites sectors as it runs.
pub fn test_disk_image() -> Vec<u8> {
    let mut image = vec![0u8; TEST_DISK_BYTES];
    for (sector, chunk) in image.chunks_exact_mut(512).enumerate() {
        chunk[..8].copy_from_slice(b"TERNDISK");
        chunk[8..16].copy_from_slice(&(sector as u64).to_le_bytes());
    }
    image
}

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
/// The Linux test guest's ext4 disk (`[vm linux] disk =`).
pub const LINUX_DISK_PATH: &str = "tern/disks/linux.img";

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
    let disk = dir.join(TEST_DISK_PATH);
    create_parent(&disk)?;
    std::fs::write(&disk, test_disk_image())
        .with_context(|| format!("write {}", disk.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_disk_is_whole_sectors_each_naming_itself() {
        let image = test_disk_image();
        assert_eq!(image.len(), TEST_DISK_BYTES);
        assert_eq!(image.len() % 512, 0);
        let last = &image[image.len() - 512..];
        assert_eq!(&last[..8], b"TERNDISK");
        assert_eq!(last[8..16], 2047u64.to_le_bytes());
        assert!(last[16..].iter().all(|&b| b == 0));
    }
}
