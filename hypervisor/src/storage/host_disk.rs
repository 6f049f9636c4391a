//! A VM disk on a region of the host's ATA disk: the persistent `BlockBackend`.
//!
//! Why shared and synchronous: several VMs carve one physical disk, so the driver sits
//! behind one lock (the hypervisor runs one loop on one CPU; the lock only makes the
//! sharing explicit and `Send`). PIO completes inside `submit`, so the completion is queued
//! at once like a RAM disk's; the guest sees the same two-step flow. Every address is
//! checked against the region before it reaches the driver, so a guest can never touch
//! another VM's sectors.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::Mutex;

use super::ata::{AtaDisk, AtaPorts};
use super::region::HostRegion;
use crate::vm::virtio_blk::backend::{
    BackendError, BlockBackend, BlockCompletion, BlockOp, SECTOR_SIZE,
};

/// The host disk, shared by every VM with a region on it.
pub type SharedAtaDisk<P> = Arc<Mutex<AtaDisk<P>>>;

/// Most bytes zeroed per driver call when discarding.
const DISCARD_CHUNK: usize = 64 * 1024;

/// One VM's region of the host disk.
pub struct HostDiskRegion<P: AtaPorts> {
    disk: SharedAtaDisk<P>,
    region: HostRegion,
    done: VecDeque<BlockCompletion>,
    last_error: Option<String>,
}

impl<P: AtaPorts> core::fmt::Debug for HostDiskRegion<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostDiskRegion")
            .field("region", &self.region)
            .field("last_error", &self.last_error)
            .finish()
    }
}

impl<P: AtaPorts> HostDiskRegion<P> {
    /// The region `region` of `disk`. The caller checked the region lies on the disk
    /// (`region::check_claims`); [`Self::new`] checks again and refuses otherwise.
    pub fn new(disk: SharedAtaDisk<P>, region: HostRegion) -> Option<Self> {
        let disk_bytes = disk.lock().sectors().saturating_mul(SECTOR_SIZE);
        if region.size == 0
            || region.end() > disk_bytes
            || !region.offset.is_multiple_of(SECTOR_SIZE)
        {
            return None;
        }
        Some(Self {
            disk,
            region,
            done: VecDeque::new(),
            last_error: None,
        })
    }

    /// The region.
    pub fn region(&self) -> HostRegion {
        self.region
    }

    /// The driver's last error message, for `info block`.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Reads `out.len()` bytes (whole sectors) at byte `offset` of the region.
    pub fn read_bytes(&self, offset: u64, out: &mut [u8]) -> Result<(), String> {
        let lba = self
            .lba(offset / SECTOR_SIZE, out.len() as u64)
            .ok()
            .filter(|_| offset.is_multiple_of(SECTOR_SIZE))
            .ok_or_else(|| {
                alloc::format!(
                    "{} bytes at {offset} are not whole sectors of the region",
                    out.len()
                )
            })?;
        self.disk.lock().read(lba, out).map_err(|e| e.to_string())
    }

    /// Writes `data` (whole sectors) at byte `offset` of the region.
    pub fn write_bytes(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        let lba = self
            .lba(offset / SECTOR_SIZE, data.len() as u64)
            .ok()
            .filter(|_| offset.is_multiple_of(SECTOR_SIZE))
            .ok_or_else(|| {
                alloc::format!(
                    "{} bytes at {offset} are not whole sectors of the region",
                    data.len()
                )
            })?;
        self.disk.lock().write(lba, data).map_err(|e| e.to_string())
    }

    /// The disk LBA of `sector` of the region, if `len` bytes from it lie inside.
    fn lba(&self, sector: u64, len: u64) -> Result<u64, BackendError> {
        let err = BackendError::OutOfRange { sector, len };
        let end = sector
            .checked_mul(SECTOR_SIZE)
            .and_then(|s| s.checked_add(len))
            .ok_or(err)?;
        if end > self.region.size || !len.is_multiple_of(SECTOR_SIZE) {
            return Err(err);
        }
        Ok(self.region.first_sector() + sector)
    }

