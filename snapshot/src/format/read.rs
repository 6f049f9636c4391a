//! Reading a snapshot: digest first, then every record through migration-proto's decoders.
//!
//! Order of checks: preamble (is it a snapshot, which version), the END record at the very
//! end (else truncated), the digest over everything before it (else altered), then the
//! records one by one in the order the format requires, then the memory digest of the
//! decoded guest memory. Nothing is decoded from bytes the digest has not covered.

use std::path::Path;

use migration_proto::digest::{constant_time_eq, digest_memory};
use migration_proto::message::{
    DiskDescriptor, DiskManifest, MAX_DEVICE_ID_LEN, MAX_DISK_NAME_LEN, MAX_DISKS, Message,
    VcpuState,
};
use migration_proto::wire::{MessageType, PAGE_SIZE, Reader};

use super::error::{bad_decode, bad_record};
use super::{
    DeviceEntry, DiskEntry, END_DIGEST_LEN, FORMAT_VERSION, FormatError, MAGIC, MAX_DEVICES,
    MAX_DISK_BYTES, MAX_MEMORY_BYTES, MAX_ORIGIN_LEN, OLDEST_FORMAT_VERSION, PREAMBLE_LEN,
    RECORD_HEADER_LEN, RecordKind, Snapshot, SnapshotHeader,
};

/// One record as found in the file.
struct Record<'a> {
    offset: usize,
    kind: RecordKind,
    payload: &'a [u8],
}

/// Iterates over the records between the preamble and the END record.
struct Records<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.body.len() {
            return None;
        }
        let offset = self.at;
        let Some(head) = self.body.get(offset..offset + RECORD_HEADER_LEN) else {
            self.at = self.body.len();
            return Some(Err(bad_record(offset, "record header cut short")));
        };
        let code = u16::from_le_bytes([head[0], head[1]]);
        let reserved = u16::from_le_bytes([head[2], head[3]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let start = offset + RECORD_HEADER_LEN;
        let result = match (RecordKind::from_code(code), reserved) {
            (None, _) => Err(bad_record(
                offset,
                format!("unknown record kind {code:#06x}"),
            )),
            (Some(_), r) if r != 0 => Err(bad_record(offset, "reserved field is not zero")),
            (Some(kind), _) => match start
                .checked_add(len)
                .and_then(|end| self.body.get(start..end))
            {
                Some(payload) => {
                    self.at = start + len;
                    return Some(Ok(Record {
                        offset,
                        kind,
                        payload,
                    }));
                }
                None => Err(bad_record(
                    offset,
                    format!("length {len} runs past the end"),
                )),
            },
        };
        self.at = self.body.len();
        Some(result)
    }
}

/// Checks the preamble and the END digest; returns the file up to its END record and the
/// file's format version.
fn verified_body(file: &[u8]) -> Result<(&[u8], u16), FormatError> {
    if file.len() < MAGIC.len() || file[..MAGIC.len()] != MAGIC {
        return Err(FormatError::NotASnapshot);
    }
    let len = file.len() as u64;
    let preamble = file
        .get(..PREAMBLE_LEN)
        .ok_or(FormatError::Truncated { len })?;
    let version = u16::from_le_bytes([preamble[8], preamble[9]]);
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(FormatError::UnsupportedVersion(version));
    }
    let flags = u16::from_le_bytes([preamble[10], preamble[11]]);
    if flags != 0 || preamble[12..16] != [0; 4] {
        return Err(FormatError::UnknownFlags(flags));
    }
    let tail = RECORD_HEADER_LEN + END_DIGEST_LEN;
    let end_at = file
        .len()
        .checked_sub(tail)
        .filter(|at| *at >= PREAMBLE_LEN)
        .ok_or(FormatError::Truncated { len })?;
    let mut end_head = [0u8; RECORD_HEADER_LEN];
    end_head[..2].copy_from_slice(&(RecordKind::End as u16).to_le_bytes());
    end_head[4..].copy_from_slice(&(END_DIGEST_LEN as u32).to_le_bytes());
    if file[end_at..end_at + RECORD_HEADER_LEN] != end_head {
        return Err(FormatError::Truncated { len });
    }
    let covered = &file[..end_at + RECORD_HEADER_LEN];
    let digest = blake3::hash(covered);
    if !constant_time_eq(digest.as_bytes(), &file[end_at + RECORD_HEADER_LEN..]) {
        return Err(FormatError::DigestMismatch);
    }
    // Records are read from the whole slice so that their offsets are file offsets.
    Ok((&file[..end_at], version))
}

