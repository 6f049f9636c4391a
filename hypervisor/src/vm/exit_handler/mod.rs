//! What the hypervisor does at each VM exit: the portable exit handlers.
//!
//! Every handler works on the current VMCS through [`VmcsAccess`] and on the guest GPRs, so
//! the whole policy (instruction emulation for CPUID/RDMSR/WRMSR/IN/OUT/MOV CR/XSETBV,
//! exception injection, what ends a slice, what stops a VM) is tested on the host with a
//! fake VMCS. Things that need the host CPU (CPUID values, TSC, XSETBV) come in through
//! [`HostCpu`]; things that need the VM's memory or devices come back as [`ExitAction`]s or
//! through [`PortBus`].

use super::cpu_model::FeatureMasks;
use super::cpuid::{APIC_TIMER_KHZ, CpuidResult, VcpuView, XCR0_OFFERED, guest_cpuid};
use super::mmio::MmioError;
use super::msr::index::IA32_TSC_ADJUST;
use super::msr::{MsrFile, MsrOutcome, xcr0_valid};
use crate::vmx::error::VmxError;
use crate::vmx::exit::{
    CrAccess, CrAccessKind, EntryFailure, InterruptionType, IoAccess, IoDirection, RawExit, VmExit,
    reason,
};
use crate::vmx::regs::{Gpr, GuestRegisters};
use crate::vmx::setup::controls::VmxConfig;
use crate::vmx::setup::controls::bits::{ENTRY_IA32E_MODE_GUEST, PROC_USE_TSC_OFFSETTING};
use crate::vmx::setup::cr::{guest_cr0_write, guest_cr4_write};
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::{control, guest};

/// Exception vectors injected by handlers.
pub mod vector {
    /// #UD.
    pub const INVALID_OPCODE: u8 = 6;
    /// #GP.
    pub const GENERAL_PROTECTION: u8 = 13;
}

/// Host CPU services the handlers need.
pub trait HostCpu {
    /// CPUID on the host.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult;
    /// The guest's current TSC (host TSC plus the VM's offset).
    fn guest_tsc(&self) -> u64;
    /// Load XCR0 with a value already validated against what the host supports.
    fn set_xcr0(&mut self, value: u64);
    /// The XCR0 bits the host supports (CPUID.(0xd,0):EAX/EDX).
    fn supported_xcr0(&self) -> u64;
    /// The guest's TSC moved by `delta` (wrapping): later [`Self::guest_tsc`] reads include it.
    fn move_guest_tsc(&mut self, delta: u64);
}

/// The VM's port-I/O devices.
pub trait PortBus {
    /// A guest IN of `size` bytes; `None` if no device decodes the port (reads all ones).
    fn read(&mut self, port: u16, size: u8) -> Option<u32>;
    /// A guest OUT; returns false if no device decodes the port (the write is dropped).
    fn write(&mut self, port: u16, size: u8, value: u32) -> bool;
}

/// MSRs owned by a device model (the local APIC's IA32_APIC_BASE, x2APIC registers and
/// IA32_TSC_DEADLINE), asked before the MSR policy in [`MsrFile`].
pub trait DeviceMsrs {
    /// RDMSR at guest TSC `tsc`; `None` if no device owns `msr`.
    fn read_msr(&mut self, _msr: u32, _tsc: u64) -> Option<MsrOutcome> {
        None
    }
    /// WRMSR at guest TSC `tsc`; `None` if no device owns `msr`.
    fn write_msr(&mut self, _msr: u32, _value: u64, _tsc: u64) -> Option<MsrOutcome> {
        None
    }
}

/// Why a VM cannot continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashReason {
    /// The guest triple-faulted.
    TripleFault,
    /// VM entry failed while loading guest state.
    EntryFailure(EntryFailure),
    /// An EPT misconfiguration: a hypervisor bug in the guest's EPT.
    EptMisconfig(u64),
    /// An exit the hypervisor does not handle.
    Unhandled {
        /// Basic exit reason.
        reason: u16,
        /// Exit qualification.
        qualification: u64,
    },
    /// INS/OUTS are not emulated yet.
    StringIo(u16),
    /// An access to a device's MMIO window that could not be emulated.
    Mmio(MmioError),
}

