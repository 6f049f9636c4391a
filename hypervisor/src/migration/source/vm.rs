//! What the source engine needs from a VM.

use alloc::vec::Vec;

use migration_proto::dirty::DirtyBitmap;
use migration_proto::message::{DeviceState, DiskDescriptor, VcpuState, VmIdentity};

use crate::migration::dirty::DirtyTrackingMode;
use crate::migration::vm_error::VmError;

/// A running VM as the source side of a migration sees it.
///
/// Contract: the engine pauses/resumes only through `pause`/`resume`, reads memory only in
/// whole pages inside `[0, identity().memory_bytes)`, and after a failure always calls
/// `stop_dirty_tracking`, `set_throttle(0)`, `set_dirty_limit(None)` and (if it paused)
/// `resume` — the VM must then
/// run exactly as if no migration had been tried.
pub trait MigratableVm {
    /// Identity sent in the offer.
    fn identity(&self) -> VmIdentity;
    /// Copies guest memory at `gpa` into `out` (page aligned, whole pages).
    fn read_memory(&mut self, gpa: u64, out: &mut [u8]) -> Result<(), VmError>;
    /// Stops the vCPUs (they stay stopped until `resume`).
    fn pause(&mut self);
    /// Lets the vCPUs run again.
    fn resume(&mut self);
    /// Takes `percent` of the vCPUs' time away (0 = full speed).
    fn set_throttle(&mut self, percent: u8);
    /// Holds each vCPU to at most this many newly dirtied pages per second (`None`: no
    /// limit). Only meaningful while dirty tracking runs.
    fn set_dirty_limit(&mut self, pages_per_sec: Option<u64>);
    /// Starts tracking writes; from now on every written page shows up in a harvest.
    fn start_dirty_tracking(&mut self, mode: DirtyTrackingMode) -> Result<(), VmError>;
    /// Pages written since the previous harvest (or since tracking started).
    fn harvest_dirty(&mut self) -> Result<DirtyBitmap, VmError>;
    /// Ends tracking (idempotent).
    fn stop_dirty_tracking(&mut self);
    /// State of every (paused) vCPU.
    fn vcpu_states(&mut self) -> Result<Vec<VcpuState>, VmError>;
    /// State of every device model of the (paused) VM.
    fn device_states(&mut self) -> Result<Vec<DeviceState>, VmError>;
    /// The VM's disks, for storage migration (`migrate -b`); none by default.
    fn disks(&self) -> Vec<DiskDescriptor> {
        Vec::new()
    }
    /// Copies whole blocks of disk `disk_id` from block `lba` into `out`.
    fn read_disk(&mut self, disk_id: u32, _lba: u64, _out: &mut [u8]) -> Result<(), VmError> {
        Err(VmError::Disk(alloc::format!(
            "this VM has no disk {disk_id}"
        )))
    }
    /// Blocks of disk `disk_id` written since the previous harvest (the disk model marks
    /// them at submission, always; a harvest takes and clears the set).
    fn harvest_disk_dirty(&mut self, disk_id: u32) -> Result<DirtyBitmap, VmError> {
        Err(VmError::Disk(alloc::format!(
            "this VM has no disk {disk_id}"
        )))
    }
}