fn decode_header(record: &Record<'_>, version: u16) -> Result<SnapshotHeader, FormatError> {
    let e = |err| bad_decode(record.offset, err);
    let mut r = Reader::new(record.payload);
    let created_unix_secs = r.u64("header.created").map_err(e)?;
    let origin = r.text16("header.origin", MAX_ORIGIN_LEN).map_err(e)?;
    let protocol_version = r.u16("header.protocol_version").map_err(e)?;
    let memory_digest = r.array("header.memory_digest").map_err(e)?;
    let count = r.count16("header.device_count", MAX_DEVICES).map_err(e)?;
    let mut devices = Vec::with_capacity(count);
    for _ in 0..count {
        devices.push(DeviceEntry {
            id: r.text16("header.device_id", MAX_DEVICE_ID_LEN).map_err(e)?,
            version: r.u32("header.device_version").map_err(e)?,
            state_len: r.u32("header.device_len").map_err(e)?,
        });
    }
    // Format 1 wrote a u16 disk count that was always 0: the same bytes as an empty list.
    let disk_count = r.count16("header.disk_count", MAX_DISKS).map_err(e)?;
    if version < 2 && disk_count != 0 {
        return Err(bad_record(
            record.offset,
            format!("{disk_count} disks: format 1 holds no disks"),
        ));
    }
    let mut disks = Vec::with_capacity(disk_count);
    for _ in 0..disk_count {
        disks.push(DiskEntry {
            descriptor: DiskDescriptor {
                disk_id: r.u32("header.disk_id").map_err(e)?,
                name: r.text16("header.disk_name", MAX_DISK_NAME_LEN).map_err(e)?,
                size_bytes: r.u64("header.disk_size").map_err(e)?,
                block_size: r.u32("header.disk_block_size").map_err(e)?,
            },
            digest: r.array("header.disk_digest").map_err(e)?,
        });
    }
    r.finish().map_err(e)?;
    if !disks.is_empty() {
        let manifest = DiskManifest {
            disks: disks.iter().map(|d| d.descriptor.clone()).collect(),
        };
        manifest.validate().map_err(e)?;
        let bytes = manifest
            .disks
            .iter()
            .fold(0u64, |sum, d| sum.saturating_add(d.size_bytes));
        if bytes > MAX_DISK_BYTES {
            return Err(FormatError::DisksTooLarge {
                bytes,
                max: MAX_DISK_BYTES,
            });
        }
    }
    Ok(SnapshotHeader {
        created_unix_secs,
        origin,
        protocol_version,
        memory_digest,
        devices,
        disks,
    })
}

fn decode_message(record: &Record<'_>, msg_type: MessageType) -> Result<Message, FormatError> {
    Message::decode(msg_type, record.payload).map_err(|e| bad_decode(record.offset, e))
}

/// What `info` needs: verified header, identity and CPU, without the memory.
pub struct SnapshotSummary {
    /// The HEADER record.
    pub header: SnapshotHeader,
    /// The VM record's identity.
    pub identity: migration_proto::message::VmIdentity,
    /// The VM record's CPU descriptor.
    pub cpu: migration_proto::cpu::CpuDescriptor,
    /// Page runs stored (all-zero runs are left out).
    pub page_runs: usize,
    /// Disk block runs stored (all-zero runs are left out).
    pub disk_runs: usize,
    /// The file's format version.
    pub format_version: u16,
    /// Size of the file.
    pub file_len: u64,
}

/// The first two records, which every later check depends on.
fn header_and_vm<'a>(
    records: &mut Records<'a>,
    version: u16,
) -> Result<
    (
        SnapshotHeader,
        migration_proto::message::VmIdentity,
        migration_proto::cpu::CpuDescriptor,
    ),
    FormatError,