impl core::fmt::Display for CrashReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TripleFault => write!(f, "triple fault"),
            Self::EntryFailure(e) => write!(f, "VM entry failed: {e:?}"),
            Self::EptMisconfig(gpa) => write!(f, "EPT misconfiguration at {gpa:#x}"),
            Self::Unhandled {
                reason: r,
                qualification,
            } => write!(
                f,
                "unhandled exit {r} ({}) qualification {qualification:#x}",
                reason::name(*r)
            ),
            Self::StringIo(port) => write!(f, "string I/O on port {port:#x} is not emulated"),
            Self::Mmio(e) => write!(f, "{e}"),
        }
    }
}

/// What the VM layer does after a handled exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitAction {
    /// Re-enter the guest.
    Continue,
    /// The slice is over (preemption timer, host interrupt): schedule something else.
    SliceEnd,
    /// The guest executed HLT: do not run it until an interrupt is pending for it.
    Halted,
    /// An access to guest-physical memory outside RAM (nothing is mapped there).
    Unmapped {
        /// The guest-physical address.
        gpa: u64,
        /// It was a write.
        write: bool,
    },
    /// A write to a write-protected RAM page (dirty tracking).
    DirtyWrite {
        /// The guest-physical address.
        gpa: u64,
    },
    /// The page-modification log is full (PML dirty tracking, SDM Vol. 3C §29.3.6).
    PmlFull,
    /// Stop the VM and mark it crashed.
    Crash(CrashReason),
}

/// Per-vCPU emulated state the handlers keep between exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuEmulation {
    /// Emulated MSRs.
    pub msrs: MsrFile,
    /// The guest's XCR0 (loaded into hardware before this vCPU runs).
    pub xcr0: u64,
    /// APIC ID reported by CPUID.
    pub apic_id: u8,
    /// The TSC frequency (kHz) CPUID's timing leaf reports: the VM's, set when it is
    /// created from the host's calibrated rate and carried along when it migrates.
    pub tsc_khz: u32,
    /// The feature bits of the VM's CPU model (`vm::cpu_model`); like the TSC rate, the
    /// VM's for its life.
    pub features: FeatureMasks,
}

impl Default for VcpuEmulation {
    fn default() -> Self {
        Self {
            msrs: MsrFile::default(),
            xcr0: 1,
            apic_id: 0,
            tsc_khz: 0,
            features: FeatureMasks::all(),
        }
    }
}

impl VcpuEmulation {
    /// The state of a vCPU at reset, showing `tsc_khz` as its TSC rate and `features` as
    /// its CPU model.
    pub fn at_reset(tsc_khz: u32, features: FeatureMasks) -> Self {
        Self {
            tsc_khz,
            features,
            ..Self::default()
        }
    }
}

/// Skip the instruction that exited and clear STI/MOV-SS blocking, as the instruction
/// would have (SDM Vol. 3C §27.3.1.5 interruptibility state; §28.2.4 instruction length).
pub fn advance_rip(vmcs: &mut impl VmcsAccess, raw: &RawExit) -> Result<(), VmxError> {
    let rip = vmcs.read_natural(guest::RIP)?;
    vmcs.write_natural(guest::RIP, rip.wrapping_add(u64::from(raw.instruction_len)))?;
    let state = vmcs.read32(guest::INTERRUPTIBILITY_STATE)?;
    if state & 0b11 != 0 {
        vmcs.write32(guest::INTERRUPTIBILITY_STATE, state & !0b11)?;
    }
    Ok(())
}

/// Inject a hardware exception on the next entry (SDM §25.8.3, VM-entry interruption
/// information: vector, type 3, error-code flag, valid bit).
pub fn inject_exception(
    vmcs: &mut impl VmcsAccess,
    vector: u8,
    error_code: Option<u32>,
) -> Result<(), VmxError> {
    let mut info = (1u32 << 31) | (3 << 8) | u32::from(vector);
    if let Some(code) = error_code {
        info |= 1 << 11;
        vmcs.write32(control::ENTRY_EXCEPTION_ERROR_CODE, code)?;
    }
    vmcs.write32(control::ENTRY_INTERRUPTION_INFO, info)
}

