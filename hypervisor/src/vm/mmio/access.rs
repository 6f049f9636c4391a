//! One MMIO exit, end to end: fetch the instruction at RIP, decode it, perform the access
//! on the bus, write a loaded value back to its register, advance RIP.
//!
//! Why here and portable: every step reads the VMCS through [`VmcsAccess`], guest RAM
//! through [`GuestMemory`] and devices through [`MmioBus`], so the whole path runs on the
//! host against a fake VMCS, fake RAM and a test device.
//!
//! The exit is an EPT violation on a guest-physical address that no RAM covers (SDM Vol.
//! 3C §29.3.3.2; qualification bits in §28.2.1, Table 28-7). An EPT violation is
//! fault-like: RIP still points at the instruction (§28.1) and the VM-exit
//! instruction-length field is undefined for it (§28.2.5), so the decoded length is what
//! RIP advances by. The caller checks first that the bus covers the address.

use core::fmt;

use super::bus::MmioBus;
use super::decode::{
    CpuMode, DecodeError, Extension, MmioInstruction, MmioOperation, RegisterOperand, decode,
    size_mask,
};
use super::paging::{GuestPaging, PageWalkError, PagingMode, fetch_instruction};
use crate::vm::exit_handler::{advance_rip, read_gpr, write_gpr};
use crate::vm::virtio::guest_memory::GuestMemory;
use crate::vmx::error::VmxError;
use crate::vmx::exit::RawExit;
use crate::vmx::regs::{Gpr, GuestRegisters};
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::{exit_info, guest};

/// Why an MMIO access could not be emulated (the VM is stopped with this as its reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioError {
    /// The instruction at RIP could not be read.
    Fetch {
        /// Guest RIP.
        rip: u64,
        /// Why the walk failed.
        walk: PageWalkError,
    },
    /// The access was made while the CPU delivered an event (IDT-vectoring information
    /// valid, SDM Vol. 3C 28.2.4): the IDT, a stack or a TSS lies in a device window. No
    /// instruction made it, so there is nothing to emulate.
    EventDelivery {
        /// The IDT-vectoring information field.
        vectoring: u32,
    },
    /// The instruction is not one tern emulates.
    Decode {
        /// Guest RIP.
        rip: u64,
        /// Which bytes, and why.
        error: DecodeError,
    },
}

impl fmt::Display for MmioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fetch { rip, walk } => {
                write!(f, "MMIO instruction fetch at rip {rip:#x}: {walk}")
            }
            Self::Decode { rip, error } => write!(f, "{error} at rip {rip:#x}"),
            Self::EventDelivery { vectoring } => write!(
                f,
                "device memory touched while delivering an event (IDT-vectoring info {vectoring:#x})"
            ),
        }
    }
}

/// What the emulated instruction did (for counters and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioAccess {
    /// The decoded instruction.
    pub instruction: MmioInstruction,
    /// Guest-physical address of the access.
    pub gpa: u64,
    /// The value read or written (truncated to the access size).
    pub value: u64,
    /// A device decoded the address (false: read all ones / write dropped).
    pub claimed: bool,
}

