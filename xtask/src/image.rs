//! The bootable raw FAT image `build/tern-esp.img`: a partitionless FAT16 volume ("super
//! floppy") holding the ESP tree, which OVMF boots from in Bochs (`mode=flat`) and QEMU
//! (`-drive format=raw`), and which `dd` puts on a USB stick. FAT16 and not FAT32: OVMF in
//! Bochs did not boot a 32 MiB FAT32 image (TESTBED.md). Built with dosfstools + mtools.

use crate::prereq::run;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// Image size in MiB. FAT16 holds up to 2 GiB; 64 MiB leaves room for guest images.
pub const IMAGE_MIB: u64 = 64;

/// Write a FAT16 image of the directory tree `esp` to `image`.
pub fn write_fat_image(esp: &Path, image: &Path) -> Result<()> {
    let size = tree_size(esp)?;
    if size > (IMAGE_MIB - 4) * 1024 * 1024 {
        bail!("the ESP holds {size} bytes: more than a {IMAGE_MIB} MiB image can take");
    }
    if image.exists() {
        std::fs::remove_file(image).with_context(|| format!("remove old {}", image.display()))?;
    }
    run(Command::new("mkfs.fat")
        .args(["-F", "16", "-n", "TERN", "-C"])
        .arg(image)
        .arg((IMAGE_MIB * 1024).to_string())
        .stdout(std::process::Stdio::null()))?;
    let entries = std::fs::read_dir(esp).with_context(|| format!("read {}", esp.display()))?;
    let mut cmd = Command::new("mcopy");
    // -s recursive, -Q stop on first error, -o overwrite without asking.
    cmd.arg("-i")
        .arg(image)
        .args(["-s", "-Q", "-o"])
        .env("MTOOLS_SKIP_CHECK", "1");
    for entry in entries {
        cmd.arg(
            entry
                .with_context(|| format!("read {}", esp.display()))?
                .path(),
        );
    }
    cmd.arg("::/");
    run(&mut cmd)
}

fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            tree_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