/// A GPR by exit-qualification number; RSP comes from the VMCS.
pub(crate) fn read_gpr(
    vmcs: &impl VmcsAccess,
    regs: &GuestRegisters,
    gpr: Gpr,
) -> Result<u64, VmxError> {
    match regs.get(gpr) {
        Some(v) => Ok(v),
        None => vmcs.read_natural(guest::RSP),
    }
}

/// Set a GPR by exit-qualification number; RSP goes to the VMCS.
pub(crate) fn write_gpr(
    vmcs: &mut impl VmcsAccess,
    regs: &mut GuestRegisters,
    gpr: Gpr,
    value: u64,
) -> Result<(), VmxError> {
    if regs.set(gpr, value) {
        Ok(())
    } else {
        vmcs.write_natural(guest::RSP, value)
    }
}

/// Handle one exit. `cfg` gives the CR fixed bits.
#[allow(clippy::too_many_arguments)]
pub fn handle_exit(
    exit: VmExit,
    raw: &RawExit,
    vmcs: &mut impl VmcsAccess,
    regs: &mut GuestRegisters,
    emu: &mut VcpuEmulation,
    cfg: &VmxConfig,
    host: &mut impl HostCpu,
    ports: &mut (impl PortBus + DeviceMsrs),
) -> Result<ExitAction, VmxError> {
    let gp = |vmcs: &mut _| inject_exception(vmcs, vector::GENERAL_PROTECTION, Some(0));
    let ud = |vmcs: &mut _| inject_exception(vmcs, vector::INVALID_OPCODE, None);
    match exit {
        VmExit::Cpuid { leaf, subleaf } => {
            let cr4_shadow = vmcs.read_natural(control::CR4_READ_SHADOW)?;
            let view = VcpuView {
                apic_id: emu.apic_id,
                cr4_osxsave: cr4_shadow & (1 << 18) != 0,
                tsc_khz: emu.tsc_khz,
                apic_timer_khz: APIC_TIMER_KHZ,
                features: emu.features,
            };
            let r = guest_cpuid(leaf, subleaf, host.cpuid(leaf, subleaf), view);
            regs.rax = r.eax.into();
            regs.rbx = r.ebx.into();
            regs.rcx = r.ecx.into();
            regs.rdx = r.edx.into();
            advance_rip(vmcs, raw)?;
        }
        VmExit::Hlt => {
            advance_rip(vmcs, raw)?;
            return Ok(ExitAction::Halted);
        }
        VmExit::Io(io) => return handle_io(io, raw, vmcs, regs, ports),
        VmExit::Rdmsr { msr } => match ports
            .read_msr(msr, host.guest_tsc())
            .unwrap_or_else(|| emu.msrs.read(msr, host.guest_tsc()))
        {
            MsrOutcome::Value(v) => {
                regs.set_edx_eax(v);
                advance_rip(vmcs, raw)?;
            }
            MsrOutcome::InjectGp => gp(vmcs)?,
        },
        // SDM Vol. 3B §18.17.3: a write of IA32_TSC_ADJUST moves the TSC by the same amount,
        // here the VMCS TSC offset (§26.3, "TSC offsetting"). Without TSC offsetting the
        // guest reads the host's TSC and the MSR policy refuses the write (#GP).
        VmExit::Wrmsr {
            msr: IA32_TSC_ADJUST,
            value,
        } if cfg.primary & PROC_USE_TSC_OFFSETTING != 0 => {
            let delta = emu.msrs.write_tsc_adjust(value);
            let offset = vmcs.read64(control::TSC_OFFSET)?.wrapping_add(delta);
            vmcs.write64(control::TSC_OFFSET, offset)?;
            host.move_guest_tsc(delta);
            advance_rip(vmcs, raw)?;
        }
        VmExit::Wrmsr { msr, value } => match ports
            .write_msr(msr, value, host.guest_tsc())
            .unwrap_or_else(|| emu.msrs.write(msr, value, guest_phys_bits(host)))
        {
            MsrOutcome::Value(_) => advance_rip(vmcs, raw)?,
            MsrOutcome::InjectGp => gp(vmcs)?,
        },
        VmExit::Xsetbv { xcr, value } => {
            let offered = XCR0_OFFERED & emu.features.xcr0() & host.supported_xcr0();
            if xcr == 0 && xcr0_valid(value, offered) {
                emu.xcr0 = value;
                host.set_xcr0(value);
                advance_rip(vmcs, raw)?;
            } else {
                gp(vmcs)?;
            }
        }
        VmExit::CrAccess(access) => {
            if !handle_cr(access, vmcs, regs, cfg)? {
                gp(vmcs)?;
            } else {
                advance_rip(vmcs, raw)?;
            }
        }
        VmExit::Vmcall => {
            // No hypercalls are defined yet: return "unknown hypercall" (-1) in RAX.
            regs.rax = u64::MAX;
            advance_rip(vmcs, raw)?;
        }
        VmExit::VmxInstruction { .. } => ud(vmcs)?,
        VmExit::Instruction { reason: r } => match r {
            reason::RDPMC => gp(vmcs)?,
            reason::MWAIT | reason::MONITOR => ud(vmcs)?,
            reason::RDTSC => {
                regs.set_edx_eax(host.guest_tsc());
                advance_rip(vmcs, raw)?;
            }
            // INVD/WBINVD/INVLPG/MOV DR/RDTSCP exit only if forced on: treat as no-ops.
            _ => advance_rip(vmcs, raw)?,
        },
        VmExit::Pause => advance_rip(vmcs, raw)?,
        VmExit::PreemptionTimer | VmExit::ExternalInterrupt { .. } => {
            return Ok(ExitAction::SliceEnd);
        }
        VmExit::InterruptWindow | VmExit::Init | VmExit::Sipi { .. } => {}
        VmExit::ExceptionOrNmi(event) => {
            if event.kind != InterruptionType::Nmi {
                // The exception bitmap is 0: a guest exception exit is not expected.
                return Ok(ExitAction::Crash(CrashReason::Unhandled {
                    reason: reason::EXCEPTION_OR_NMI,
                    qualification: raw.qualification,
                }));
            }
            // A host NMI arrived while the guest ran; the host has no NMI work.
        }
        VmExit::EptViolation(v) => {
            return Ok(if v.is_write_to_read_only() {
                ExitAction::DirtyWrite {
                    gpa: v.guest_physical,
                }
            } else {
                ExitAction::Unmapped {
                    gpa: v.guest_physical,
                    write: v.write,
                }
            });
        }
        VmExit::EptMisconfig { guest_physical } => {
            return Ok(ExitAction::Crash(CrashReason::EptMisconfig(guest_physical)));
        }
        VmExit::TripleFault => return Ok(ExitAction::Crash(CrashReason::TripleFault)),
        VmExit::EntryFailure(e) => return Ok(ExitAction::Crash(CrashReason::EntryFailure(e))),
        VmExit::PmlFull => return Ok(ExitAction::PmlFull),
        VmExit::Unhandled { .. } => {
            return Ok(ExitAction::Crash(CrashReason::Unhandled {
                reason: raw.basic_reason(),
                qualification: raw.qualification,
            }));
        }
    }
    Ok(ExitAction::Continue)
}

