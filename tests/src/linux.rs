//! The Linux test guest (`cargo xtask build` writes `build/linux/vmlinuz` and
//! `build/linux/initrd.cpio`, see `xtask/src/linux_image/`): where its files are, what its
//! initramfs prints, and reading its console (`LHB seq=N`, `/proc/interrupts`).

use crate::{Console, HarnessError};
use std::path::PathBuf;
use std::time::Duration;

/// Environment variable naming the directory holding `vmlinuz` and `initrd.cpio`.
pub const LINUX_DIR_ENV: &str = "TERN_LINUX_DIR";
/// The initramfs's shell prompt (`PS1` in /init).
pub const PROMPT: &str = "tern-linux# ";
/// The start of the initramfs's banner line.
pub const BANNER: &str = "tern-linux: initramfs of tern";
/// Printed by /init when the workload runs.
pub const WORKLOAD_STARTED: &str = "tern-linux: workload started";
/// The kernel's own banner.
pub const KERNEL_BANNER: &str = "Linux version ";
/// What the workload prints when a line of its tmpfs file changed behind its back.
pub const CORRUPT: &str = "CORRUPT";
/// The kernel release of the pinned Debian package (`uname -r`).
pub const KERNEL_RELEASE: &str = "6.1.0-50-cloud-amd64";

/// The built kernel and initrd.
pub struct LinuxImage {
    /// The bzImage.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
}

/// `$TERN_LINUX_DIR`, else `build/linux`: the image `cargo xtask build` made.
pub fn image() -> Result<LinuxImage, HarnessError> {
    let dir = match std::env::var_os(LINUX_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => crate::workspace_root().join("build").join("linux"),
    };
    let image = LinuxImage {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.cpio"),
    };
    if image.kernel.is_file() && image.initrd.is_file() {
        Ok(image)
    } else {
        Err(HarnessError::NoEsp { dir })
    }
}

/// Type `line` at the Linux shell and return its answer up to the next prompt.
pub fn command(
    console: &mut Console,
    line: &str,
    timeout: Duration,
) -> Result<String, HarnessError> {
    console.command(line, PROMPT, timeout)
}

/// Every `LHB seq=N` number in `transcript`, in order.
pub fn heartbeats(transcript: &str) -> Vec<u64> {
    transcript
        .split("LHB seq=")
        .skip(1)
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The total over all CPUs of the `/proc/interrupts` row named `row` (`LOC`, `0`, ...).
pub fn interrupt_count(proc_interrupts: &str, row: &str) -> Option<u64> {
    let label = format!("{row}:");
    let line = proc_interrupts
        .lines()
        .find(|l| l.trim_start().starts_with(&label))?;
    let rest = line.trim_start().strip_prefix(&label)?;
    let counts: Vec<u64> = rest
        .split_whitespace()
        .map_while(|word| word.parse().ok())
        .collect();
    if counts.is_empty() {
        None
    } else {
        Some(counts.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERRUPTS: &str = "           CPU0       CPU1
  0:         46          2   IO-APIC   2-edge      timer
  4:        310          0   IO-APIC   4-edge      ttyS0
LOC:       5123        17   Local timer interrupts
ERR:          0
";

    #[test]
    fn rows_are_summed_over_cpus() {
        assert_eq!(interrupt_count(INTERRUPTS, "LOC"), Some(5140));
        assert_eq!(interrupt_count(INTERRUPTS, "0"), Some(48));
        assert_eq!(interrupt_count(INTERRUPTS, "ERR"), Some(0));
        assert_eq!(interrupt_count(INTERRUPTS, "NMI"), None);
    }

    #[test]
    fn heartbeats_in_order_and_garbage_skipped() {
        let t = "LHB seq=1 uptime=1.2\r\nLHB seq=x\nfoo LHB seq=2 uptime=2.2";
        assert_eq!(heartbeats(t), vec![1, 2]);
    }
}
