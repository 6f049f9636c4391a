//! Dirty tracking by page-modification logging on this machine (SDM Vol. 3C §29.3.6), where
//! the CPU offers it: "enable PML" allowed in IA32_VMX_PROCBASED_CTLS2 (bit 17 of the
//! allowed-1 half, SDM Appendix A.3.3) and EPT accessed/dirty flags on in the EPTP.
//!
//! The log page is one frame whose physical address goes to the VMCS "PML address"; the
//! guest PML index starts at 511 and the CPU decrements it per logged page. A full log
//! exits with reason 62 ([`ExitAction::PmlFull`](crate::vm::exit_handler::ExitAction)),
//! which drains it. The bookkeeping is `crate::migration::dirty::PageModificationLog`.

use super::{Machine, MachineError};
use crate::arch::cpu::rdmsr;
use crate::migration::dirty::{PML_ENTRIES, PageModificationLog, TrackingError};
use crate::vm::console_out::LineOutput;
use crate::vm::exit_handler::CrashReason;
use crate::vmx::caps::msr;
use crate::vmx::error::VmxError;
use crate::vmx::frames::{FrameSource, FrameTables};
use crate::vmx::hw::VmxOn;
use crate::vmx::hw::vcpu::HwVcpu;
use crate::vmx::setup::controls::bits::PROC2_ENABLE_PML;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::{control, guest};
use migration_proto::dirty::DirtyBitmap;

/// EPTP bit 6: accessed/dirty flags enabled (SDM §25.6.11).
const EPTP_ACCESSED_DIRTY: u64 = 1 << 6;

/// A machine's PML state while tracking.
#[derive(Debug)]
pub struct PmlTracking {
    log_frame: u64,
    tracker: PageModificationLog,
}

/// Whether this CPU can log page modifications for a VM with `eptp`.
pub fn pml_available(vmx: &VmxOn, eptp: u64) -> bool {
    // SAFETY: IA32_VMX_PROCBASED_CTLS2 exists on every CPU whose primary controls allow
    // "activate secondary controls", which `VmxConfig` required before VMXON (EPT needs it).
    let ctls2 = unsafe { rdmsr(msr::PROCBASED_CTLS2) };
    vmx.config.ept.accessed_dirty
        && eptp & EPTP_ACCESSED_DIRTY != 0
        && (ctls2 >> 32) & u64::from(PROC2_ENABLE_PML) != 0
}

fn log_of(frames: &impl FrameSource, frame: u64) -> [u64; PML_ENTRIES] {
    let mut log = [0u64; PML_ENTRIES];
    // SAFETY: `frame` is the PML log frame this machine allocated and owns; the CPU writes
    // it only while the guest runs, and the guest is not running while the hypervisor is
    // here (single core, between VM exits). `phys_to_virt` reaches the whole 4 KiB frame.
    unsafe {
        core::ptr::copy_nonoverlapping(
            frames.phys_to_virt(frame).cast::<u64>(),
            log.as_mut_ptr(),
            PML_ENTRIES,
        );
    }
    log
}

fn set_pml(vcpu: &mut HwVcpu, vmx: &mut VmxOn, frame: Option<u64>) -> Result<(), VmxError> {
    vcpu.with_vmcs(vmx, |vmcs, _| {
        let secondary = vmcs.read32(control::SECONDARY_PROC_BASED)?;
        match frame {
            Some(frame) => {
                vmcs.write64(control::PML_ADDRESS, frame)?;
                vmcs.write16(guest::PML_INDEX, crate::migration::dirty::PML_INDEX_RESET)?;
                vmcs.write32(control::SECONDARY_PROC_BASED, secondary | PROC2_ENABLE_PML)
            }
            None => vmcs.write32(control::SECONDARY_PROC_BASED, secondary & !PROC2_ENABLE_PML),
        }
    })
}

fn pml_error(e: TrackingError) -> MachineError {
    MachineError::Migration(e)
}

