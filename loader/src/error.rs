//! Everything that can stop a boot, each with the message an operator needs to fix it.

use alloc::string::String;
use core::fmt;

/// Why the loader refused to boot.
#[derive(Debug)]
pub enum LoaderError {
    /// A file could not be read from the ESP.
    FileRead { path: String, status: uefi::Status },
    /// The config file is larger than [`crate::boot::MAX_CONFIG_BYTES`].
    ConfigTooLarge { path: String, len: usize },
    /// The config file is not UTF-8.
    ConfigNotUtf8 { path: String, offset: usize },
    /// The config file has an error on a line.
    Config {
        path: String,
        error: boot_proto::config::ConfigError,
    },
    /// A VM's image could not be read (names the config line).
    VmImage {
        config: String,
        line: u32,
        vm: String,
        /// `image`, `kernel` or `initrd`.
        key: &'static str,
        image: String,
        status: uefi::Status,
    },
    /// A VM's disk image could not be read (names the config line of `disk`).
    DiskRead {
        config: String,
        line: u32,
        vm: String,
        path: String,
        status: uefi::Status,
    },
    /// A VM's disk image was read but cannot be a disk (empty, partial sector, too large).
    DiskImage {
        config: String,
        line: u32,
        vm: String,
        path: String,
        error: boot_proto::config::DiskImageError,
    },
    /// A VM's `kernel` is not a Linux kernel tern can boot.
    VmKernel {
        config: String,
        line: u32,
        vm: String,
        kernel: String,
        reason: boot_proto::bzimage::BzImageError,
    },
    /// A Linux VM's kernel and initrd do not fit its `memory`.
    VmTooSmall {
        config: String,
        line: u32,
        vm: String,
        need: u64,
        have: u64,
    },
    /// More images (kernels, initrds and disks count separately) than the boot info holds.
    TooManyImages { count: usize },
    /// Too many VMs for the boot-info module table.
    TooManyVms { count: usize },
    /// The hypervisor ELF is malformed.
    HypervisorElf { path: String, reason: String },
    /// Firmware refused an allocation.
    OutOfMemory { what: &'static str, bytes: usize },
    /// The firmware memory map has more entries than the boot info can carry.
    MemoryMapTooLarge { entries: usize },
}

impl fmt::Display for LoaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoaderError::FileRead { path, status } => {
                write!(f, "{path}: cannot read file from the ESP ({status:?})")
            }
            LoaderError::ConfigTooLarge { path, len } => write!(
                f,
                "{path}: file is {len} bytes, the limit is {} bytes",
                crate::boot::MAX_CONFIG_BYTES
            ),
            LoaderError::ConfigNotUtf8 { path, offset } => {
                write!(f, "{path}: not valid UTF-8 at byte offset {offset}")
            }
            LoaderError::Config { path, error } => {
                write!(f, "{path}:{}: {}", error.line, error.kind)
            }
            LoaderError::VmImage {
                config,
                line,
                vm,
                key,
                image,
                status,
            } => write!(
                f,
                "{config}:{line}: [vm {vm}] {key} = {image}: cannot read it from the ESP ({status:?})"
            ),
            LoaderError::VmKernel {
                config,
                line,
                vm,
                kernel,
                reason,
            } => write!(f, "{config}:{line}: [vm {vm}] kernel = {kernel}: {reason}"),
            LoaderError::VmTooSmall {
                config,
                line,
                vm,
                need,
                have,
            } => write!(
                f,
                "{config}:{line}: [vm {vm}] memory = {} MiB is too small: its kernel (with its \
                 decompression room) and initrd need at least {} MiB",
                have >> 20,
                need.div_ceil(1 << 20)
            ),
            LoaderError::TooManyImages { count } => write!(
                f,
                "{count} guest images (kernels, initrds and disks count apart), at most {} are supported",
                boot_proto::MAX_MODULES
            ),
            LoaderError::DiskRead {
                config,
                line,
                vm,
                path,
                status,
            } => write!(
                f,
                "{config}:{line}: [vm {vm}] disk = {path}: cannot read it from the ESP ({status:?})"
            ),
            LoaderError::DiskImage {
                config,
                line,
                vm,
                path,
                error,
            } => write!(f, "{config}:{line}: [vm {vm}] disk = {path}: {error}"),
            LoaderError::TooManyVms { count } => write!(
                f,
                "{count} VMs configured, at most {} are supported",
                boot_proto::MAX_MODULES
            ),
            LoaderError::HypervisorElf { path, reason } => {
                write!(f, "{path}: not a loadable hypervisor image: {reason}")
            }
            LoaderError::OutOfMemory { what, bytes } => {
                write!(f, "out of memory allocating {bytes} bytes for {what}")
            }
            LoaderError::MemoryMapTooLarge { entries } => write!(
                f,
                "firmware memory map has {entries} entries, the boot info holds {}",
                boot_proto::MAX_MEMORY_REGIONS
            ),
        }
    }
}
