//! The Linux test image: Debian's own cloud kernel and an initramfs built here around
//! Debian's static busybox (issue 9, item 5). No kernel is compiled.
//!
//! ```text
//! build/linux/cache/*.deb               apt-get download, keyed by version (debian.rs)
//! build/linux/unpacked/PKG_VERSION/     dpkg-deb -x
//! build/linux/vmlinuz                   the bzImage, copied from the kernel package
//! build/linux/initrd.cpio               newc archive (cpio.rs): busybox, e2fsck, /init, modules
//! build/linux/disk.img                  ext4 made by `mkfs.ext4 -d` (the guest's /dev/vda)
//! ```
//!
//! The archive is uncompressed: it is about 2 MiB, the kernel unpacks it without a
//! decompressor, and a loader that copies it into guest memory has nothing to inflate.

mod cpio;
mod debian;
mod init_script;

use crate::progress::Step;
use crate::workspace::Workspace;
use anyhow::{Context, Result};
use cpio::{CpioWriter, EntryKind};
use debian::PinnedPackage;
use std::path::{Path, PathBuf};

/// The kernel package: bookworm's cloud flavour (virtio, serial console, ACPI; no PCI
/// sound or GPU drivers to probe). Pinned to the version in bookworm's main archive.
pub const KERNEL_PACKAGE: PinnedPackage = PinnedPackage {
    name: "linux-image-6.1.0-50-cloud-amd64",
    version: "6.1.176-1",
};
/// `uname -r` of that kernel: the directory of its modules.
pub const KERNEL_RELEASE: &str = "6.1.0-50-cloud-amd64";
/// Statically linked busybox: the initramfs needs no C library.
pub const BUSYBOX_PACKAGE: PinnedPackage = PinnedPackage {
    name: "busybox-static",
    version: "1:1.35.0-4+deb12u1+b1",
};

/// Statically linked e2fsck: the guest checks its ext4 disk (busybox has no e2fsck).
pub const E2FSCK_PACKAGE: PinnedPackage = PinnedPackage {
    name: "e2fsck-static",
    version: "1.47.0-2+b2",
};

/// Size of the Linux guest's disk (the loader takes images up to 16 MiB).
pub const DISK_BYTES: u64 = 4 << 20;
/// The file the disk image holds, and its contents (the system test reads it back).
pub const DISK_FILE: (&str, &str) = ("hello.txt", "tern ext4 disk\n");

/// Modules (relative to the kernel's module directory) for tern's devices that the cloud
/// kernel builds as modules (its /boot/config: `VIRTIO`, `VIRTIO_MMIO`, `VIRTIO_BLK` = m;
/// `SERIAL_8250`, `EXT4_FS` = y). In load order; /init loads them.
pub const MODULES: &[&str] = &[
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio_mmio.ko",
    "kernel/drivers/block/virtio_blk.ko",
];

/// Directories of the initramfs (besides those holding modules).
const DIRECTORIES: &[&str] = &[
    "bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "root", "mnt",
];

/// Where the built image is.
pub struct LinuxImage {
    /// The bzImage.
    pub kernel: PathBuf,
    /// The initramfs (cpio newc).
    pub initrd: PathBuf,
    /// The guest's ext4 disk (raw).
    pub disk: PathBuf,
}

/// The directory of everything Linux-image related.
pub fn dir(ws: &Workspace) -> PathBuf {
    ws.build_dir().join("linux")
}

/// Fetch (or take from the cache) both packages and write `vmlinuz` and `initrd.cpio`.
pub fn build(ws: &Workspace) -> Result<LinuxImage> {
    let dir = dir(ws);
    let cache = dir.join("cache");
    let kernel_tree = unpacked(&KERNEL_PACKAGE, &cache, &dir)?;
    let busybox_tree = unpacked(&BUSYBOX_PACKAGE, &cache, &dir)?;
    let e2fsck_tree = unpacked(&E2FSCK_PACKAGE, &cache, &dir)?;
    let step = Step::start(format!("Linux image: kernel {KERNEL_RELEASE}, initramfs"));
    let image = LinuxImage {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.cpio"),
        disk: dir.join("disk.img"),
    };
    let vmlinuz = kernel_tree.join(format!("boot/vmlinuz-{KERNEL_RELEASE}"));
    std::fs::copy(&vmlinuz, &image.kernel).with_context(|| {
        format!(
            "copy {} (does the package still ship it?)",
            vmlinuz.display()
        )
    })?;
    let archive = initramfs(&kernel_tree, &busybox_tree, &e2fsck_tree)?;
    std::fs::write(&image.initrd, archive)
        .with_context(|| format!("write {}", image.initrd.display()))?;
    ext4_disk(&dir, &image.disk)?;
    step.done();
    Ok(image)
}