impl<O: LineOutput> Machine<O> {
    /// Starts PML tracking; `Err(Unsupported)` when the CPU cannot.
    pub(super) fn start_pml(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
    ) -> Result<PmlTracking, MachineError> {
        if !pml_available(vmx, self.eptp) {
            return Err(pml_error(TrackingError::Unsupported("PML")));
        }
        let vcpu = self
            .vcpu
            .as_mut()
            .ok_or(pml_error(TrackingError::Unsupported("PML without a vCPU")))?;
        let log_frame = frames
            .allocate_zeroed()
            .ok_or(pml_error(TrackingError::Unsupported(
                "PML: no frame for the log",
            )))?;
        let started =
            PageModificationLog::start(&self.ept, &mut FrameTables(frames), self.ram.size());
        let (tracker, _) = match started {
            Ok(t) => t,
            Err(e) => {
                frames.free(log_frame);
                return Err(pml_error(e));
            }
        };
        if let Err(e) = set_pml(vcpu, vmx, Some(log_frame)).and_then(|()| vmx.invept(self.eptp)) {
            frames.free(log_frame);
            return Err(e.into());
        }
        Ok(PmlTracking { log_frame, tracker })
    }

    /// The "page-modification log full" exit: drain the log, reset the index.
    pub(super) fn on_pml_full(
        &mut self,
        vmx: &mut VmxOn,
        frames: &impl FrameSource,
        vcpu: &mut HwVcpu,
    ) -> Result<(), CrashReason> {
        let crash = CrashReason::Unhandled {
            reason: crate::vmx::exit::reason::PML_FULL,
            qualification: 0,
        };
        let Some(pml) = self.migration.pml.as_mut() else {
            return Err(crash);
        };
        let log = log_of(frames, pml.log_frame);
        let tracker = &mut pml.tracker;
        if let Some(limiter) = self.migration.dirty_limit.as_mut() {
            // The log holds this many newly dirtied pages (SDM Vol. 3C 29.3.6).
            limiter.dirtied(PML_ENTRIES as u64);
        }
        vcpu.with_vmcs(vmx, |vmcs, _| {
            let index = vmcs.read16(guest::PML_INDEX)?;
            match tracker.on_log_full(&log, index) {
                Ok(reset) => vmcs.write16(guest::PML_INDEX, reset).map(|()| true),
                Err(_) => Ok(false),
            }
        })
        .ok()
        .filter(|ok| *ok)
        .map(|_| ())
        .ok_or(crash)
    }

    /// Harvest under PML: log entries plus EPT dirty flags (cleared, INVEPT).
    pub(super) fn harvest_pml(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
    ) -> Result<DirtyBitmap, MachineError> {
        let (Some(pml), Some(vcpu)) = (self.migration.pml.as_mut(), self.vcpu.as_mut()) else {
            return Err(pml_error(TrackingError::Unsupported("PML not started")));
        };
        let log = log_of(frames, pml.log_frame);
        let index = vcpu.with_vmcs(vmx, |vmcs, _| vmcs.read16(guest::PML_INDEX))?;
        let (dirty, reset, _) = pml
            .tracker
            .harvest(&self.ept, &mut FrameTables(frames), &log, index)
            .map_err(pml_error)?;
        vcpu.with_vmcs(vmx, |vmcs, _| vmcs.write16(guest::PML_INDEX, reset))?;
        vmx.invept(self.eptp)?;
        Ok(dirty)
    }

    /// Ends PML tracking: logging off, the log frame freed.
    pub(super) fn stop_pml(&mut self, vmx: &mut VmxOn, frames: &mut impl FrameSource) {
        let Some(pml) = self.migration.pml.take() else {
            return;
        };
        if let Some(vcpu) = self.vcpu.as_mut()
            && let Err(e) = set_pml(vcpu, vmx, None)
        {
            log::error!("vm {}: disabling PML: {e}", self.name);
        }
        frames.free(pml.log_frame);
    }
}
