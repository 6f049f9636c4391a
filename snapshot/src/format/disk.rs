//! The VM's virtual disks in a snapshot (format 2): what the header says about each disk,
//! the disk contents as the receiver assembled them from storage migration's `DiskBlocks`,
//! and the content digest that checks them after decoding.
//!
//! Why a content digest per disk besides the END digest: the END digest proves the file is
//! the one written; the disk digest proves the blocks decoded from it are the disk that
//! arrived (a bug in how runs are placed cannot restore a wrong disk), exactly as the
//! memory digest does for guest RAM.

use migration_proto::digest::Digest;
use migration_proto::message::DiskDescriptor;

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