/// The guest's MAXPHYADDR: the host's, which CPUID 0x8000_0008 shows it unchanged.
fn guest_phys_bits(host: &impl HostCpu) -> u32 {
    match host.cpuid(0x8000_0008, 0).eax & 0xff {
        0 => 36, // no such leaf: the SDM's default for CPUs without it (§4.1.4)
        bits => bits,
    }
}

fn handle_io(
    io: IoAccess,
    raw: &RawExit,
    vmcs: &mut impl VmcsAccess,
    regs: &mut GuestRegisters,
    ports: &mut impl PortBus,
) -> Result<ExitAction, VmxError> {
    if io.string {
        return Ok(ExitAction::Crash(CrashReason::StringIo(io.port)));
    }
    let mask = u64::from(io.mask());
    match io.direction {
        IoDirection::Out => {
            // Masked to the access size (at most 32 bits).
            let value = (regs.rax & mask) as u32;
            ports.write(io.port, io.size, value);
        }
        IoDirection::In => {
            let value = u64::from(ports.read(io.port, io.size).unwrap_or(u32::MAX)) & mask;
            // IN EAX zero-extends into RAX; IN AL/AX keep the other bits.
            regs.rax = if io.size == 4 {
                value
            } else {
                (regs.rax & !mask) | value
            };
        }
    }
    advance_rip(vmcs, raw)?;
    Ok(ExitAction::Continue)
}