    fn device_error(&mut self, e: super::ata::AtaError) -> BackendError {
        let msg = e.to_string();
        log::warn!("host disk region {}: {msg}", self.region);
        self.last_error = Some(msg);
        BackendError::Device
    }

    fn execute(&mut self, op: BlockOp) -> Result<Vec<u8>, BackendError> {
        match op {
            BlockOp::Read { sector, len } => {
                let lba = self.lba(sector, u64::from(len))?;
                let mut buf = Vec::new();
                buf.try_reserve_exact(len as usize)
                    .map_err(|_| BackendError::OutOfMemory)?;
                buf.resize(len as usize, 0);
                if len > 0 {
                    let r = self.disk.lock().read(lba, &mut buf);
                    r.map_err(|e| self.device_error(e))?;
                }
                Ok(buf)
            }
            BlockOp::Write { sector, data } => {
                let lba = self.lba(sector, data.len() as u64)?;
                if !data.is_empty() {
                    let r = self.disk.lock().write(lba, &data);
                    r.map_err(|e| self.device_error(e))?;
                }
                Ok(Vec::new())
            }
            BlockOp::Flush => {
                let r = self.disk.lock().flush();
                r.map_err(|e| self.device_error(e))?;
                Ok(Vec::new())
            }
            BlockOp::Discard { ranges } => {
                let mut checked = Vec::new();
                for r in &ranges {
                    let bytes = u64::from(r.count) * SECTOR_SIZE;
                    checked.push((self.lba(r.sector, bytes)?, bytes));
                }
                let mut zeros = Vec::new();
                zeros
                    .try_reserve_exact(DISCARD_CHUNK)
                    .map_err(|_| BackendError::OutOfMemory)?;
                zeros.resize(DISCARD_CHUNK, 0);
                for (lba, bytes) in checked {
                    let mut done = 0u64;
                    while done < bytes {
                        let n = (bytes - done).min(DISCARD_CHUNK as u64);
                        let at = lba + done / SECTOR_SIZE;
                        let r = self.disk.lock().write(at, &zeros[..n as usize]);
                        r.map_err(|e| self.device_error(e))?;
                        done += n;
                    }
                }
                Ok(Vec::new())
            }
        }
    }
}

impl<P: AtaPorts> BlockBackend for HostDiskRegion<P> {
    fn capacity_sectors(&self) -> u64 {
        self.region.sectors()
    }

    fn block_size(&self) -> u32 {
        SECTOR_SIZE as u32
    }

    fn read_only(&self) -> bool {
        false
    }

    fn submit(&mut self, tag: u64, op: BlockOp) {
        let result = self.execute(op);
        self.done.push_back(BlockCompletion { tag, result });
    }

