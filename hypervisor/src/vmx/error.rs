//! VMX instruction failures as values (SDM Vol. 3C §31.2 "Conventions": VMsucceed clears
//! CF and ZF; VMfailInvalid sets CF — there is no current VMCS to hold an error number;
//! VMfailValid sets ZF and stores the error number in the VM-instruction error field,
//! encoding 0x4400; §31.4 "VM Instruction Error Numbers").
//!
//! A failed VMREAD is never turned into a 0 and a failed VMWRITE is never ignored: each
//! becomes a [`VmxError`] naming the instruction, the field and the error number.

use core::fmt;

use super::caps::CapsError;
use super::setup::host::HostStateError;

/// A VM-instruction error number from field 0x4400 (SDM §31.4, Table 31-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstructionError(pub u32);

impl InstructionError {
    /// The SDM's description of the error number.
    pub fn description(self) -> &'static str {
        match self.0 {
            1 => "VMCALL executed in VMX root operation",
            2 => "VMCLEAR with invalid physical address",
            3 => "VMCLEAR with VMXON pointer",
            4 => "VMLAUNCH with non-clear VMCS",
            5 => "VMRESUME with non-launched VMCS",
            6 => "VMRESUME after VMXOFF",
            7 => "VM entry with invalid control field(s)",
            8 => "VM entry with invalid host-state field(s)",
            9 => "VMPTRLD with invalid physical address",
            10 => "VMPTRLD with VMXON pointer",
            11 => "VMPTRLD with incorrect VMCS revision identifier",
            12 => "VMREAD/VMWRITE from/to unsupported VMCS component",
            13 => "VMWRITE to read-only VMCS component",
            15 => "VMXON executed in VMX root operation",
            16 => "VM entry with invalid executive-VMCS pointer",
            17 => "VM entry with non-launched executive VMCS",
            18 => "VM entry with executive-VMCS pointer not VMXON pointer",
            19 => "VMCALL with non-clear VMCS",
            20 => "VMCALL with invalid VM-exit control fields",
            22 => "VMCALL with incorrect MSEG revision identifier",
            23 => "VMXOFF under dual-monitor treatment of SMIs and SMM",
            24 => "VMCALL with invalid SMM-monitor features",
            25 => "VM entry with invalid VM-execution control fields in executive VMCS",
            26 => "VM entry with events blocked by MOV SS",
            28 => "invalid operand to INVEPT/INVVPID",
            _ => "unknown VM-instruction error",
        }
    }
}

/// The VMX instruction that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmxInstruction {
    /// VMXON.
    Vmxon,
    /// VMXOFF.
    Vmxoff,
    /// VMCLEAR.
    Vmclear,
    /// VMPTRLD.
    Vmptrld,
    /// VMREAD of a field.
    Vmread(u32),
    /// VMWRITE of a field.
    Vmwrite(u32),
    /// VMLAUNCH.
    Vmlaunch,
    /// VMRESUME.
    Vmresume,
    /// INVEPT.
    Invept,
    /// INVVPID.
    Invvpid,
}

impl fmt::Display for VmxInstruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vmxon => write!(f, "VMXON"),
            Self::Vmxoff => write!(f, "VMXOFF"),
            Self::Vmclear => write!(f, "VMCLEAR"),
            Self::Vmptrld => write!(f, "VMPTRLD"),
            Self::Vmread(field) => write!(f, "VMREAD {field:#06x}"),
            Self::Vmwrite(field) => write!(f, "VMWRITE {field:#06x}"),
            Self::Vmlaunch => write!(f, "VMLAUNCH"),
            Self::Vmresume => write!(f, "VMRESUME"),
            Self::Invept => write!(f, "INVEPT"),
            Self::Invvpid => write!(f, "INVVPID"),
        }
    }
}

/// Everything that can go wrong in VMX operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmxError {
    /// VMfailInvalid (CF = 1): no current VMCS, or a bad VMXON/VMCS pointer.
    FailInvalid(VmxInstruction),
    /// VMfailValid (ZF = 1) with the VM-instruction error number.
    FailValid(VmxInstruction, InstructionError),
    /// VMfailValid, and reading the error number itself failed.
    FailValidUnreadable(VmxInstruction),
    /// The CPU or firmware does not allow what we need.
    Capability(CapsError),
    /// No frame for a VMXON region, VMCS, bitmap or EPT table.
    OutOfMemory,
    /// A VMCS field did not have the width its accessor expected (a bug in this crate).
    FieldWidth(u32),
    /// The host state violates the host-state checks.
    HostState(HostStateError),
}

impl From<HostStateError> for VmxError {
    fn from(e: HostStateError) -> Self {
        Self::HostState(e)
    }
}

impl From<CapsError> for VmxError {
    fn from(e: CapsError) -> Self {
        Self::Capability(e)
    }
}

impl fmt::Display for VmxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FailInvalid(i) => write!(f, "{i} failed (VMfailInvalid: no valid current VMCS)"),
            Self::FailValid(i, e) => write!(
                f,
                "{i} failed: VM-instruction error {} ({})",
                e.0,
                e.description()
            ),
            Self::FailValidUnreadable(i) => write!(
                f,
                "{i} failed (VMfailValid) and the VM-instruction error field is unreadable"
            ),
            Self::Capability(e) => write!(f, "{e}"),
            Self::OutOfMemory => write!(f, "out of frames for VMX structures"),
            Self::HostState(e) => write!(f, "invalid host state: {e}"),
            Self::FieldWidth(field) => {
                write!(f, "VMCS field {field:#06x} accessed with the wrong width")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn messages_name_instruction_field_and_error() {
        let e = VmxError::FailValid(VmxInstruction::Vmwrite(0x681e), InstructionError(12));
        assert_eq!(
            e.to_string(),
            "VMWRITE 0x681e failed: VM-instruction error 12 (VMREAD/VMWRITE from/to unsupported VMCS component)"
        );
        assert_eq!(
            VmxError::FailInvalid(VmxInstruction::Vmlaunch).to_string(),
            "VMLAUNCH failed (VMfailInvalid: no valid current VMCS)"
        );
        assert_eq!(
            InstructionError(7).description(),
            "VM entry with invalid control field(s)"
        );
        assert_eq!(
            InstructionError(99).description(),
            "unknown VM-instruction error"
        );
    }
}
