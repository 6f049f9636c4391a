//! CPU identification, MSRs, control registers and halting.

use alloc::string::String;

use raw_cpuid::CpuId;
use x86_64::registers::model_specific::Msr;

use crate::vmx::caps::msr::FEATURE_CONTROL;
use crate::vmx::caps::report::{FeatureControl, VmxCapabilities, VmxStatus};

/// Reads a model-specific register (the one RDMSR of the hypervisor: boot probes, VMX
/// setup and the vCPU switch all come here).
///
/// # Safety
/// `msr` must exist on this CPU (reading an absent MSR raises #GP) and reading it must have
/// no side effect the caller has not accounted for.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    // SAFETY: the caller guarantees the MSR exists and that reading it is harmless.
    unsafe { Msr::new(msr).read() }
}

/// Writes a model-specific register (the one WRMSR of the hypervisor).
///
/// # Safety
/// `msr` must exist and `value` must be valid for it; the caller knows the effect.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: delegated to the caller (see the function docs).
    unsafe { Msr::new(msr).write(value) }
}

/// What `info` prints about the processor.
#[derive(Clone, Debug)]
pub struct CpuInfo {
    pub vendor: String,
    pub brand: String,
    pub family: u8,
    pub model: u8,
    pub stepping: u8,
    /// CPUID.1:ECX bit 31: we run under another hypervisor (or an emulator).
    pub hypervisor_present: bool,
}

/// Identifies the boot processor.
pub fn identify() -> CpuInfo {
    let cpuid = CpuId::new();
    let vendor = cpuid
        .get_vendor_info()
        .map(|v| String::from(v.as_str()))
        .unwrap_or_default();
    let brand = cpuid
        .get_processor_brand_string()
        .map(|b| String::from(b.as_str().trim()))
        .unwrap_or_default();
    let features = cpuid.get_feature_info();
    CpuInfo {
        vendor,
        brand,
        family: features.as_ref().map_or(0, |f| f.family_id()),
        model: features.as_ref().map_or(0, |f| f.model_id()),
        stepping: features.as_ref().map_or(0, |f| f.stepping_id()),
        hypervisor_present: features.as_ref().is_some_and(|f| f.has_hypervisor()),
    }
}

/// Probes VT-x: CPUID.1:ECX.VMX[bit 5] (SDM Vol. 3C §24.6 "Discovering Support for VMX"),
/// then IA32_FEATURE_CONTROL (§24.7) and the capability MSRs (Appendix A).
pub fn vmx_status() -> VmxStatus {
    let has_vmx = CpuId::new().get_feature_info().is_some_and(|f| f.has_vmx());
    if !has_vmx {
        return VmxStatus::NotPresent;
    }
    // SAFETY: IA32_FEATURE_CONTROL exists on every CPU that reports VMX (SDM Vol. 3C §24.7).
    let feature_control = FeatureControl::decode(unsafe { rdmsr(FEATURE_CONTROL) });
    if feature_control.forbids_vmx() {
        return VmxStatus::DisabledByFirmware;
    }
    // SAFETY: `probe` reads only MSRs that exist given CPUID.1:ECX.VMX = 1 and the values it
    // has already read (SDM Appendix A.1, A.3.3, A.10); see `VmxCapabilities::probe`.
    let caps = VmxCapabilities::probe(|msr| unsafe { rdmsr(msr) });
    VmxStatus::Available {
        caps,
        feature_control,
    }
}

/// Control registers, for crash dumps.
#[derive(Clone, Copy, Debug)]
pub struct ControlRegisters {
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
}

/// Reads CR0, CR2, CR3 and CR4.
pub fn control_registers() -> ControlRegisters {
    use x86_64::registers::control::{Cr0, Cr2, Cr3, Cr4};
    let (frame, flags) = Cr3::read_raw();
    ControlRegisters {
        cr0: Cr0::read_raw(),
        cr2: Cr2::read_raw(),
        cr3: frame.start_address().as_u64() | flags as u64,
        cr4: Cr4::read_raw(),
    }
}

/// Stops this CPU for good: interrupts off, `hlt` in a loop (an NMI would wake `hlt`).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// The current stack and frame pointers, for the panic dump.
pub fn stack_registers() -> (u64, u64) {
    let (rsp, rbp): (u64, u64);
    // SAFETY: copies two registers into outputs; no memory access, no flags changed.
    unsafe {
        core::arch::asm!("mov {}, rsp", "mov {}, rbp", out(reg) rsp, out(reg) rbp,
            options(nomem, nostack, preserves_flags));
    }
    (rsp, rbp)
}
