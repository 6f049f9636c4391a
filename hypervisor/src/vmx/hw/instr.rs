//! The raw VMX and CPU instructions, each returning VMX failures as values (SDM Vol. 3C
//! §31.2: CF = 1 is VMfailInvalid, ZF = 1 is VMfailValid with the error number in VMCS field
//! 0x4400, §31.4).

use core::arch::asm;

use crate::vmx::error::{InstructionError, VmxError, VmxInstruction};
use crate::vmx::vmcs::fields::exit_info;

/// Turn the CF/ZF outcome of a VMX instruction into a result. With ZF, the error number is
/// read from the current VMCS; if that read fails too, say so rather than invent a number.
fn outcome(cf: u8, zf: u8, instruction: VmxInstruction) -> Result<(), VmxError> {
    if cf != 0 {
        Err(VmxError::FailInvalid(instruction))
    } else if zf != 0 {
        // SAFETY: VMfailValid means there is a current VMCS, so VMREAD is valid here.
        match unsafe { vmread(exit_info::VM_INSTRUCTION_ERROR.0) } {
            Ok(number) => Err(VmxError::FailValid(
                instruction,
                InstructionError((number & 0xffff_ffff) as u32),
            )),
            Err(_) => Err(VmxError::FailValidUnreadable(instruction)),
        }
    } else {
        Ok(())
    }
}

/// VMXON with the region at `phys`.
///
/// # Safety
/// CR4.VMXE must be set, IA32_FEATURE_CONTROL must allow VMXON, `phys` must be a zeroed,
/// 4 KiB-aligned frame with the VMCS revision identifier in its first dword, owned by VMX
/// until VMXOFF.
pub unsafe fn vmxon(phys: u64) -> Result<(), VmxError> {
    let (cf, zf): (u8, u8);
    // SAFETY: per the function contract; the operand is a pointer to the physical address.
    unsafe {
        asm!("vmxon qword ptr [{p}]", "setc {cf}", "setz {zf}",
            p = in(reg) &phys, cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack));
    }
    outcome(cf, zf, VmxInstruction::Vmxon)
}

/// VMXOFF.
///
/// # Safety
/// The CPU must be in VMX root operation and no VMCS may be needed afterwards.
pub unsafe fn vmxoff() -> Result<(), VmxError> {
    let (cf, zf): (u8, u8);
    // SAFETY: per the function contract.
    unsafe {
        asm!("vmxoff", "setc {cf}", "setz {zf}",
            cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack));
    }
    outcome(cf, zf, VmxInstruction::Vmxoff)
}

/// VMCLEAR the VMCS at `phys` (flushes it to memory and makes it "clear").
///
/// # Safety
/// VMX root operation; `phys` is a VMCS region owned by the caller.
pub unsafe fn vmclear(phys: u64) -> Result<(), VmxError> {
    let (cf, zf): (u8, u8);
    // SAFETY: per the function contract.
    unsafe {
        asm!("vmclear qword ptr [{p}]", "setc {cf}", "setz {zf}",
            p = in(reg) &phys, cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack));
    }
    outcome(cf, zf, VmxInstruction::Vmclear)
}

/// VMPTRLD: make the VMCS at `phys` current.
///
/// # Safety
/// VMX root operation; `phys` is a VMCS region (revision identifier written) owned by the
/// caller.
pub unsafe fn vmptrld(phys: u64) -> Result<(), VmxError> {
    let (cf, zf): (u8, u8);
    // SAFETY: per the function contract.
    unsafe {
        asm!("vmptrld qword ptr [{p}]", "setc {cf}", "setz {zf}",
            p = in(reg) &phys, cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack));
    }
    outcome(cf, zf, VmxInstruction::Vmptrld)
}

/// VMREAD of `field` from the current VMCS.
///
/// # Safety
/// VMX root operation.
pub unsafe fn vmread(field: u32) -> Result<u64, VmxError> {
    let (value, cf, zf): (u64, u8, u8);
    // SAFETY: VMREAD only reads the current VMCS; with none, it reports VMfailInvalid.
    unsafe {
        asm!("vmread {v}, {f}", "setc {cf}", "setz {zf}",
            v = out(reg) value, f = in(reg) u64::from(field),
            cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack));
    }
    if cf != 0 {
        return Err(VmxError::FailInvalid(VmxInstruction::Vmread(field)));
    }
    if zf != 0 {
        // Reading the error field is a VMREAD too; avoid recursing on its own failure.
        let (number, cf2, zf2): (u64, u8, u8);
        // SAFETY: as above.
        unsafe {
            asm!("vmread {v}, {f}", "setc {cf}", "setz {zf}",
                v = out(reg) number, f = in(reg) u64::from(exit_info::VM_INSTRUCTION_ERROR.0),
                cf = out(reg_byte) cf2, zf = out(reg_byte) zf2, options(nostack));
        }
        return Err(if cf2 == 0 && zf2 == 0 {
            VmxError::FailValid(
                VmxInstruction::Vmread(field),
                InstructionError((number & 0xffff_ffff) as u32),
            )
        } else {
            VmxError::FailValidUnreadable(VmxInstruction::Vmread(field))
        });
    }
    Ok(value)
}

