//! Bare-metal VMX: entering VMX operation, VMCS regions, the entry/exit assembly and a
//! hardware vCPU. Everything that decides *what* to write lives in the portable modules
//! (`caps`, `setup`, `ept`, `exit`); this module only executes instructions.
//!
//! Ownership rules encoded in the types:
//! * [`VmxOn`] is the per-CPU proof of VMX root operation. Loading a VMCS needs `&mut VmxOn`,
//!   so at most one [`LoadedVmcs`] exists at a time and nobody can VMWRITE into a VMCS that
//!   is not current (VMPTRLD of another VMCS would silently redirect the writes).
//! * All VMX memory (VMXON region, VMCSs, bitmaps, EPT tables) comes from a
//!   [`FrameSource`](super::frames::FrameSource): never from statics, whose virtual addresses
//!   in the higher-half image are not physical addresses.

pub mod entry;
pub mod instr;
pub mod vcpu;

use super::caps::{self, CapsError};
use super::error::VmxError;
use super::frames::FrameSource;
use super::setup::controls::{CapabilityMsrs, VmxConfig};
use super::setup::cr::CR4_VMXE;
use super::vmcs::VmcsAccess;
use crate::arch::cpu::{rdmsr, wrmsr};
use instr::{InveptKind, InvvpidKind};

/// CPUID.1:ECX.VMX.
const CPUID1_ECX_VMX: u32 = 1 << 5;
/// CPUID.1:ECX.XSAVE.
const CPUID1_ECX_XSAVE: u32 = 1 << 26;
/// CR4.OSXSAVE: needed so the hypervisor can execute XSETBV for guests.
const CR4_OSXSAVE: u64 = 1 << 18;

/// This CPU is in VMX root operation.
pub struct VmxOn {
    region: u64,
    /// The control settings and capabilities in use on this CPU.
    pub config: VmxConfig,
    /// The CPU's current-VMCS pointer as this code last set it: only [`VmxOn::load`]
    /// (VMPTRLD) and [`Vmcs::clear`] (VMCLEAR, which invalidates the pointer when it names
    /// the current VMCS, SDM Vol. 3C 31.3) change it, and VM entries and exits keep it.
    /// Lets `load` skip a VMPTRLD of the VMCS that is already current: an exit's handling
    /// reaches the VMCS several times (entry plan, IDT vectoring, handlers).
    current: Option<u64>,
}

/// Enter VMX root operation on the current CPU (SDM Vol. 3C §24.7 "Enabling and Entering
/// VMX Operation"): check CPUID, read the capability MSRs, lock IA32_FEATURE_CONTROL with
/// VMX enabled if firmware left it unlocked, apply the CR0/CR4 fixed bits (A.7/A.8) with
/// CR4.VMXE, write the revision identifier into a fresh VMXON region (§25.11.5) and VMXON.
///
/// # Safety
/// Call once per CPU, at CPL 0, with the hypervisor's own CR0/CR4 compatible with the
/// fixed bits being forced (tern runs with PE, PG, NE set anyway).
pub unsafe fn enable(frames: &mut impl FrameSource) -> Result<VmxOn, VmxError> {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    if leaf1.ecx & CPUID1_ECX_VMX == 0 {
        return Err(CapsError::NoVmx.into());
    }
    // SAFETY: CPUID says VMX exists, so the architectural VMX MSRs exist; `read` only
    // reads the optional ones when the earlier ones say they exist.
    let msrs = CapabilityMsrs::read(|msr| unsafe { rdmsr(msr) })?;
    let config = VmxConfig::from_msrs(&msrs)?;
    // SAFETY: IA32_FEATURE_CONTROL exists on every CPU with VMX.
    let feature_control = unsafe { rdmsr(caps::msr::FEATURE_CONTROL) };
    if let Some(value) = caps::feature_control_update(feature_control)? {
        // SAFETY: the MSR is unlocked (checked by `feature_control_update`); setting lock
        // and VMX-outside-SMX is what firmware would have done.
        unsafe { wrmsr(caps::msr::FEATURE_CONTROL, value) };
    }
    let cr0 = caps::apply_fixed_bits(instr::read_cr0(), msrs.cr0_fixed0, msrs.cr0_fixed1);
    let mut cr4 = instr::read_cr4() | CR4_VMXE;
    if leaf1.ecx & CPUID1_ECX_XSAVE != 0 {
        cr4 |= CR4_OSXSAVE;
    }
    let cr4 = caps::apply_fixed_bits(cr4, msrs.cr4_fixed0, msrs.cr4_fixed1);
    caps::check_fixed_bits(0, cr0, msrs.cr0_fixed0, msrs.cr0_fixed1)?;
    caps::check_fixed_bits(4, cr4, msrs.cr4_fixed0, msrs.cr4_fixed1)?;
    // SAFETY: the fixed bits only add PE/NE/PG (already set in a 64-bit kernel) and VMXE /
    // OSXSAVE, none of which changes how the hypervisor's own code runs.
    unsafe {
        instr::write_cr0(cr0);
        instr::write_cr4(cr4);
    }
    let region = new_region(frames, config.basic.revision_id)?;
    // SAFETY: CR4.VMXE is set, feature control allows VMXON, the region is a fresh frame
    // with the revision identifier.
    if let Err(e) = unsafe { instr::vmxon(region) } {
        frames.free(region);
        return Err(e);
    }
    Ok(VmxOn {
        region,
        config,
        current: None,
    })
}