/// Emulate a CR access; returns false when the guest must get #GP.
fn handle_cr(
    access: CrAccess,
    vmcs: &mut impl VmcsAccess,
    regs: &mut GuestRegisters,
    cfg: &VmxConfig,
) -> Result<bool, VmxError> {
    match (access.cr, access.kind) {
        (0, CrAccessKind::MovToCr(gpr)) => {
            let value = read_gpr(vmcs, regs, gpr)?;
            write_cr0(vmcs, value, cfg)
        }
        (0, CrAccessKind::Clts) => {
            let shadow = vmcs.read_natural(control::CR0_READ_SHADOW)?;
            write_cr0(vmcs, shadow & !(1 << 3), cfg)
        }
        (0, CrAccessKind::Lmsw { source, .. }) => {
            // LMSW loads bits 3:0 but cannot clear PE (SDM Vol. 2A LMSW).
            let shadow = vmcs.read_natural(control::CR0_READ_SHADOW)?;
            let value = (shadow & !0xe) | u64::from(source & 0xf);
            write_cr0(vmcs, value, cfg)
        }
        (4, CrAccessKind::MovToCr(gpr)) => {
            let value = read_gpr(vmcs, regs, gpr)?;
            let efer = vmcs.read64(guest::IA32_EFER)?;
            match guest_cr4_write(value, efer, cfg.cr4_fixed0, cfg.cr4_fixed1) {
                Some((real, shadow)) => {
                    vmcs.write_natural(guest::CR4, real)?;
                    vmcs.write_natural(control::CR4_READ_SHADOW, shadow)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        }
        (3, CrAccessKind::MovToCr(gpr)) => {
            let value = read_gpr(vmcs, regs, gpr)?;
            vmcs.write_natural(guest::CR3, value)?;
            Ok(true)
        }
        (3, CrAccessKind::MovFromCr(gpr)) => {
            let value = vmcs.read_natural(guest::CR3)?;
            write_gpr(vmcs, regs, gpr, value)?;
            Ok(true)
        }
        // No local APIC model: the TPR reads as 0 and writes are dropped.
        (8, CrAccessKind::MovFromCr(gpr)) => {
            write_gpr(vmcs, regs, gpr, 0)?;
            Ok(true)
        }
        (8, CrAccessKind::MovToCr(_)) => Ok(true),
        _ => Ok(false),
    }
}

fn write_cr0(vmcs: &mut impl VmcsAccess, value: u64, cfg: &VmxConfig) -> Result<bool, VmxError> {
    let cr4_shadow = vmcs.read_natural(control::CR4_READ_SHADOW)?;
    let efer = vmcs.read64(guest::IA32_EFER)?;
    let Some(update) = guest_cr0_write(value, cr4_shadow, efer, cfg.cr0_fixed0, cfg.cr0_fixed1)
    else {
        return Ok(false);
    };
    vmcs.write_natural(guest::CR0, update.cr0)?;
    vmcs.write_natural(control::CR0_READ_SHADOW, update.shadow)?;
    vmcs.write64(guest::IA32_EFER, update.efer)?;
    let entry = vmcs.read32(control::ENTRY_CONTROLS)?;
    let entry = if update.ia32e_mode {
        entry | ENTRY_IA32E_MODE_GUEST
    } else {
        entry & !ENTRY_IA32E_MODE_GUEST
    };
    vmcs.write32(control::ENTRY_CONTROLS, entry)?;
    Ok(true)
}

#[cfg(test)]
mod tests;