/// Emulate the instruction that made an MMIO access at `gpa`. The outer `Result` is a
/// VMCS failure (a hypervisor problem); the inner one a guest that cannot be emulated.
pub fn emulate_mmio_access(
    vmcs: &mut impl VmcsAccess,
    regs: &mut GuestRegisters,
    mem: &impl GuestMemory,
    bus: &mut MmioBus<'_>,
    gpa: u64,
) -> Result<Result<MmioAccess, MmioError>, VmxError> {
    let vectoring = vmcs.read32(exit_info::IDT_VECTORING_INFO)?;
    if vectoring & (1 << 31) != 0 {
        return Ok(Err(MmioError::EventDelivery { vectoring }));
    }
    let cr0 = vmcs.read_natural(guest::CR0)?;
    let cr4 = vmcs.read_natural(guest::CR4)?;
    let efer = vmcs.read64(guest::IA32_EFER)?;
    let cs_ar = vmcs.read32(guest::CS_ACCESS_RIGHTS)?;
    let cs_base = vmcs.read_natural(guest::CS_BASE)?;
    let rip = vmcs.read_natural(guest::RIP)?;
    let paging = GuestPaging {
        mode: PagingMode::from_registers(cr0, cr4, efer),
        cr3: vmcs.read_natural(guest::CR3)?,
    };
    let mode = CpuMode::from_registers(cr0, efer, cs_ar);
    // The linear address of the instruction (SDM Vol. 3A §3.4: CS base + RIP; the CS
    // base is 0 in 64-bit mode, and addresses wrap at 4 GiB outside it).
    let linear = match mode {
        CpuMode::Bits64 => rip,
        _ => cs_base.wrapping_add(rip) & 0xffff_ffff,
    };
    let bytes = match fetch_instruction(mem, &paging, linear) {
        Ok(b) => b,
        Err(walk) => return Ok(Err(MmioError::Fetch { rip, walk })),
    };
    let instruction = match decode(bytes.as_slice(), mode) {
        Ok(i) => i,
        Err(error) => return Ok(Err(MmioError::Decode { rip, error })),
    };
    let size = instruction.size;
    let (value, claimed) = match instruction.operation {
        MmioOperation::Read {
            dest,
            dest_size,
            extension,
        } => {
            let loaded = bus.read(gpa, size);
            let value = loaded.unwrap_or(size_mask(size));
            let widened = match extension {
                Extension::None | Extension::Zero => value,
                Extension::Sign => sign_extend(value, size),
            } & size_mask(dest_size);
            write_register(vmcs, regs, dest, dest_size, widened)?;
            (value, loaded.is_some())
        }
        MmioOperation::WriteRegister { src } => {
            let value = read_register(vmcs, regs, src)? & size_mask(size);
            (value, bus.write(gpa, size, value))
        }
        MmioOperation::WriteImmediate { value } => (value, bus.write(gpa, size, value)),
    };
    let step = RawExit {
        instruction_len: u32::from(instruction.len),
        ..RawExit::default()
    };
    advance_rip(vmcs, &step)?;
    Ok(Ok(MmioAccess {
        instruction,
        gpa,
        value,
        claimed,
    }))
}

fn sign_extend(value: u64, size: u8) -> u64 {
    let shift = 64 - 8 * u32::from(size);
    (((value << shift) as i64) >> shift) as u64
}

fn read_register(
    vmcs: &impl VmcsAccess,
    regs: &GuestRegisters,
    operand: RegisterOperand,
) -> Result<u64, VmxError> {
    Ok(match operand {
        RegisterOperand::Low { number } => read_gpr(vmcs, regs, Gpr::from_number(number.into()))?,
        RegisterOperand::HighByte { number } => {
            read_gpr(vmcs, regs, Gpr::from_number(number.into()))? >> 8
        }
    })
}

/// Store `value` into a register as a MOV of `size` bytes does (SDM Vol. 1 §3.4.1.1:
/// 8- and 16-bit destinations keep the other bits, 32-bit ones zero-extend to 64).
fn write_register(
    vmcs: &mut impl VmcsAccess,
    regs: &mut GuestRegisters,
    operand: RegisterOperand,
    size: u8,
    value: u64,
) -> Result<(), VmxError> {
    let (number, shift) = match operand {
        RegisterOperand::Low { number } => (number, 0),
        RegisterOperand::HighByte { number } => (number, 8),
    };
    let gpr = Gpr::from_number(number.into());
    let old = read_gpr(vmcs, regs, gpr)?;
    let new = match size {
        4 | 8 => value,
        _ => {
            let mask = size_mask(size) << shift;
            (old & !mask) | ((value << shift) & mask)
        }
    };
    write_gpr(vmcs, regs, gpr, new)
}
