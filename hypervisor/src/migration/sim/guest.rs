//! A simulated guest whose whole state is its memory plus two "registers", and which can
//! verify itself, like the heartbeat test guest does on real hardware.
//!
//! Page 0 holds the heartbeat (one beat per simulated millisecond of run time) and the
//! total number of page writes. Every other page holds its own number, a version and a body
//! derived from both; a page that was never written is either all zero (every fourth page)
//! or version 0. `verify` checks every page against its header and the write total against
//! the sum of versions, so a lost, stale, torn or foreign page is detected.

use std::string::String;
use std::vec;
use std::vec::Vec;

use migration_proto::dirty::DirtyBitmap;
use migration_proto::message::{DeviceState, DiskDescriptor, VcpuState, VmIdentity};

use super::disk::{BLOCK, FakeDisk};

use crate::migration::destination::{IncomingVm, IncomingVmFactory};
use crate::migration::dirty::DirtyTrackingMode;
use crate::migration::dirty_limit::DirtyRateLimiter;
use crate::migration::source::MigratableVm;
use crate::migration::vm_error::VmError;
use crate::vm::guest_ram::GuestRamError;
use crate::vm::vcpu_state::entry_checks::GuestStateError;

pub const PAGE: usize = 4096;

fn word(page: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(page[i * 8..i * 8 + 8].try_into().unwrap())
}

fn fill_page(page: &mut [u8], pfn: u64, version: u64) {
    if version == 0 && pfn.is_multiple_of(4) {
        page.fill(0);
        return;
    }
    page[..8].copy_from_slice(&pfn.to_le_bytes());
    page[8..16].copy_from_slice(&version.to_le_bytes());
    if pfn.is_multiple_of(3) {
        // Incompressible body.
        let mut x = pfn.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ version.wrapping_add(1);
        for chunk in page[16..].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    } else {
        page[16..].fill((pfn.wrapping_mul(7).wrapping_add(version)) as u8);
    }
}

/// The simulated guest.
pub struct FakeGuest {
    pub memory: Vec<u8>,
    pub paused: bool,
    pub throttle: u8,
    /// Page writes per millisecond, in hundredths.
    pub centipages_per_ms: u64,
    rng: u64,
    carry: u64,
    tracking: Option<DirtyBitmap>,
    pub max_throttle_seen: u8,
    /// The strongest dirty-rate limit the source set.
    pub lowest_dirty_limit: Option<u64>,
    pub tracking_ever: bool,
    /// A guest the throttle has no effect on (to show what throttling buys).
    pub ignores_throttle: bool,
    /// Broken dirty tracking: writes to this page are never reported.
    pub untracked_page: Option<usize>,
    /// The dirty-rate limit the source set, on a clock of simulated milliseconds.
    dirty_limit: Option<DirtyRateLimiter>,
    now_ms: u64,
    /// The RIP its vCPU state carries (a peer could send anything).
    pub rip: u64,
    /// Its disk, if it has one (storage migration).
    pub disk: Option<FakeDisk>,
}

impl FakeGuest {
    pub fn new(pages: usize, centipages_per_ms: u64) -> Self {
        let mut memory = vec![0u8; pages * PAGE];
        for (pfn, page) in memory.chunks_mut(PAGE).enumerate().skip(1) {
            fill_page(page, pfn as u64, 0);
        }
        FakeGuest {
            memory,
            paused: false,
            throttle: 0,
            centipages_per_ms,
            rng: 0x1234_5678,
            carry: 0,
            tracking: None,
            max_throttle_seen: 0,
            lowest_dirty_limit: None,
            tracking_ever: false,
            ignores_throttle: false,
            untracked_page: None,
            dirty_limit: None,
            now_ms: 0,
            rip: 0x10_0000,
            disk: None,
        }
    }

    pub fn from_incoming(vm: FakeIncoming) -> Self {
        let vcpu = vm.vcpu.expect("committed VM without vCPU state");
        let disk = vm
            .disk
            .map(|bytes| FakeDisk::received(bytes, vcpu.gprs[3], vcpu.gprs[4]));
        FakeGuest {
            memory: vm.memory,
            paused: false,
            throttle: 0,
            centipages_per_ms: vcpu.gprs[2],
            rng: vcpu.gprs[0],
            carry: vcpu.gprs[1],
            tracking: None,
            max_throttle_seen: 0,
            lowest_dirty_limit: None,
            tracking_ever: false,
            ignores_throttle: false,
            untracked_page: None,
            dirty_limit: None,
            now_ms: 0,
            rip: vcpu.rip,
            disk,
        }
    }

    fn pages(&self) -> usize {
        self.memory.len() / PAGE
    }

    fn mark(&mut self, pfn: usize) {
        if self.untracked_page == Some(pfn) {
            return;
        }
        if let Some(bitmap) = self.tracking.as_mut() {
            bitmap.set(pfn);
        }
    }

