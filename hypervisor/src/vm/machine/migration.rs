//! The machine's side of migration: dirty tracking by EPT write-protection, vCPU throttling,
//! RAM access, UART state, and a blank machine to receive an incoming VM into.
//!
//! The bookkeeping lives in `crate::migration::dirty` (host-tested); this file only applies
//! it to this machine's EPT and issues the INVEPT each step reports as required (SDM Vol. 3C
//! §29.4.3.4). The exit hook is [`Machine::on_dirty_write`], called for
//! `ExitAction::DirtyWrite` (an EPT violation of a write to a read-only RAM page, §29.3.3.2).

use alloc::vec::Vec;

use migration_proto::dirty::DirtyBitmap;

use super::boot_image::BootImage;
use super::pml::PmlTracking;
use super::{GuestFpu, Machine, MachineError};
use crate::migration::dirty::{DirtyTrackingMode, EptWriteProtect, TrackingError, WriteFault};
use crate::migration::dirty_limit::DirtyRateLimiter;
use crate::vm::console_out::LineOutput;
use crate::vm::exit_handler::CrashReason;
use crate::vm::guest_ram::GuestRamError;
use crate::vm::pvh::START_INFO_GPA;
use crate::vm::state::VmState;
use crate::vm::uart16550::state::RestoreError;
use crate::vmx::frames::{FrameSource, FrameTables};
use crate::vmx::hw::VmxOn;
use crate::vmx::hw::vcpu::HwVcpu;
use crate::vmx::setup::GuestEntry;

/// Migration state kept inside a machine.
#[derive(Debug, Default)]
pub struct MigrationHooks {
    tracker: Option<EptWriteProtect>,
    pub(super) pml: Option<PmlTracking>,
    throttle_percent: u8,
    throttle_credit: u32,
    /// The dirty-rate limit (`convergence dirty-limit`), charged by the tracking exits.
    pub(super) dirty_limit: Option<DirtyRateLimiter>,
}

/// This host's calibrated TSC rate in kHz, as CPUID's timing leaf reports it (saturated to
/// its 32 bits).
pub(super) fn host_tsc_khz() -> u32 {
    u32::try_from(crate::arch::tsc::clock().hz / 1000).unwrap_or(u32::MAX)
}

fn tracking_error(e: TrackingError) -> MachineError {
    match e {
        TrackingError::Ept(e) => MachineError::Ept(e),
        other => MachineError::Migration(other),
    }
}

impl<O: LineOutput> Machine<O> {
    /// A paused VM with zeroed RAM and a vCPU in its reset state, to receive an incoming
    /// migration into (memory, vCPU and UART state are then loaded from the stream). It has
    /// no boot image: `vm stop` + `vm start` cannot reboot it. Its TSC rate is this host's
    /// until the incoming vCPU state brings the rate the VM was shown at boot.
    pub fn create_incoming(
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        name: &str,
        ram_bytes: u64,
        vpid: u16,
        out: O,
    ) -> Result<Self, MachineError> {
        let fpu = GuestFpu::at_reset().map_err(MachineError::Xsave)?;
        let memory = Self::allocate_memory(frames, ram_bytes)?;
        let boot = BootImage::none();
        let mut machine = Self::assemble(
            vmx,
            name,
            VmState::Paused,
            boot,
            memory,
            vpid,
            host_tsc_khz(),
            out,
            fpu,
        );
        let eptp = machine.eptp;
        let vcpu = machine
            .map_ram(frames)
            .and_then(|()| vmx.invept(eptp).map_err(MachineError::from))
            .and_then(|()| {
                // Any entry state: the incoming vCPU state replaces it before the VM runs.
                let entry = GuestEntry::Pvh {
                    entry: 0,
                    start_info: START_INFO_GPA as u32,
                };
                HwVcpu::new(vmx, frames, eptp, vpid, &entry).map_err(MachineError::from)
            });
        match vcpu {
            Ok(vcpu) => {
                machine.vcpu = Some(vcpu);
                Ok(machine)
            }
            Err(e) => {
                machine.destroy(vmx, frames);
                Err(e)
            }
        }
    }

    /// Starts dirty tracking with `mode`; PML falls back to write-protection where the CPU
    /// lacks it. Returns the mode in use.
    pub fn start_dirty_tracking(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        mode: DirtyTrackingMode,
    ) -> Result<DirtyTrackingMode, MachineError> {
        if mode == DirtyTrackingMode::Pml {
            match self.start_pml(vmx, frames) {
                Ok(pml) => {
                    self.migration.pml = Some(pml);
                    return Ok(DirtyTrackingMode::Pml);
                }
                Err(MachineError::Migration(TrackingError::Unsupported(why))) => {
                    log::warn!(
                        "vm {}: {why} unavailable; tracking by write-protection",
                        self.name
                    );
                }
                Err(e) => return Err(e),
            }
        }
        self.start_write_protect(vmx, frames)?;
        Ok(DirtyTrackingMode::WriteProtect)
    }

    /// Starts write-protection tracking: every RAM page is write-protected, INVEPT.
    fn start_write_protect(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
    ) -> Result<(), MachineError> {
        let (tracker, invept) =
            EptWriteProtect::start(&self.ept, &mut FrameTables(frames), self.ram.size())
                .map_err(tracking_error)?;
        if invept.0 {
            vmx.invept(self.eptp)?;
        }
        self.migration.tracker = Some(tracker);
        Ok(())
    }

