//! The VM's virtual disks in a snapshot (format 2): what the header says about each disk,
//! the disk contents as the receiver assembled them from storage migration's `DiskBlocks`,
//! the content digest that checks them after decoding, and the decoding of DISK records
//! (`IncomingDisks`: each block inside its disk and stored once).
//!
//! Why a content digest per disk besides the END digest: the END digest proves the file is
//! the one written; the disk digest proves the blocks decoded from it are the disk that
//! arrived (a bug in how runs are placed cannot restore a wrong disk), exactly as the
//! memory digest does for guest RAM.

use migration_proto::digest::{Digest, constant_time_eq};
use migration_proto::message::{DiskDescriptor, Message};
use migration_proto::wire::MessageType;

use super::FormatError;
use super::error::{bad_decode, bad_record};

/// Largest total disk size a snapshot may hold (all disks together).
pub const MAX_DISK_BYTES: u64 = 64 << 30;

/// BLAKE3 derive-key context of the per-disk content digest.
const DISK_DIGEST_CONTEXT: &str = "tern snapshot 2026 disk contents v1";

/// One disk in the header's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskEntry {
    /// The disk as the source's `DiskManifest` described it (id, guest name, size, block
    /// size).
    pub descriptor: DiskDescriptor,
    /// [`digest_disk`] of its contents.
    pub digest: Digest,
}

/// One disk and its contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotDisk {
    /// The disk's manifest entry.
    pub descriptor: DiskDescriptor,
    /// Every byte of the disk (`descriptor.size_bytes` long).
    pub data: Vec<u8>,
}

impl SnapshotDisk {
    /// The header's entry for this disk.
    pub fn entry(&self) -> DiskEntry {
        DiskEntry {
            descriptor: self.descriptor.clone(),
            digest: digest_disk(&self.descriptor, &self.data),
        }
    }
}

/// The content digest of a disk: BLAKE3 in derive-key mode over its id, size and bytes.
pub fn digest_disk(descriptor: &DiskDescriptor, data: &[u8]) -> Digest {
    let mut hasher = blake3::Hasher::new_derive_key(DISK_DIGEST_CONTEXT);
    hasher.update(&descriptor.disk_id.to_le_bytes());
    hasher.update(&(data.len() as u64).to_le_bytes());
    hasher.update(data);
    *hasher.finalize().as_bytes()
}

/// The disks being decoded: contents, and which blocks a record already stored.
pub(super) struct IncomingDisks {
    disks: Vec<(SnapshotDisk, Vec<bool>)>,
    /// A DISK record was seen (PAGES records must come before).
    pub(super) any_stored: bool,
}

impl IncomingDisks {
    /// Zeroed contents for every disk of the header, allocated fallibly.
    pub(super) fn new(entries: &[DiskEntry]) -> Result<IncomingDisks, FormatError> {
        let mut disks = Vec::with_capacity(entries.len());
        for entry in entries {
            let d = &entry.descriptor;
            let out_of_memory = FormatError::OutOfMemory {
                bytes: d.size_bytes,
            };
            let bytes = usize::try_from(d.size_bytes).map_err(|_| out_of_memory)?;
            let data = crate::zeroed::zeroed_buffer(bytes).ok_or(FormatError::OutOfMemory {
                bytes: d.size_bytes,
            })?;
            let blocks = usize::try_from(d.blocks()).unwrap_or(usize::MAX);
            let mut stored = Vec::new();
            stored
                .try_reserve_exact(blocks)
                .map_err(|_| FormatError::OutOfMemory {
                    bytes: blocks as u64,
                })?;
            stored.resize(blocks, false);
            disks.push((
                SnapshotDisk {
                    descriptor: d.clone(),
                    data,
                },
                stored,
            ));
        }
        Ok(IncomingDisks {
            disks,
            any_stored: false,
        })
    }

    /// Places one DISK record's blocks: a disk of the header, its block size, inside the
    /// disk, each block stored once.
    pub(super) fn store(&mut self, at: usize, payload: &[u8]) -> Result<(), FormatError> {
        self.any_stored = true;
        let message =
            Message::decode(MessageType::DiskBlocks, payload).map_err(|e| bad_decode(at, e))?;
        let Message::DiskBlocks(run) = message else {
            return Err(bad_record(at, "not a disk block run"));
        };
        let (disk, stored) = self
            .disks
            .iter_mut()
            .find(|(d, _)| d.descriptor.disk_id == run.disk_id)
            .ok_or_else(|| bad_record(at, format!("disk {} is not in the header", run.disk_id)))?;
        let d = &disk.descriptor;
        if run.block_size != d.block_size {
            return Err(bad_record(
                at,
                format!(
                    "blocks of {} bytes for disk {} of {}-byte blocks",
                    run.block_size, d.name, d.block_size
                ),
            ));
        }
        let block = d.block_size as usize;
        let first = usize::try_from(run.first_lba).unwrap_or(usize::MAX);
        let count = run.data.len() / block;
        let slots = first
            .checked_add(count)
            .and_then(|end| stored.get_mut(first..end))
            .ok_or_else(|| bad_record(at, format!("block run outside disk {}", d.name)))?;
        if slots.iter().any(|s| *s) {
            return Err(bad_record(
                at,
                format!("block of disk {} stored twice", d.name),
            ));
        }
        slots.fill(true);
        let start = first * block;
        disk.data
            .get_mut(start..start + run.data.len())
            .ok_or_else(|| bad_record(at, format!("block run outside disk {}", d.name)))?
            .copy_from_slice(&run.data);
        Ok(())
    }

    /// The decoded disks, each checked against the header's content digest.
    pub(super) fn finish(self, entries: &[DiskEntry]) -> Result<Vec<SnapshotDisk>, FormatError> {
        let mut out = Vec::with_capacity(self.disks.len());
        for ((disk, _), entry) in self.disks.into_iter().zip(entries) {
            if !constant_time_eq(&digest_disk(&disk.descriptor, &disk.data), &entry.digest) {
                return Err(FormatError::DiskDigestMismatch {
                    disk: disk.descriptor.name,
                });
            }
            out.push(disk);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(id: u32) -> DiskDescriptor {
        DiskDescriptor {
            disk_id: id,
            name: String::from("vda"),
            size_bytes: 4096,
            block_size: 512,
        }
    }

    #[test]
    fn the_digest_binds_contents_and_disk_id() {
        let data = vec![7u8; 4096];
        let mut other = data.clone();
        other[4095] ^= 1;
        assert_ne!(digest_disk(&disk(0), &data), digest_disk(&disk(0), &other));
        assert_ne!(digest_disk(&disk(0), &data), digest_disk(&disk(1), &data));
        assert_eq!(digest_disk(&disk(0), &data), digest_disk(&disk(0), &data));
    }
}
