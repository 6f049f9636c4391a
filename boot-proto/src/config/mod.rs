//! Parser of tern's host configuration file, `\tern\tern.cfg` on the ESP (`docs/config.md`).
//!
//! The loader parses the file to learn which images to load and refuses to boot on any error;
//! the hypervisor parses the very same bytes again to get the host, network, migration and VM
//! settings. The format is a deliberately small INI dialect so that an operator can edit it
//! with any text editor on any OS (CRLF line endings and a UTF-8 byte-order mark are accepted).
//!
//! The parser is strict because a half-understood config is worse than none: every unknown
//! section or key, every repeated key, every out-of-range value is an error carrying the line
//! it was found on and a message that names the key, the value and what was expected. It never
//! panics, whatever the input (see the fuzz tests).
//!
//! Layout of this module, in the order the bytes flow through it:
//! * [`line`]: one physical line to a [`line::Line`] (blank, section header or `key = value`),
//!   with comments, quotes and control characters dealt with;
//! * [`value`]: the typed value parsers (names, sizes, IPv4, MAC, hex key, paths...);
//! * [`sections`]: one draft per section that collects its keys, then checks what is required;
//! * [`error`]: [`ConfigError`] and the messages the operator sees.

pub mod bounds;
mod error;
pub mod host_disk;
mod line;
mod sections;
mod value;

#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;

pub use error::{ConfigError, ConfigErrorKind};

/// Most `[vm NAME]` sections a config may have: the loader hands over one module per VM.
pub const MAX_VMS: usize = crate::MAX_MODULES;

/// Longest VM kernel command line, in bytes.
pub const MAX_CMDLINE_LEN: usize = 1024;

/// Longest image path, in bytes.
pub const MAX_IMAGE_PATH_LEN: usize = 255;

/// Longest host or VM name, in characters (all ASCII).
pub const MAX_NAME_LEN: usize = 32;

/// Largest config file the loader accepts, in bytes (checked by the loader, not by [`parse`]).
pub const MAX_CONFIG_SIZE: usize = 64 * 1024;

/// MTU of the host's NIC when `[net] mtu` is not given (standard Ethernet).
pub const DEFAULT_MTU: u16 = 1500;

/// Range of `[net] mtu`: the IPv4 minimum (RFC 791) up to jumbo frames.
pub const MTU_RANGE: core::ops::RangeInclusive<u16> = 576..=9000;

/// TCP port the migration listener uses when `[migration] port` is not given.
pub const DEFAULT_MIGRATION_PORT: u16 = 4444;

/// The whole host configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[host]`: who this host is.
    pub host: HostConfig,
    /// `[net]`: how the host's NIC is configured.
    pub net: NetConfig,
    /// `[migration]`: listener and default migration parameters.
    pub migration: MigrationConfig,
    /// One entry per `[vm NAME]` section, in file order.
    pub vms: Vec<VmConfig>,
}

/// `[host]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// 1-32 characters of `[A-Za-z0-9_-]`.
    pub name: String,
    /// `host_disk = DRIVE`: the drive VMs' `host_disk` regions are carved from (none if
    /// not given).
    pub host_disk: Option<host_disk::HostDiskDrive>,
}

/// How the host's IPv4 address is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetMode {
    /// No networking (the default): migration is unavailable.
    None,
    /// Address, prefix and gateway from DHCP.
    Dhcp,
    /// Fixed address.
    Static {
        /// The host's IPv4 address.
        address: [u8; 4],
        /// Network prefix length, 1..=32.
        prefix_len: u8,
        /// Default gateway, if any.
        gateway: Option<[u8; 4]>,
    },
}

/// `[net]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Address configuration.
    pub mode: NetMode,
    /// MAC address to use instead of the NIC's own (always unicast).
    pub mac: Option<[u8; 6]>,
    /// MTU of the NIC in bytes, in [`MTU_RANGE`] (default [`DEFAULT_MTU`]).
    pub mtu: u16,
}

/// `[migration]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationConfig {
    /// TCP port of the migration listener (default [`DEFAULT_MIGRATION_PORT`]).
    pub port: u16,
    /// Pre-shared key authenticating peers; `None` means migration is refused.
    pub key: Option<[u8; 32]>,
    /// Default downtime limit for outgoing migrations, in milliseconds (>= 1).
    pub downtime_limit_ms: Option<u32>,
    /// Default bandwidth cap for outgoing migrations, in MiB/s; `Some(0)` means unlimited.
    pub max_bandwidth_mib: Option<u32>,
}

/// One `[vm NAME]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// 1-32 characters of `[A-Za-z0-9_-]`, unique (ignoring ASCII case) in the file.
    pub name: String,
    /// What the VM boots: a PVH ELF (`image`) or a Linux bzImage (`kernel`, `initrd`).
    pub boot: GuestBoot,
    /// Guest RAM in bytes: a multiple of 4 KiB in 1 MiB..=64 GiB.
    pub memory_bytes: u64,
    /// Kernel command line handed to the guest (empty if not given), at most 1024 bytes.
    pub cmdline: String,
    /// Number of vCPUs (only 1 is supported for now).
    pub vcpus: u32,
    /// Whether the hypervisor starts the VM at boot.
    pub autostart: bool,
    /// CPU model the guest sees (`cpu`, default `host`), lower-cased.
    pub cpu: String,
    /// Line of the `[vm NAME]` header, for later messages about this VM.
    pub line: u32,
    /// `disk = PATH`: the VM's virtio-blk disk, a raw image on the ESP (none if not given).
    pub disk: Option<DiskConfig>,
    /// `host_disk = SIZE@OFFSET`: the VM's region of the host disk. Without `disk` it is the
    /// VM's disk; with `disk` it is where `block_migrate VM vda host` moves the RAM disk.
    pub host_disk: Option<host_disk::HostDiskRegionConfig>,
}

