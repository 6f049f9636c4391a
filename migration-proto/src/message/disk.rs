//! Storage migration's own messages (protocol version 3 with DISK_MIGRATION, section 4b of
//! docs/migration-protocol.md): the manifest of the VM's disks, sent before the `Offer` so
//! the destination can refuse for lack of room before anything moves, and the per-region
//! digest of each disk, sent before `Commit`. The blocks themselves travel as `DiskBlocks`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::wire::{DecodeError, Reader, Writer};

/// Most disks in one manifest.
pub const MAX_DISKS: usize = 16;
/// Longest disk name.
pub const MAX_DISK_NAME_LEN: usize = 64;
/// Most regions in one `DiskDigest` (16 bytes each: 512 KiB, inside one frame).
pub const MAX_DISK_REGIONS: usize = 32 * 1024;
/// Smallest region a disk digest covers.
pub const MIN_DISK_REGION_BYTES: u32 = 1 << 20;

/// One disk of the migrating VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskDescriptor {
    /// The disk's number within the VM (what `DiskBlocks` and `DiskDigest` name).
    pub disk_id: u32,
    /// The guest's name for it (e.g. `vda`): 1..=64 bytes of UTF-8.
    pub name: String,
    /// Size in bytes: a non-zero multiple of `block_size`.
    pub size_bytes: u64,
    /// Block size: 512 or 4096 (every `DiskBlocks` of this disk uses it).
    pub block_size: u32,
}

impl DiskDescriptor {
    /// Blocks on the disk.
    pub fn blocks(&self) -> u64 {
        self.size_bytes / u64::from(self.block_size.max(1))
    }

    /// The digest region size for this disk: the smallest power of two of at least
    /// [`MIN_DISK_REGION_BYTES`] that cuts the disk into at most [`MAX_DISK_REGIONS`]
    /// regions (both sides compute it; the `DiskDigest` repeats it as a check).
    pub fn region_bytes(&self) -> u32 {
        let needed = self.size_bytes.div_ceil(MAX_DISK_REGIONS as u64);
        let bytes = needed
            .max(u64::from(MIN_DISK_REGION_BYTES))
            .next_power_of_two();
        u32::try_from(bytes).unwrap_or(1 << 31)
    }

    /// Regions of the disk digest.
    pub fn regions(&self) -> usize {
        self.size_bytes
            .div_ceil(u64::from(self.region_bytes()))
            .try_into()
            .unwrap_or(usize::MAX)
    }

    fn validate(&self) -> Result<(), DecodeError> {
        if self.name.is_empty() {
            return Err(DecodeError::InvalidValue {
                field: "disk.name",
                value: 0,
            });
        }
        if self.block_size != 512 && self.block_size != 4096 {
            return Err(DecodeError::InvalidValue {
                field: "manifest.block_size",
                value: self.block_size.into(),
            });
        }
        if self.size_bytes == 0 || !self.size_bytes.is_multiple_of(u64::from(self.block_size)) {
            return Err(DecodeError::InvalidValue {
                field: "manifest.size_bytes",
                value: self.size_bytes,
            });
        }
        // 2^31-byte regions (the largest `region_bytes` gives) times the most regions.
        if self.size_bytes > (MAX_DISK_REGIONS as u64) << 31 {
            return Err(DecodeError::InvalidValue {
                field: "manifest.size_bytes",
                value: self.size_bytes,
            });
        }
        Ok(())
    }
}

/// Source -> destination, right before the `Offer`: every disk that migrates with the VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskManifest {
    /// The disks (1..=16, distinct ids).
    pub disks: Vec<DiskDescriptor>,
}

impl DiskManifest {
    /// Checks the field rules the decoder enforces.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.disks.is_empty() || self.disks.len() > MAX_DISKS {
            return Err(DecodeError::InvalidValue {
                field: "manifest.count",
                value: self.disks.len() as u64,
            });
        }
        for (i, d) in self.disks.iter().enumerate() {
            if d.name.len() > MAX_DISK_NAME_LEN {
                return Err(DecodeError::TooLong {
                    field: "disk.name",
                    len: d.name.len(),
                    max: MAX_DISK_NAME_LEN,
                });
            }
            d.validate()?;
            if self.disks[..i].iter().any(|o| o.disk_id == d.disk_id) {
                return Err(DecodeError::InvalidValue {
                    field: "manifest.disk_id",
                    value: d.disk_id.into(),
                });
            }
        }
        Ok(())
    }

    /// The disk with `disk_id`.
    pub fn disk(&self, disk_id: u32) -> Option<&DiskDescriptor> {
        self.disks.iter().find(|d| d.disk_id == disk_id)
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.count16(self.disks.len());
        for d in &self.disks {
            w.u32(d.disk_id);
            w.text16(&d.name);
            w.u64(d.size_bytes);
            w.u32(d.block_size);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = r.count16("manifest.count", MAX_DISKS)?;
        let mut disks = Vec::with_capacity(count);
        for _ in 0..count {
            disks.push(DiskDescriptor {
                disk_id: r.u32("disk.disk_id")?,
                name: r.text16("disk.name", MAX_DISK_NAME_LEN)?,
                size_bytes: r.u64("disk.size_bytes")?,
                block_size: r.u32("disk.block_size")?,
            });
        }
        let m = DiskManifest { disks };
        m.validate()?;
        Ok(m)
    }
}

/// Source -> destination before `Commit`: one disk's per-region accumulators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskDigestMessage {
    /// The disk.
    pub disk_id: u32,
    /// Its size (must equal the manifest's).
    pub size_bytes: u64,
    /// Region size (must equal `DiskDescriptor::region_bytes`).
    pub region_bytes: u32,
    /// One accumulator per region, in order (`ceil(size / region_bytes)` of them).
    pub regions: Vec<u128>,
}

impl DiskDigestMessage {
    /// Checks the field rules the decoder enforces (the manifest checks are the session's).
    pub fn validate(&self) -> Result<(), DecodeError> {
        if !self.region_bytes.is_power_of_two() || self.region_bytes < MIN_DISK_REGION_BYTES {
            return Err(DecodeError::InvalidValue {
                field: "disk_digest.region_bytes",
                value: self.region_bytes.into(),
            });
        }
        let expected = self.size_bytes.div_ceil(u64::from(self.region_bytes));
        if self.regions.is_empty()
            || self.regions.len() > MAX_DISK_REGIONS
            || self.regions.len() as u64 != expected
        {
            return Err(DecodeError::InvalidValue {
                field: "disk_digest.count",
                value: self.regions.len() as u64,
            });
        }
        Ok(())
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.disk_id);
        w.u64(self.size_bytes);
        w.u32(self.region_bytes);
        w.u32(self.regions.len() as u32);
        for r in &self.regions {
            w.bytes(&r.to_le_bytes());
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let disk_id = r.u32("disk_digest.disk_id")?;
        let size_bytes = r.u64("disk_digest.size_bytes")?;
        let region_bytes = r.u32("disk_digest.region_bytes")?;
        let count = r.u32("disk_digest.count")? as usize;
        if count > MAX_DISK_REGIONS || count.saturating_mul(16) > r.remaining() {
            return Err(DecodeError::InvalidValue {
                field: "disk_digest.count",
                value: count as u64,
            });
        }
        let mut regions = Vec::with_capacity(count);
        for _ in 0..count {
            regions.push(u128::from_le_bytes(r.array("disk_digest.region")?));
        }
        let m = DiskDigestMessage {
            disk_id,
            size_bytes,
            region_bytes,
            regions,
        };
        m.validate()?;
        Ok(m)
    }
}