/// VMWRITE of `value` to `field` of the current VMCS.
///
/// # Safety
/// VMX root operation; the value must keep the VMCS consistent with the memory it points
/// to (bitmaps, EPT, host state) — VM entry trusts it.
pub unsafe fn vmwrite(field: u32, value: u64) -> Result<(), VmxError> {
    let (cf, zf): (u8, u8);
    // SAFETY: per the function contract.
    unsafe {
        asm!("vmwrite {f}, {v}", "setc {cf}", "setz {zf}",
            f = in(reg) u64::from(field), v = in(reg) value,
            cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack));
    }
    outcome(cf, zf, VmxInstruction::Vmwrite(field))
}

/// INVEPT types (SDM §31.3 "INVEPT").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum InveptKind {
    /// Mappings tagged with one EPTP.
    SingleContext = 1,
    /// All EPT-derived mappings.
    AllContext = 2,
}

/// INVEPT for `eptp`.
///
/// # Safety
/// VMX root operation; the kind must be supported (IA32_VMX_EPT_VPID_CAP bits 25/26).
pub unsafe fn invept(kind: InveptKind, eptp: u64) -> Result<(), VmxError> {
    let descriptor: [u64; 2] = [eptp, 0];
    let (cf, zf): (u8, u8);
    // SAFETY: per the function contract; the descriptor is a 128-bit memory operand.
    unsafe {
        asm!("invept {k}, xmmword ptr [{d}]", "setc {cf}", "setz {zf}",
            k = in(reg) kind as u64, d = in(reg) descriptor.as_ptr(),
            cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack));
    }
    outcome(cf, zf, VmxInstruction::Invept)
}

/// INVVPID types (SDM §31.3 "INVVPID").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum InvvpidKind {
    /// One linear address of one VPID.
    IndividualAddress = 0,
    /// All mappings of one VPID.
    SingleContext = 1,
    /// All VPIDs.
    AllContext = 2,
}

/// INVVPID for `vpid`.
///
/// # Safety
/// VMX root operation; the kind must be supported (IA32_VMX_EPT_VPID_CAP bits 40-43).
pub unsafe fn invvpid(kind: InvvpidKind, vpid: u16, linear: u64) -> Result<(), VmxError> {
    let descriptor: [u64; 2] = [u64::from(vpid), linear];
    let (cf, zf): (u8, u8);
    // SAFETY: per the function contract.
    unsafe {
        asm!("invvpid {k}, xmmword ptr [{d}]", "setc {cf}", "setz {zf}",
            k = in(reg) kind as u64, d = in(reg) descriptor.as_ptr(),
            cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack));
    }
    outcome(cf, zf, VmxInstruction::Invvpid)
}

/// Read CR0.
pub fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effects at CPL 0.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack)) };
    v
}

/// Read CR3.
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects at CPL 0.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

/// Read CR4.
pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects at CPL 0.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)) };
    v
}

/// Write CR0.
///
/// # Safety
/// The value must keep the hypervisor's paging and protection intact.
pub unsafe fn write_cr0(v: u64) {
    // SAFETY: per the function contract.
    unsafe { asm!("mov cr0, {}", in(reg) v, options(nostack)) };
}

/// Write CR4.
///
/// # Safety
/// The value must keep the hypervisor's paging and protection intact.
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: per the function contract.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack)) };
}

/// XSETBV: load XCR `index`.
///
/// # Safety
/// CR4.OSXSAVE must be set and the value valid for this CPU (else #GP).
pub unsafe fn xsetbv(index: u32, value: u64) {
    let (lo, hi) = ((value & 0xffff_ffff) as u32, (value >> 32) as u32);
    // SAFETY: per the function contract.
    unsafe { asm!("xsetbv", in("ecx") index, in("eax") lo, in("edx") hi, options(nomem, nostack)) };
}

/// XSAVE64 (or XSAVEOPT64 when `optimised`): store the state components in `mask` (and
/// enabled in XCR0) to `area` in the standard format (SDM Vol. 1 §13.7, §13.9).
///
/// # Safety
/// CR4.OSXSAVE set, CR0.TS clear (else #UD / #NM); `area` 64-byte aligned, writable and
/// at least as long as the standard format of XCR0 & `mask` (CPUID.(0xD,0):EBX); for
/// XSAVEOPT, CPUID.(0xD,1):EAX[0] set.
pub unsafe fn xsave(area: *mut u8, mask: u64, optimised: bool) {
    let (lo, hi) = ((mask & 0xffff_ffff) as u32, (mask >> 32) as u32);
    if optimised {
        // SAFETY: per the function contract.
        unsafe {
            asm!("xsaveopt64 [{}]", in(reg) area, in("eax") lo, in("edx") hi, options(nostack))
        };
    } else {
        // SAFETY: per the function contract.
        unsafe { asm!("xsave64 [{}]", in(reg) area, in("eax") lo, in("edx") hi, options(nostack)) };
    }
}