> {
    let first = records
        .next()
        .ok_or_else(|| bad_record(PREAMBLE_LEN, "no HEADER record"))??;
    if first.kind != RecordKind::Header {
        return Err(bad_record(
            first.offset,
            "the first record is not the HEADER",
        ));
    }
    let header = decode_header(&first, version)?;
    let second = records
        .next()
        .ok_or_else(|| bad_record(first.offset, "no VM record"))??;
    if second.kind != RecordKind::Vm {
        return Err(bad_record(second.offset, "the second record is not the VM"));
    }
    let Message::Offer(offer) = decode_message(&second, MessageType::Offer)? else {
        return Err(bad_record(second.offset, "the VM record is not an offer"));
    };
    if offer.identity.memory_bytes > MAX_MEMORY_BYTES {
        return Err(FormatError::TooLarge {
            memory_bytes: offer.identity.memory_bytes,
            max: MAX_MEMORY_BYTES,
        });
    }
    Ok((header, offer.identity, offer.cpu))
}

impl Snapshot {
    /// Checks and decodes a whole snapshot file held in memory.
    pub fn from_bytes(file: &[u8]) -> Result<Snapshot, FormatError> {
        let (body, version) = verified_body(file)?;
        let mut records = Records {
            body,
            at: PREAMBLE_LEN,
        };
        let (header, identity, cpu) = header_and_vm(&mut records, version)?;
        let mut disks = super::disk::IncomingDisks::new(&header.disks)?;
        let memory_bytes =
            usize::try_from(identity.memory_bytes).map_err(|_| FormatError::OutOfMemory {
                bytes: identity.memory_bytes,
            })?;
        let mut memory =
            crate::zeroed::zeroed_buffer(memory_bytes).ok_or(FormatError::OutOfMemory {
                bytes: identity.memory_bytes,
            })?;
        let mut stored = vec![false; memory_bytes / PAGE_SIZE];
        let mut vcpus: Vec<VcpuState> = Vec::new();
        let mut devices = Vec::new();
        for record in records {
            let record = record?;
            let at = record.offset;
            match record.kind {
                RecordKind::Pages
                    if !disks.any_stored && vcpus.is_empty() && devices.is_empty() =>
                {
                    let Message::Pages(run) = decode_message(&record, MessageType::Pages)? else {
                        return Err(bad_record(at, "not a page run"));
                    };
                    let start = usize::try_from(run.first_gpa).unwrap_or(usize::MAX);
                    if !start.is_multiple_of(PAGE_SIZE) || !run.data.len().is_multiple_of(PAGE_SIZE)
                    {
                        return Err(bad_record(at, "page run not in whole pages"));
                    }
                    let (first, count) = (start / PAGE_SIZE, run.data.len() / PAGE_SIZE);
                    let slots = first
                        .checked_add(count)
                        .and_then(|end| stored.get_mut(first..end))
                        .ok_or_else(|| bad_record(at, "page run outside guest memory"))?;
                    if slots.iter().any(|s| *s) {
                        return Err(bad_record(at, "page stored twice"));
                    }
                    slots.fill(true);
                    memory
                        .get_mut(start..start + run.data.len())
                        .ok_or_else(|| bad_record(at, "page run outside guest memory"))?
                        .copy_from_slice(&run.data);
                }
                RecordKind::Vcpu if devices.is_empty() => {
                    let Message::VcpuState(state) =
                        decode_message(&record, MessageType::VcpuState)?
                    else {
                        return Err(bad_record(at, "not a vCPU state"));
                    };
                    if state.vcpu_index as usize != vcpus.len() {
                        return Err(bad_record(at, "vCPU states out of order"));
                    }
                    vcpus.push(*state);
                }
                RecordKind::Device => {
                    let Message::DeviceState(state) =
                        decode_message(&record, MessageType::DeviceState)?
                    else {
                        return Err(bad_record(at, "not a device state"));
                    };
                    devices.push(state);
                }
                RecordKind::Disk if vcpus.is_empty() && devices.is_empty() => {
                    disks.store(at, record.payload)?;
                }
                kind => return Err(bad_record(at, format!("{kind:?} record out of place"))),
            }
        }
        if vcpus.len() != identity.vcpu_count as usize {
            return Err(bad_record(
                PREAMBLE_LEN,
                format!(
                    "{} vCPU states for a VM of {} vCPUs",
                    vcpus.len(),
                    identity.vcpu_count
                ),
            ));
        }
        if Snapshot::device_entries(&devices) != header.devices {
            return Err(bad_record(
                PREAMBLE_LEN,
                "the device states differ from the header's device list",
            ));
        }
        if !constant_time_eq(&digest_memory(&memory), &header.memory_digest) {
            return Err(FormatError::MemoryDigestMismatch);
        }
        let disks = disks.finish(&header.disks)?;
        Ok(Snapshot {
            header,
            identity,
            cpu,
            memory,
            vcpus,
            devices,
            disks,
        })
    }

