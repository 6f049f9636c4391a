//! `[host] host_disk = DRIVE` and `[vm NAME] host_disk = SIZE@OFFSET`: which drive is the
//! host's disk for VMs, and which part of it each VM owns (docs/config.md, "Host disk").
//!
//! Only the syntax lives here (the loader and the hypervisor parse the same file); whether a
//! drive exists and regions fit or overlap is checked by the hypervisor at boot
//! (`storage::region`), because only it sees the disk.

use alloc::string::String;
use core::fmt;

/// Drives `[host] host_disk` may name: the four legacy ATA positions, as Bochs names them.
pub const HOST_DISK_DRIVES: [&str; 4] = ["ata0-master", "ata0-slave", "ata1-master", "ata1-slave"];

/// What `[host] host_disk` must look like.
pub const DRIVE_SYNTAX: &str = "an ATA drive: ata0-master, ata0-slave, ata1-master or ata1-slave";

/// Parses `[host] host_disk`.
pub(crate) fn drive(text: &str) -> Result<String, &'static str> {
    HOST_DISK_DRIVES
        .iter()
        .find(|d| **d == text)
        .map(|d| String::from(*d))
        .ok_or(DRIVE_SYNTAX)
}

/// `[host] host_disk = DRIVE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDiskDrive {
    /// One of [`HOST_DISK_DRIVES`].
    pub drive: String,
    /// Line of the key.
    pub line: u32,
}

/// `[vm NAME] host_disk = SIZE@OFFSET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostDiskRegionConfig {
    /// The region.
    pub region: HostRegion,
    /// Line of the key.
    pub line: u32,
}

/// Regions are whole mebibytes: a unit an operator can add up, aligned for any disk.
pub const REGION_UNIT: u64 = 1 << 20;

/// A VM's region of the host disk, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRegion {
    /// Byte offset from the start of the disk.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
}

impl HostRegion {
    /// First 512-byte sector.
    pub fn first_sector(&self) -> u64 {
        self.offset / 512
    }

    /// Length in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.size / 512
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.size)
    }

    /// Whether the two regions share a byte.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.offset < other.end() && other.offset < self.end()
    }
}

impl fmt::Display for HostRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}M@{}M", self.size >> 20, self.offset >> 20)
    }
}

/// What a region spec must look like (the config error's "expected ...").
pub const REGION_SYNTAX: &str = "SIZE@OFFSET in whole MiB or GiB, like 16M@64M (SIZE at least 1M)";

fn mib_or_gib(text: &str) -> Option<u64> {
    let (digits, unit) = match text.as_bytes().last()? {
        b'M' | b'm' => (&text[..text.len() - 1], 1u64 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1u64 << 30),
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// Parses `SIZE@OFFSET` ([`REGION_SYNTAX`]).
pub fn parse_region(text: &str) -> Result<HostRegion, &'static str> {
    let (size, offset) = text.split_once('@').ok_or(REGION_SYNTAX)?;
    let size = mib_or_gib(size.trim()).ok_or(REGION_SYNTAX)?;
    let offset = mib_or_gib(offset.trim()).ok_or(REGION_SYNTAX)?;
    if size == 0 || offset.checked_add(size).is_none() {
        return Err(REGION_SYNTAX);
    }
    Ok(HostRegion { offset, size })
}
