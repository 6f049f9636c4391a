//! The snapshot file: a VM as a migration destination received it, frozen on disk.
//!
//! Layout (all integers little-endian; the full description is `docs/snapshot-format.md`):
//!
//! ```text
//! preamble  "TERNSNAP" | version u16 = 2 | flags u16 = 0 | reserved u32 = 0
//! records   kind u16 | reserved u16 = 0 | length u32 | payload          (repeated)
//!           HEADER  (first)   created, origin, protocol version, memory digest,
//!                              device list, disk list (manifest entry + content digest)
//!           VM      (second)  the migration Offer: VM identity + CPU descriptor
//!           PAGES*            migration page runs (zero / LZ4 / raw pages); pages not in
//!                              any run are zero
//!           DISK*             migration DiskBlocks runs; blocks not in any run are zero
//!           VCPU+             migration VcpuState, one per vCPU
//!           DEVICE*           migration DeviceState, as listed in the header
//!           END     (last)    BLAKE3 of every byte before its payload
//! ```
//!
//! Why the migration encodings: a snapshot *is* a migration stream at rest, so the program
//! reuses migration-proto's checked decoders for everything a tern host produced, and a
//! snapshot restored to a host arrives through the same checks as a live migration.
//! Why one digest at the end and a memory digest in the header: the end digest refuses a
//! truncated or altered file before a single record is decoded; the memory digest checks
//! the decoded guest memory itself, so a bug in the page codec cannot restore a wrong VM.

mod disk;
mod error;
mod read;
mod write;

pub use disk::{DiskEntry, MAX_DISK_BYTES, SnapshotDisk, digest_disk};
pub use error::FormatError;
pub use read::SnapshotSummary;

use migration_proto::cpu::CpuDescriptor;
use migration_proto::digest::Digest;
use migration_proto::message::{DeviceState, VcpuState, VmIdentity};

/// The first eight bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"TERNSNAP";
/// The format this program writes.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest format this program reads (format 1: the same layout, never any disk).
pub const OLDEST_FORMAT_VERSION: u16 = 1;
/// Preamble: magic, version, flags, reserved.
pub const PREAMBLE_LEN: usize = 16;
/// Record header: kind, reserved, length.
pub const RECORD_HEADER_LEN: usize = 8;
/// Payload length of the END record (a BLAKE3 digest).
pub const END_DIGEST_LEN: usize = 32;
/// Largest guest memory a snapshot may hold (the config's limit for a VM).
pub const MAX_MEMORY_BYTES: u64 = 64 << 30;
/// Most devices a header may list: a local APIC and an event state per vCPU (`lapic0`,
/// `events0`, ...) besides the VM-wide devices, for the largest VM the migration protocol
/// carries.
pub const MAX_DEVICES: usize = 2 * migration_proto::message::MAX_VCPUS as usize + 64;
/// Longest origin text.
pub const MAX_ORIGIN_LEN: usize = 128;

/// Record kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum RecordKind {
    /// What the snapshot holds (always the first record).
    Header = 0x0001,
    /// The VM identity and CPU descriptor (migration `Offer` payload).
    Vm = 0x0002,
    /// A run of guest pages (migration `Pages` payload).
    Pages = 0x0003,
    /// One vCPU's state (migration `VcpuState` payload).
    Vcpu = 0x0004,
    /// One device's state (migration `DeviceState` payload).
    Device = 0x0005,
    /// A run of blocks of one disk (migration `DiskBlocks` payload; format 2).
    Disk = 0x0006,
    /// The digest of everything before it (always the last record).
    End = 0xffff,
}

impl RecordKind {
    fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            0x0001 => RecordKind::Header,
            0x0002 => RecordKind::Vm,
            0x0003 => RecordKind::Pages,
            0x0004 => RecordKind::Vcpu,
            0x0005 => RecordKind::Device,
            0x0006 => RecordKind::Disk,
            0xffff => RecordKind::End,
            _ => return None,
        })
    }
}

/// One device in the header's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEntry {
    /// Device id (e.g. `com1`, `tsc-rate`).
    pub id: String,
    /// The device model's state version.
    pub version: u32,
    /// Size of its state in bytes.
    pub state_len: u32,
}

/// The HEADER record: what the file holds, readable without decoding the memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// When the snapshot was taken (seconds since the Unix epoch, the receiver's clock).
    pub created_unix_secs: u64,
    /// Where the VM came from (the source host's address as the receiver saw it).
    pub origin: String,
    /// The migration protocol version the VM arrived with.
    pub protocol_version: u16,
    /// Digest of the guest memory (`migration_proto::digest::digest_memory`).
    pub memory_digest: Digest,
    /// The device states in the file, in order.
    pub devices: Vec<DeviceEntry>,
    /// The VM's virtual disks in the file, in order (none in format 1).
    pub disks: Vec<DiskEntry>,
}

/// A complete snapshot in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The HEADER record.
    pub header: SnapshotHeader,
    /// Who the VM is and how big.
    pub identity: VmIdentity,
    /// The CPU the guest was shown (a restoring host must offer at least this).
    pub cpu: CpuDescriptor,
    /// The guest memory, `identity.memory_bytes` long.
    pub memory: Vec<u8>,
    /// Every vCPU's state, by index.
    pub vcpus: Vec<VcpuState>,
    /// Every device's state.
    pub devices: Vec<DeviceState>,
    /// Every disk, in the header's order.
    pub disks: Vec<SnapshotDisk>,
}

impl Snapshot {
    /// The header's device list for `devices`.
    pub fn device_entries(devices: &[DeviceState]) -> Vec<DeviceEntry> {
        devices
            .iter()
            .map(|d| DeviceEntry {
                id: d.id.clone(),
                version: d.version,
                state_len: u32::try_from(d.data.len()).unwrap_or(u32::MAX),
            })
            .collect()
    }
}