    /// One simulated millisecond of guest time.
    pub fn tick(&mut self) {
        if self.paused {
            return;
        }
        self.now_ms += 1;
        let beat = word(&self.memory, 0) + 1;
        self.memory[..8].copy_from_slice(&beat.to_le_bytes());
        self.mark(0);
        let throttle = if self.ignores_throttle {
            0
        } else {
            self.throttle
        };
        self.carry += self.centipages_per_ms * u64::from(100 - throttle) / 100;
        while self.carry >= 100 {
            if let Some(limiter) = self.dirty_limit.as_mut() {
                // Held by the dirty-rate limit: the writes wait (the guest falls behind).
                if !limiter.may_run(self.now_ms) {
                    break;
                }
                limiter.dirtied(1);
            }
            self.carry -= 100;
            self.rng = self
                .rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pfn = 1 + (self.rng >> 33) as usize % (self.pages() - 1);
            let page = &mut self.memory[pfn * PAGE..(pfn + 1) * PAGE];
            let version = if word(page, 0) == pfn as u64 {
                word(page, 1)
            } else {
                0
            };
            fill_page(page, pfn as u64, version + 1);
            let writes = word(&self.memory, 1) + 1;
            self.memory[8..16].copy_from_slice(&writes.to_le_bytes());
            self.mark(pfn);
        }
        if let Some(disk) = self.disk.as_mut() {
            disk.tick();
        }
    }

    pub fn heartbeat(&self) -> u64 {
        word(&self.memory, 0)
    }

    /// The guest's own check of its memory: `Err` names the first inconsistency.
    pub fn verify(&self) -> Result<(), String> {
        let mut expected = vec![0u8; PAGE];
        let mut versions = 0;
        for (pfn, page) in self.memory.chunks(PAGE).enumerate().skip(1) {
            let version = if word(page, 0) == pfn as u64 {
                word(page, 1)
            } else {
                0
            };
            fill_page(&mut expected, pfn as u64, version);
            if page != expected.as_slice() {
                return Err(std::format!("CORRUPT page {pfn}"));
            }
            versions += version;
        }
        if versions != word(&self.memory, 1) {
            return Err(std::format!(
                "CORRUPT: {} writes recorded, {versions} found",
                word(&self.memory, 1)
            ));
        }
        Ok(())
    }
}

impl MigratableVm for FakeGuest {
    fn identity(&self) -> VmIdentity {
        VmIdentity {
            uuid: [9; 16],
            name: "heartbeat".into(),
            memory_bytes: self.memory.len() as u64,
            vcpu_count: 1,
        }
    }