/// `[vm NAME] disk = PATH`: a raw disk image the loader reads from the ESP and the
/// hypervisor turns into the VM's RAM disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// Path of the raw image on the ESP, as written (`/` or `\` separators).
    pub path: String,
    /// Line of the `disk` key, for the loader's and the hypervisor's messages about it.
    pub line: u32,
}

/// Largest disk image, in bytes: RAM disks live in the hypervisor's heap (at most 32 MiB,
/// shared with everything else), so a disk may take half of it at most.
pub const MAX_DISK_BYTES: u64 = 16 << 20;

/// Disk images are whole 512-byte sectors (virtio-blk's unit, VIRTIO 1.2 5.2.6).
pub const DISK_SECTOR_BYTES: u64 = 512;

/// Why a disk image file cannot be a VM's disk (the loader names the file and the line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskImageError {
    /// The file is empty.
    Empty,
    /// The file's length is not a whole number of sectors.
    PartialSector {
        /// The file's length in bytes.
        len: u64,
    },
    /// The file is larger than [`MAX_DISK_BYTES`].
    TooLarge {
        /// The file's length in bytes.
        len: u64,
    },
}

impl core::fmt::Display for DiskImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty => write!(f, "the image is empty"),
            Self::PartialSector { len } => write!(
                f,
                "the image is {len} bytes, not a multiple of {DISK_SECTOR_BYTES}-byte sectors"
            ),
            Self::TooLarge { len } => write!(
                f,
                "the image is {len} bytes, more than the {} MiB a RAM disk may have",
                MAX_DISK_BYTES >> 20
            ),
        }
    }
}

/// Checks a disk image's length: whole sectors, not empty, at most [`MAX_DISK_BYTES`].
pub fn check_disk_image_len(len: u64) -> Result<(), DiskImageError> {
    if len == 0 {
        Err(DiskImageError::Empty)
    } else if len > MAX_DISK_BYTES {
        Err(DiskImageError::TooLarge { len })
    } else if !len.is_multiple_of(DISK_SECTOR_BYTES) {
        Err(DiskImageError::PartialSector { len })
    } else {
        Ok(())
    }
}

/// Name of the boot-info module holding VM `vm`'s disk image: `vm` plus `.disk` (a VM name
/// has no `.`, so it cannot collide with a VM's own image module, which is named `vm`).
pub fn disk_module_name(vm: &str) -> String {
    alloc::format!("{vm}.disk")
}

/// What a VM boots; paths are on the ESP, as written (`/` or `\` separators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestBoot {
    /// `image = PATH`: an ELF entered by the PVH convention.
    Pvh {
        /// The ELF.
        image: String,
    },
    /// `kernel = PATH` (and `initrd = PATH`): a Linux bzImage entered by the Linux x86 boot
    /// protocol's 64-bit entry.
    Linux {
        /// The bzImage.
        kernel: String,
        /// Line of the `kernel` key, for messages about the file.
        kernel_line: u32,
        /// The initial ramdisk, if any.
        initrd: Option<String>,
        /// Line of the `initrd` key (0 without one).
        initrd_line: u32,
    },
}

impl GuestBoot {
    /// The main image's path: the ELF or the kernel.
    pub fn main_path(&self) -> &str {
        match self {
            GuestBoot::Pvh { image } => image,
            GuestBoot::Linux { kernel, .. } => kernel,
        }
    }
}

/// Parses a config file's text. Stops at the first error.
///
/// A leading UTF-8 byte-order mark and CRLF line endings are accepted.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = sections::ConfigBuilder::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = u32::try_from(index).map_or(u32::MAX, |n| n.saturating_add(1));
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match line::classify(raw) {
            Ok(parsed) => builder.feed(parsed, line_no)?,
            Err(kind) => return Err(ConfigError::new(line_no, kind)),
        }
    }
    builder.finish()
}

/// Parses a config file's raw bytes, as read from the ESP: like [`parse`], but bytes that are
/// not UTF-8 are reported as [`ConfigErrorKind::InvalidUtf8`] on the line they are on.
pub fn parse_bytes(bytes: &[u8]) -> Result<Config, ConfigError> {
    match core::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(err) => {
            let before = bytes.get(..err.valid_up_to()).unwrap_or(&[]);
            let newlines = before.iter().filter(|&&b| b == b'\n').count();
            let line = u32::try_from(newlines).map_or(u32::MAX, |n| n.saturating_add(1));
            Err(ConfigError::new(line, ConfigErrorKind::InvalidUtf8))
        }
    }
}