    /// Pages written since the last harvest; they are write-protected again (INVEPT).
    pub fn harvest_dirty(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
    ) -> Result<DirtyBitmap, MachineError> {
        if self.migration.pml.is_some() {
            return self.harvest_pml(vmx, frames);
        }
        let tracker = self
            .migration
            .tracker
            .as_mut()
            .ok_or(MachineError::Migration(TrackingError::NotRam(0)))?;
        let (dirty, invept) = tracker
            .harvest(&self.ept, &mut FrameTables(frames))
            .map_err(tracking_error)?;
        if invept.0 {
            vmx.invept(self.eptp)?;
        }
        Ok(dirty)
    }

    /// Ends dirty tracking: RAM is writable again (INVEPT to spare spurious faults).
    pub fn stop_dirty_tracking(&mut self, vmx: &mut VmxOn, frames: &mut impl FrameSource) {
        // Nothing charges a dirty-rate limit without tracking.
        self.migration.dirty_limit = None;
        self.stop_pml(vmx, frames);
        if let Some(tracker) = self.migration.tracker.take() {
            if let Err(e) = tracker.stop(&self.ept, &mut FrameTables(frames)) {
                log::error!("vm {}: ending dirty tracking: {e}", self.name);
            }
            if let Err(e) = vmx.invept(self.eptp) {
                log::error!("vm {}: INVEPT after dirty tracking: {e}", self.name);
            }
        }
    }

    /// Whether dirty tracking is on.
    pub fn is_tracking_dirty(&self) -> bool {
        self.migration.tracker.is_some() || self.migration.pml.is_some()
    }

    /// The `DirtyWrite` exit: record the page and make it writable; the guest retries the
    /// write. Without tracking, a write fault on RAM is a hypervisor bug: crash the VM.
    pub(super) fn on_dirty_write(
        &mut self,
        frames: &mut impl FrameSource,
        gpa: u64,
    ) -> Result<(), CrashReason> {
        let unhandled = CrashReason::Unhandled {
            reason: crate::vmx::exit::reason::EPT_VIOLATION,
            qualification: gpa,
        };
        let Some(tracker) = self.migration.tracker.as_mut() else {
            return Err(unhandled);
        };
        match tracker.on_write_fault(&self.ept, &mut FrameTables(frames), gpa) {
            Ok(WriteFault::Recorded { .. }) => {
                if let Some(limiter) = self.migration.dirty_limit.as_mut() {
                    limiter.dirtied(1);
                }
                Ok(())
            }
            Ok(WriteFault::Spurious) => Ok(()),
            Err(_) => Err(unhandled),
        }
    }

    /// Takes `percent` of the vCPU's slices away (auto-converge); 0 = full speed.
    pub fn set_throttle(&mut self, percent: u8) {
        self.migration.throttle_percent = percent.min(99);
        self.migration.throttle_credit = 0;
    }

    /// Holds the vCPU to `pages_per_sec` newly dirtied pages per second (`None`: no limit),
    /// on a host TSC of `tsc_hz`.
    pub fn set_dirty_limit(&mut self, pages_per_sec: Option<u64>, tsc_hz: u64) {
        let now = crate::arch::tsc::rdtsc();
        DirtyRateLimiter::retarget(&mut self.migration.dirty_limit, pages_per_sec, tsc_hz, now);
    }

    /// Whether this slice is skipped by the throttle (one in `percent` of 100 on average)
    /// or by the dirty-rate limit (the vCPU spent its budget of dirty pages).
    pub(super) fn throttle_skips_slice(&mut self) -> bool {
        if let Some(limiter) = self.migration.dirty_limit.as_mut()
            && !limiter.may_run(crate::arch::tsc::rdtsc())
        {
            return true;
        }
        let h = &mut self.migration;
        if h.throttle_percent == 0 {
            return false;
        }
        h.throttle_credit += u32::from(100 - h.throttle_percent);
        if h.throttle_credit >= 100 {
            h.throttle_credit -= 100;
            false
        } else {
            true
        }
    }

    /// Copies guest RAM at `gpa` into `out`.
    pub fn read_ram(
        &self,
        frames: &impl FrameSource,
        gpa: u64,
        out: &mut [u8],
    ) -> Result<(), GuestRamError> {
        self.ram.read(frames, gpa, out)
    }

    /// The guest page at `gpa`, to receive an incoming page in place (the machine must not
    /// run meanwhile: an incoming machine never ran before its commit).
    pub fn ram_page_mut(&mut self, frames: &impl FrameSource, gpa: u64) -> Option<&mut [u8]> {
        self.ram.page_mut(frames, gpa)
    }

    /// The COM1 UART's state.
    pub fn uart_state(&self) -> Vec<u8> {
        self.uart.save_state()
    }

    /// The guest's console line in progress (bytes since the last newline).
    pub fn console_line(&mut self) -> Vec<u8> {
        self.uart.sink_mut().pending().to_vec()
    }

    /// Continues a console line begun on the source host.
    pub fn load_console_line(&mut self, bytes: &[u8]) {
        self.uart.sink_mut().preload(bytes);
    }

    /// Restores the COM1 UART's state.
    pub fn load_uart_state(&mut self, bytes: &[u8]) -> Result<(), RestoreError> {
        self.uart.load_state(bytes)
    }
}