    fn read_memory(&mut self, gpa: u64, out: &mut [u8]) -> Result<(), VmError> {
        let start = gpa as usize;
        let src = self
            .memory
            .get(start..start + out.len())
            .ok_or(VmError::ReadMemory(GuestRamError::OutOfRange {
                gpa,
                len: out.len() as u64,
            }))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn pause(&mut self) {
        self.paused = true;
    }

    fn resume(&mut self) {
        self.paused = false;
    }

    fn set_throttle(&mut self, percent: u8) {
        self.throttle = percent;
        self.max_throttle_seen = self.max_throttle_seen.max(percent);
    }

    fn set_dirty_limit(&mut self, pages_per_sec: Option<u64>) {
        DirtyRateLimiter::retarget(&mut self.dirty_limit, pages_per_sec, 1000, self.now_ms);
        if let Some(pps) = pages_per_sec {
            self.lowest_dirty_limit = Some(self.lowest_dirty_limit.map_or(pps, |l| l.min(pps)));
        }
    }

    fn start_dirty_tracking(&mut self, _mode: DirtyTrackingMode) -> Result<(), VmError> {
        self.tracking = Some(DirtyBitmap::new(self.pages()));
        self.tracking_ever = true;
        Ok(())
    }

    fn harvest_dirty(&mut self) -> Result<DirtyBitmap, VmError> {
        self.tracking
            .as_mut()
            .map(DirtyBitmap::take)
            .ok_or_else(|| VmError::HarvestDirty("dirty tracking is off".into()))
    }

    fn stop_dirty_tracking(&mut self) {
        self.tracking = None;
    }

    fn vcpu_states(&mut self) -> Result<Vec<VcpuState>, VmError> {
        let mut state = VcpuState {
            rip: self.rip,
            ..VcpuState::default()
        };
        state.gprs[0] = self.rng;
        state.gprs[1] = self.carry;
        state.gprs[2] = self.centipages_per_ms;
        if let Some(disk) = &self.disk {
            state.gprs[3] = disk.writes;
            state.gprs[4] = disk.writes_per_ms;
        }
        Ok(vec![state])
    }

    fn disks(&self) -> Vec<DiskDescriptor> {
        self.disk.iter().map(FakeDisk::descriptor).collect()
    }

    fn read_disk(&mut self, disk_id: u32, lba: u64, out: &mut [u8]) -> Result<(), VmError> {
        let disk = self
            .disk
            .as_ref()
            .filter(|_| disk_id == 0)
            .ok_or_else(|| VmError::Disk(std::format!("no disk {disk_id}")))?;
        let at = lba as usize * BLOCK;
        let src = disk
            .bytes
            .get(at..at + out.len())
            .ok_or_else(|| VmError::Disk(std::format!("blocks from {lba} past the end")))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn harvest_disk_dirty(&mut self, disk_id: u32) -> Result<DirtyBitmap, VmError> {
        self.disk
            .as_mut()
            .filter(|_| disk_id == 0)
            .map(|d| d.dirty.take())
            .ok_or_else(|| VmError::Disk(std::format!("no disk {disk_id}")))
    }

    fn device_states(&mut self) -> Result<Vec<DeviceState>, VmError> {
        Ok(vec![DeviceState {
            id: "com1".into(),
            version: 1,
            data: b"uart".to_vec(),
        }])
    }
}

impl FakeGuest {
    pub fn is_tracking(&self) -> bool {
        self.tracking.is_some()
    }
}

/// A VM being received.
pub struct FakeIncoming {
    pub memory: Vec<u8>,
    pub vcpu: Option<VcpuState>,
    pub devices: Vec<DeviceState>,
    /// Simulates a bad RAM cell: this byte reads back flipped through `read_memory` (what
    /// the whole-memory digest of `verify full` reads).
    pub flip_byte: Option<usize>,
    /// The disk being received (storage migration).
    pub disk: Option<Vec<u8>>,
}

impl IncomingVm for FakeIncoming {
    fn page_mut(&mut self, gpa: u64) -> Option<&mut [u8]> {
        let start = usize::try_from(gpa).ok()?;
        self.memory.get_mut(start..start.checked_add(4096)?)
    }

    fn load_vcpu(&mut self, state: &VcpuState) -> Result<(), VmError> {
        // Like the kernel's `entry_checks`, in miniature: refuse what could not enter.
        if !crate::vm::vcpu_state::entry_checks::is_canonical(state.rip) {
            return Err(VmError::VcpuCannotEnter(GuestStateError {
                field: "RIP",
                rule: "not canonical",
            }));
        }
        self.vcpu = Some(state.clone());
        Ok(())
    }

    fn load_device(&mut self, state: &DeviceState) -> Result<(), VmError> {
        if state.id != "com1" {
            return Err(VmError::UnknownDevice {
                id: state.id.clone(),
                version: state.version,
            });
        }
        self.devices.push(state.clone());
        Ok(())
    }

    fn create_disk(&mut self, disk: &DiskDescriptor) -> Result<(), VmError> {
        self.disk = Some(vec![0; disk.size_bytes as usize]);
        Ok(())
    }

    fn write_disk(&mut self, _disk_id: u32, lba: u64, data: &[u8]) -> Result<(), VmError> {
        let disk = self
            .disk
            .as_mut()
            .ok_or_else(|| VmError::Disk("no disk".into()))?;
        let at = lba as usize * BLOCK;
        disk[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn read_memory(&mut self, gpa: u64, out: &mut [u8]) -> Result<(), VmError> {
        let start = gpa as usize;
        out.copy_from_slice(&self.memory[start..start + out.len()]);
        if let Some(i) = self
            .flip_byte
            .filter(|i| (start..start + out.len()).contains(i))
        {
            out[i - start] ^= 0x40;
        }
        Ok(())
    }
}

/// Builds incoming VMs within a memory budget.
pub struct FakeFactory {
    pub limit_bytes: u64,
    /// Room for incoming disks (storage migration).
    pub disk_limit_bytes: u64,
    /// Memory this host can still allocate for guests.
    pub free_bytes: u64,
    pub created: usize,
    pub discarded: usize,
    pub flip_byte: Option<usize>,
}

impl Default for FakeFactory {
    fn default() -> Self {
        FakeFactory {
            limit_bytes: 1 << 30,
            disk_limit_bytes: 1 << 30,
            free_bytes: 1 << 30,
            created: 0,
            discarded: 0,
            flip_byte: None,
        }
    }
}

impl IncomingVmFactory for FakeFactory {
    type Vm = FakeIncoming;

    fn create(&mut self, identity: &VmIdentity) -> Result<FakeIncoming, VmError> {
        if identity.memory_bytes > self.free_bytes {
            return Err(VmError::Build("out of memory".into()));
        }
        self.free_bytes -= identity.memory_bytes;
        self.created += 1;
        Ok(FakeIncoming {
            memory: vec![0; identity.memory_bytes as usize],
            vcpu: None,
            devices: Vec::new(),
            flip_byte: self.flip_byte,
            disk: None,
        })
    }

    fn discard(&mut self, vm: FakeIncoming) {
        self.free_bytes += vm.memory.len() as u64;
        self.discarded += 1;
    }
}