/// A zeroed frame with the VMCS revision identifier in bits 30:0 of its first dword
/// (SDM §25.2 for a VMCS, §25.11.5 for the VMXON region; bit 31 stays 0: no shadow VMCS).
fn new_region(frames: &mut impl FrameSource, revision_id: u32) -> Result<u64, VmxError> {
    let phys = frames.allocate_zeroed().ok_or(VmxError::OutOfMemory)?;
    // SAFETY: the frame is ours, zeroed and reachable through `phys_to_virt`
    // (FrameSource contract); the first 4 bytes are aligned.
    unsafe { (frames.phys_to_virt(phys) as *mut u32).write_volatile(revision_id & 0x7fff_ffff) };
    Ok(phys)
}

impl VmxOn {
    /// Leave VMX operation and give the VMXON region back. Every VMCS must have been
    /// cleared ([`Vmcs::clear`]) first.
    ///
    /// # Safety
    /// No guest may run on this CPU afterwards.
    pub unsafe fn disable(self, frames: &mut impl FrameSource) -> Result<(), VmxError> {
        // SAFETY: per the function contract.
        unsafe { instr::vmxoff()? };
        // SAFETY: clearing VMXE is allowed outside VMX operation.
        unsafe { instr::write_cr4(instr::read_cr4() & !CR4_VMXE) };
        frames.free(self.region);
        Ok(())
    }

    /// Make `vmcs` current and return the handle through which it is read and written.
    pub fn load<'a>(&'a mut self, vmcs: &'a mut Vmcs) -> Result<LoadedVmcs<'a>, VmxError> {
        if self.current != Some(vmcs.phys) {
            // Forget the old pointer first: a failed VMPTRLD leaves it unknown.
            self.current = None;
            // SAFETY: we are in VMX root operation (`self` exists) and the region is a
            // VMCS created by `Vmcs::new` with the right revision identifier.
            unsafe { instr::vmptrld(vmcs.phys)? };
            self.current = Some(vmcs.phys);
        }
        Ok(LoadedVmcs { vmx: self, vmcs })
    }

    /// Flush EPT-derived translations for `eptp` after its tables changed (SDM §29.4.3.1),
    /// single-context when the CPU has it, else all-context.
    pub fn invept(&mut self, eptp: u64) -> Result<(), VmxError> {
        let kind = if self.config.ept.invept_single_context {
            InveptKind::SingleContext
        } else {
            InveptKind::AllContext
        };
        // SAFETY: VMX root operation; the kind was checked against the capability MSR by
        // `EptCapabilities::decode`.
        unsafe { instr::invept(kind, eptp) }
    }

    /// Flush the translations tagged with `vpid` (when a VPID is reused for another VM).
    pub fn invvpid(&mut self, vpid: u16) -> Result<(), VmxError> {
        if !self.config.vpid {
            return Ok(());
        }
        let kind = if self.config.ept.invvpid_single_context {
            InvvpidKind::SingleContext
        } else {
            InvvpidKind::AllContext
        };
        // SAFETY: VMX root operation; VPIDs are enabled only with a supported INVVPID kind.
        unsafe { instr::invvpid(kind, vpid, 0) }
    }
}

/// A VMCS region.
pub struct Vmcs {
    phys: u64,
    launched: bool,
}

impl Vmcs {
    /// Allocate and VMCLEAR a new VMCS (SDM §25.11.3: a VMCS must be clear before its
    /// first VMLAUNCH).
    pub fn new(vmx: &VmxOn, frames: &mut impl FrameSource) -> Result<Self, VmxError> {
        let phys = new_region(frames, vmx.config.basic.revision_id)?;
        // SAFETY: VMX root operation (`vmx` exists); the region is ours.
        if let Err(e) = unsafe { instr::vmclear(phys) } {
            frames.free(phys);
            return Err(e);
        }
        Ok(Self {
            phys,
            launched: false,
        })
    }

    /// Physical address of the region.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// VMCLEAR: write the VMCS back to memory and reset its launch state (needed before it
    /// is freed or used on another CPU).
    pub fn clear(&mut self, vmx: &mut VmxOn) -> Result<(), VmxError> {
        if vmx.current == Some(self.phys) {
            vmx.current = None;
        }
        // SAFETY: VMX root operation; the region is ours.
        unsafe { instr::vmclear(self.phys)? };
        self.launched = false;
        Ok(())
    }

    /// Clear and free the region.
    pub fn destroy(
        mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
    ) -> Result<(), VmxError> {
        self.clear(vmx)?;
        frames.free(self.phys);
        Ok(())
    }
}

/// The current VMCS. Only one exists at a time per CPU (it borrows [`VmxOn`] mutably).
pub struct LoadedVmcs<'a> {
    #[allow(dead_code)]
    vmx: &'a mut VmxOn,
    vmcs: &'a mut Vmcs,
}

impl LoadedVmcs<'_> {
    /// Whether VMLAUNCH already succeeded on this VMCS (so the next entry is VMRESUME).
    pub fn launched(&self) -> bool {
        self.vmcs.launched
    }

    pub(crate) fn set_launched(&mut self) {
        self.vmcs.launched = true;
    }
}

impl VmcsAccess for LoadedVmcs<'_> {
    fn read_raw(&self, encoding: u32) -> Result<u64, VmxError> {
        // SAFETY: VMX root operation with this VMCS current (the guard's invariant).
        unsafe { instr::vmread(encoding) }
    }

    fn write_raw(&mut self, encoding: u32, value: u64) -> Result<(), VmxError> {
        // SAFETY: as above; what is written is the callers' business: the setup code writes
        // only addresses of frames it owns for the VMCS's lifetime.
        unsafe { instr::vmwrite(encoding, value) }
    }
}