    /// Reads, checks and decodes the snapshot at `path`.
    pub fn read_file(path: &Path) -> Result<Snapshot, FormatError> {
        Snapshot::from_bytes(&read_checked(path)?)
    }
}

/// Reads a file whose size is plausible for a snapshot.
fn read_checked(path: &Path) -> Result<Vec<u8>, FormatError> {
    let len = std::fs::metadata(path)?.len();
    // Worst case: every page and block raw plus run overheads, plus states; far below 2x.
    if len > (MAX_MEMORY_BYTES + MAX_DISK_BYTES) * 2 {
        return Err(FormatError::TooLarge {
            memory_bytes: len,
            max: MAX_MEMORY_BYTES,
        });
    }
    Ok(std::fs::read(path)?)
}

impl SnapshotSummary {
    /// Checks the whole file's digest and decodes the first two records.
    pub fn from_bytes(file: &[u8]) -> Result<SnapshotSummary, FormatError> {
        let (body, format_version) = verified_body(file)?;
        let mut records = Records {
            body,
            at: PREAMBLE_LEN,
        };
        let (header, identity, cpu) = header_and_vm(&mut records, format_version)?;
        let (mut page_runs, mut disk_runs) = (0, 0);
        for record in records {
            match record?.kind {
                RecordKind::Pages => page_runs += 1,
                RecordKind::Disk => disk_runs += 1,
                _ => {}
            }
        }
        Ok(SnapshotSummary {
            header,
            identity,
            cpu,
            page_runs,
            disk_runs,
            format_version,
            file_len: file.len() as u64,
        })
    }

    /// `info FILE`.
    pub fn read_file(path: &Path) -> Result<SnapshotSummary, FormatError> {
        SnapshotSummary::from_bytes(&read_checked(path)?)
    }
}

impl std::fmt::Display for SnapshotSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.header;
        let id = &self.identity;
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        writeln!(
            f,
            "snapshot format {}, {} bytes, digest verified",
            self.format_version, self.file_len
        )?;
        writeln!(f, "vm:       {} (uuid {})", id.name, hex(&id.uuid))?;
        writeln!(
            f,
            "memory:   {} MiB ({} bytes; {} page runs stored, the rest zero)",
            id.memory_bytes >> 20,
            id.memory_bytes,
            self.page_runs
        )?;
        writeln!(f, "vcpus:    {}", id.vcpu_count)?;
        let vendor = self
            .cpu
            .vendor()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_else(|| String::from("(no vendor leaf)"));
        writeln!(
            f,
            "cpu:      {vendor}, {} CPUID leaves, XCR0 mask {:#x}, {} feature MSRs",
            self.cpu.cpuid.len(),
            self.cpu.xcr0_supported,
            self.cpu.feature_msrs.len()
        )?;
        let devices: Vec<String> = h
            .devices
            .iter()
            .map(|d| format!("{} (v{}, {} bytes)", d.id, d.version, d.state_len))
            .collect();
        writeln!(
            f,
            "devices:  {}",
            if devices.is_empty() {
                String::from("none")
            } else {
                devices.join(", ")
            }
        )?;
        let disks: Vec<String> = h
            .disks
            .iter()
            .map(|d| {
                let d = &d.descriptor;
                format!(
                    "{} (id {}, {} MiB = {} bytes, {}-byte blocks)",
                    d.name,
                    d.disk_id,
                    d.size_bytes >> 20,
                    d.size_bytes,
                    d.block_size
                )
            })
            .collect();
        writeln!(
            f,
            "disks:    {}",
            if disks.is_empty() {
                String::from("none")
            } else {
                format!(
                    "{}; {} block runs stored, the rest zero",
                    disks.join(", "),
                    self.disk_runs
                )
            }
        )?;
        writeln!(
            f,
            "taken:    {} (Unix seconds) from {}, migration protocol v{}",
            h.created_unix_secs, h.origin, h.protocol_version
        )?;
        writeln!(f, "memory digest: {}", hex(&h.memory_digest))
    }
}