/// XRSTOR64: load the components in `mask` & XCR0 from the standard-format `area`, those
/// its XSTATE_BV marks initial to their initial state (SDM Vol. 1 §13.8).
///
/// # Safety
/// As for [`xsave`], and the area must pass the standard-form checks of §13.8.1 for the
/// current XCR0 (`vm::xsave::validate`), else #GP.
pub unsafe fn xrstor(area: *const u8, mask: u64) {
    let (lo, hi) = ((mask & 0xffff_ffff) as u32, (mask >> 32) as u32);
    // SAFETY: per the function contract.
    unsafe { asm!("xrstor64 [{}]", in(reg) area, in("eax") lo, in("edx") hi, options(nostack)) };
}

/// FXSAVE64: store the x87 and SSE state to the 512-byte legacy region at `area` (SDM
/// Vol. 2A FXSAVE; Vol. 1 §10.5.1). For hosts without XSAVE.
///
/// # Safety
/// CR0.TS and CR0.EM clear (else #NM / #UD); `area` 16-byte aligned and 512 writable bytes.
pub unsafe fn fxsave(area: *mut u8) {
    // SAFETY: per the function contract.
    unsafe { asm!("fxsave64 [{}]", in(reg) area, options(nostack)) };
}

/// FXRSTOR64: load the x87 and SSE state from the 512-byte legacy region at `area`.
///
/// # Safety
/// As for [`fxsave`], and MXCSR in the area must not set a bit the CPU's MXCSR_MASK
/// reserves (else #GP, SDM Vol. 2A FXRSTOR).
pub unsafe fn fxrstor(area: *const u8) {
    // SAFETY: per the function contract.
    unsafe { asm!("fxrstor64 [{}]", in(reg) area, options(nostack)) };
}

/// Read CR2 (the last page-fault linear address; VMX does not switch it, SDM Vol. 3C
/// §27.3, so it holds the guest's value after an exit).
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effect; the hypervisor runs at CPL 0.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Write CR2 (the guest's value before an entry).
///
/// # Safety
/// None beyond CPL 0 for the CPU; the caller must mean to lose the host's CR2 (the host
/// reads it only in its page-fault handler, which ends in a panic).
pub unsafe fn write_cr2(v: u64) {
    // SAFETY: per the function contract.
    unsafe { asm!("mov cr2, {}", in(reg) v, options(nomem, nostack, preserves_flags)) };
}

/// Segment selectors and descriptor-table registers of the running hypervisor.
pub struct SegmentState {
    /// CS, SS, DS, ES, FS, GS, TR.
    pub cs: u16,
    /// SS.
    pub ss: u16,
    /// DS.
    pub ds: u16,
    /// ES.
    pub es: u16,
    /// FS.
    pub fs: u16,
    /// GS.
    pub gs: u16,
    /// TR.
    pub tr: u16,
    /// GDTR base.
    pub gdt_base: u64,
    /// GDTR limit.
    pub gdt_limit: u16,
    /// IDTR base.
    pub idt_base: u64,
}

/// Read the segment registers, TR, GDTR and IDTR.
pub fn segment_state() -> SegmentState {
    let (cs, ss, ds, es, fs, gs, tr): (u16, u16, u16, u16, u16, u16, u16);
    let mut gdtr = [0u8; 10];
    let mut idtr = [0u8; 10];
    // SAFETY: these instructions only read CPU state; SGDT/SIDT store 10 bytes into our
    // buffers.
    unsafe {
        asm!("mov {0:x}, cs", "mov {1:x}, ss", "mov {2:x}, ds", "mov {3:x}, es",
            "mov {4:x}, fs", "mov {5:x}, gs", "str {6:x}",
            out(reg) cs, out(reg) ss, out(reg) ds, out(reg) es, out(reg) fs, out(reg) gs,
            out(reg) tr, options(nomem, nostack));
        asm!("sgdt [{}]", in(reg) gdtr.as_mut_ptr(), options(nostack));
        asm!("sidt [{}]", in(reg) idtr.as_mut_ptr(), options(nostack));
    }
    let base = |b: &[u8; 10]| u64::from_le_bytes([b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]]);
    SegmentState {
        cs,
        ss,
        ds,
        es,
        fs,
        gs,
        tr,
        gdt_base: base(&gdtr),
        gdt_limit: u16::from_le_bytes([gdtr[0], gdtr[1]]),
        idt_base: base(&idtr),
    }
}
