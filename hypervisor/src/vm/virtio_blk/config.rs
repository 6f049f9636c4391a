//! virtio-blk feature bits, limits and configuration space (VIRTIO 1.2 5.2.3, 5.2.4).
//!
//! Offered: VERSION_1 (mandatory: no legacy interface), INDIRECT_DESC (Linux uses indirect
//! tables for every multi-segment request), SEG_MAX, BLK_SIZE, FLUSH, DISCARD, and RO when
//! the backend is read-only. Not offered: SIZE_MAX, GEOMETRY, TOPOLOGY, CONFIG_WCE, MQ,
//! WRITE_ZEROES, SECURE_ERASE, EVENT_IDX, packed rings.

use super::backend::SECTOR_SIZE;
use crate::vm::virtio::device::feature;

/// virtio device ID of a block device (VIRTIO 1.2 5).
pub const DEVICE_ID_BLOCK: u32 = 2;

/// Feature bits of the block device (5.2.3).
pub mod blk_feature {
    /// `seg_max` is valid.
    pub const SEG_MAX: u64 = 1 << 2;
    /// The device is read-only.
    pub const RO: u64 = 1 << 5;
    /// `blk_size` is valid.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// FLUSH requests are supported.
    pub const FLUSH: u64 = 1 << 9;
    /// DISCARD requests are supported; the discard limits are valid.
    pub const DISCARD: u64 = 1 << 13;
}

/// Largest queue size (QueueNumMax).
pub const QUEUE_SIZE_MAX: u16 = 128;
/// Most data segments per request (the chain minus header and status; 5.2.4).
pub const SEG_MAX: u32 = QUEUE_SIZE_MAX as u32 - 2;
/// Most data bytes in one read or write: bounds the host buffer a guest can make us
/// allocate (Linux sends at most `max_sectors_kb`, 1280 KiB by default).
pub const MAX_REQUEST_BYTES: u64 = 4 << 20;
/// Most sectors in one discard segment.
pub const MAX_DISCARD_SECTORS: u32 = 1 << 22;
/// Most segments in one discard request.
pub const MAX_DISCARD_SEG: u32 = 16;
/// Length of the device ID string returned by GET_ID (5.2.6).
pub const ID_BYTES: usize = 20;

/// Bytes of configuration space this device implements (through
/// `discard_sector_alignment`).
pub const CONFIG_LEN: usize = 48;

/// Features offered for a backend with the given read-only flag.
pub fn offered_features(read_only: bool) -> u64 {
    let mut f = feature::VERSION_1
        | feature::INDIRECT_DESC
        | blk_feature::SEG_MAX
        | blk_feature::BLK_SIZE
        | blk_feature::FLUSH
        | blk_feature::DISCARD;
    if read_only {
        f |= blk_feature::RO;
    }
    f
}

/// The configuration space image (5.2.4 `struct virtio_blk_config`, little-endian):
///
/// ```text
/// 0  le64 capacity (sectors)     8  le32 size_max (0)     12 le32 seg_max
/// 16 geometry (0)                20 le32 blk_size         24 topology (0)
/// 32 u8 writeback (0)  33 unused  34 le16 num_queues (1)
/// 36 le32 max_discard_sectors    40 le32 max_discard_seg  44 le32 discard_sector_alignment
/// ```
pub fn config_space(capacity_sectors: u64, block_size: u32) -> [u8; CONFIG_LEN] {
    let mut c = [0u8; CONFIG_LEN];
    c[0..8].copy_from_slice(&capacity_sectors.to_le_bytes());
    c[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
    c[20..24].copy_from_slice(&block_size.to_le_bytes());
    c[34..36].copy_from_slice(&1u16.to_le_bytes());
    c[36..40].copy_from_slice(&MAX_DISCARD_SECTORS.to_le_bytes());
    c[40..44].copy_from_slice(&MAX_DISCARD_SEG.to_le_bytes());
    let alignment = (u64::from(block_size) / SECTOR_SIZE).max(1) as u32;
    c[44..48].copy_from_slice(&alignment.to_le_bytes());
    c
}