/// The guest's disk: a fresh ext4 filesystem of [`DISK_BYTES`] holding [`DISK_FILE`], made
/// by e2fsprogs' `mkfs.ext4 -d` (no root, no loop device).
fn ext4_disk(dir: &Path, image: &Path) -> Result<()> {
    let content = dir.join("disk-content");
    if content.exists() {
        std::fs::remove_dir_all(&content)
            .with_context(|| format!("remove {}", content.display()))?;
    }
    std::fs::create_dir_all(&content).with_context(|| format!("create {}", content.display()))?;
    std::fs::write(content.join(DISK_FILE.0), DISK_FILE.1)
        .with_context(|| format!("write {}", content.join(DISK_FILE.0).display()))?;
    if image.exists() {
        std::fs::remove_file(image).with_context(|| format!("remove {}", image.display()))?;
    }
    let status = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "tern", "-d"])
        .arg(&content)
        .arg(image)
        .arg(format!("{}k", DISK_BYTES >> 10))
        .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
        .status()
        .context("run mkfs.ext4 (package e2fsprogs; `cargo xtask prereq` installs it)")?;
    anyhow::ensure!(
        status.success(),
        "mkfs.ext4 of {} failed: {status}",
        image.display()
    );
    Ok(())
}

fn unpacked(package: &PinnedPackage, cache: &Path, dir: &Path) -> Result<PathBuf> {
    let deb = debian::fetch(package, cache)?;
    let tree = dir.join("unpacked").join(format!(
        "{}_{}",
        package.name,
        package.version.replace(':', "%3a")
    ));
    debian::unpack(&deb, &tree)?;
    Ok(tree)
}

/// The initramfs archive from the unpacked packages.
fn initramfs(kernel_tree: &Path, busybox_tree: &Path, e2fsck_tree: &Path) -> Result<Vec<u8>> {
    let read =
        |path: PathBuf| std::fs::read(&path).with_context(|| format!("read {}", path.display()));
    let busybox = read(busybox_tree.join("bin/busybox"))?;
    let e2fsck = read(e2fsck_tree.join("sbin/e2fsck.static"))?;
    let modules = MODULES
        .iter()
        .map(|m| {
            Ok((
                *m,
                read(kernel_tree.join(format!("lib/modules/{KERNEL_RELEASE}/{m}")))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut archive = CpioWriter::new();
    for d in DIRECTORIES {
        archive.add(d, 0o755, EntryKind::Directory)?;
    }
    archive.add(
        "dev/console",
        0o600,
        EntryKind::CharDevice { major: 5, minor: 1 },
    )?;
    archive.add("bin/busybox", 0o755, EntryKind::File(&busybox))?;
    // The one applet link /init needs before `busybox --install` made the others.
    archive.add("bin/sh", 0o777, EntryKind::Symlink("busybox"))?;
    archive.add("sbin/e2fsck", 0o755, EntryKind::File(&e2fsck))?;
    archive.add("init", 0o755, EntryKind::File(init_script::INIT.as_bytes()))?;
    let mut made: Vec<String> = Vec::new();
    for (module, bytes) in &modules {
        let path = format!("lib/modules/{KERNEL_RELEASE}/{module}");
        for parent in parents(&path) {
            if !made.contains(&parent) {
                archive.add(&parent, 0o755, EntryKind::Directory)?;
                made.push(parent);
            }
        }
        archive.add(&path, 0o644, EntryKind::File(bytes))?;
    }
    Ok(archive.finish())
}

/// `a`, `a/b` for `a/b/c`: every directory above a path, outermost first.
fn parents(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (1..parts.len()).map(|n| parts[..n].join("/")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_outermost_first() {
        assert_eq!(parents("a/b/c.ko"), ["a", "a/b"]);
        assert!(parents("init").is_empty());
    }

    #[test]
    fn init_loads_the_modules_the_archive_carries() {
        for module in MODULES {
            let name = module
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix(".ko"))
                .unwrap();
            assert!(
                init_script::INIT.contains(&format!(" {name} "))
                    || init_script::INIT.contains(&format!(" {name};")),
                "/init does not load {name}"
            );
        }
    }
}