    fn poll_completion(&mut self) -> Option<BlockCompletion> {
        self.done.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ata::DriveSlot;
    use crate::storage::ata::fake_device::{FakeChannel, FakeDrive};
    use crate::storage::region::parse_region;
    use crate::vm::virtio_blk::backend::SectorRange;
    use alloc::vec;

    fn shared(sectors: usize) -> SharedAtaDisk<FakeChannel> {
        let chan = FakeChannel::new(Some(FakeDrive::new(sectors)), None);
        let slot = DriveSlot::parse("ata1-master").expect("slot");
        Arc::new(Mutex::new(AtaDisk::probe(chan, slot).expect("probe")))
    }

    fn run(b: &mut HostDiskRegion<FakeChannel>, op: BlockOp) -> Result<Vec<u8>, BackendError> {
        b.submit(9, op);
        let c = b.poll_completion().expect("completion");
        assert_eq!(c.tag, 9);
        assert!(b.poll_completion().is_none());
        c.result
    }

    #[test]
    fn two_regions_share_a_disk_without_seeing_each_other() {
        let disk = shared(4 * 2048);
        let mut a =
            HostDiskRegion::new(disk.clone(), parse_region("1M@1M").expect("r")).expect("a fits");
        let mut b =
            HostDiskRegion::new(disk.clone(), parse_region("1M@2M").expect("r")).expect("b fits");
        assert_eq!(a.capacity_sectors(), 2048);
        let data = vec![0xa5; 1024];
        run(
            &mut a,
            BlockOp::Write {
                sector: 2046,
                data: data.clone(),
            },
        )
        .expect("write a");
        let back = run(
            &mut a,
            BlockOp::Read {
                sector: 2046,
                len: 1024,
            },
        )
        .expect("read a");
        assert_eq!(back, data);
        let other = run(
            &mut b,
            BlockOp::Read {
                sector: 0,
                len: 1024,
            },
        )
        .expect("read b");
        assert!(other.iter().all(|&x| x == 0));
        // On the drive, a's last sectors sit just below b's first.
        let mut guard = disk.lock();
        let raw = &guard.ports_mut().drives[0].as_ref().expect("drive").data;
        assert_eq!(&raw[(2 << 20) - 1024..2 << 20], &data[..]);
    }

    #[test]
    fn requests_past_the_region_are_out_of_range_not_the_next_vms_sectors() {
        let disk = shared(4 * 2048);
        let mut a = HostDiskRegion::new(disk, parse_region("1M@1M").expect("r")).expect("a");
        let err = run(
            &mut a,
            BlockOp::Write {
                sector: 2047,
                data: vec![1; 1024],
            },
        );
        assert_eq!(
            err,
            Err(BackendError::OutOfRange {
                sector: 2047,
                len: 1024
            })
        );
        let err = run(
            &mut a,
            BlockOp::Read {
                sector: u64::MAX,
                len: 512,
            },
        );
        assert!(matches!(err, Err(BackendError::OutOfRange { .. })));
        let discard = BlockOp::Discard {
            ranges: vec![
                SectorRange {
                    sector: 0,
                    count: 1,
                },
                SectorRange {
                    sector: 2048,
                    count: 1,
                },
            ],
        };
        assert!(matches!(
            run(&mut a, discard),
            Err(BackendError::OutOfRange { .. })
        ));
    }

    #[test]
    fn discard_zeroes_and_flush_reaches_the_drive() {
        let disk = shared(2048);
        let mut a =
            HostDiskRegion::new(disk.clone(), parse_region("1M@0M").expect("r")).expect("a");
        run(
            &mut a,
            BlockOp::Write {
                sector: 0,
                data: vec![7; 200 * 512],
            },
        )
        .expect("write");
        let discard = BlockOp::Discard {
            ranges: vec![SectorRange {
                sector: 1,
                count: 150,
            }],
        };
        run(&mut a, discard).expect("discard");
        let back = run(
            &mut a,
            BlockOp::Read {
                sector: 0,
                len: 200 * 512,
            },
        )
        .expect("read");
        assert!(back[..512].iter().all(|&x| x == 7));
        assert!(back[512..151 * 512].iter().all(|&x| x == 0));
        assert!(back[151 * 512..].iter().all(|&x| x == 7));
        run(&mut a, BlockOp::Flush).expect("flush");
        assert_eq!(
            disk.lock().ports_mut().drives[0]
                .as_ref()
                .expect("d")
                .flushes,
            1
        );
    }

    #[test]
    fn a_failing_sector_is_an_io_error_with_a_message() {
        let disk = shared(2048);
        disk.lock().ports_mut().drives[0]
            .as_mut()
            .expect("d")
            .bad_lba = Some(5);
        let mut a = HostDiskRegion::new(disk, parse_region("1M@0M").expect("r")).expect("a");
        let err = run(
            &mut a,
            BlockOp::Read {
                sector: 4,
                len: 1024,
            },
        );
        assert_eq!(err, Err(BackendError::Device));
        assert!(
            a.last_error()
                .expect("message")
                .contains("ata1-master reported an error")
        );
    }

    #[test]
    fn a_region_off_the_disk_is_refused() {
        let disk = shared(2048);
        assert!(HostDiskRegion::new(disk, parse_region("1M@1M").expect("r")).is_none());
    }
}
