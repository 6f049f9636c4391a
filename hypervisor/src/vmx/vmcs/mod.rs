//! The typed VMCS layer: field encodings with their widths in the type, and the access
//! trait every VMCS user goes through.
//!
//! Why typed: a VMCS field has a fixed width (16, 32, 64 bits or natural width, encoded in
//! bits 14:13 of its encoding, SDM Vol. 3C Appendix B / §25.11.2), and writing the wrong
//! width or ignoring a failed access are the classic hypervisor bugs. Here a 16-bit field
//! can only be read as a `u16`, and every access returns `Result<_, VmxError>`.
//! The [`VmcsAccess`] trait has the real VMREAD/VMWRITE implementation on bare metal
//! (`vmx::hw`) and a map-backed fake in host tests, so the VMCS setup code is host-tested.

pub mod fields;

use super::error::VmxError;

/// A 16-bit VMCS field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field16(pub u32);
/// A 32-bit VMCS field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field32(pub u32);
/// A 64-bit VMCS field (full access: the encoding's bit 0 is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field64(pub u32);
/// A natural-width VMCS field (64 bits on x86-64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldNatural(pub u32);

/// Width class of an encoding (bits 14:13, SDM Appendix B): 0 = 16-bit, 1 = 64-bit,
/// 2 = 32-bit, 3 = natural width.
pub fn encoding_width(encoding: u32) -> u32 {
    (encoding >> 13) & 0b11
}

/// Raw and typed VMCS access. Implementors provide `read_raw`/`write_raw`; the typed
/// accessors narrow values to the field's width.
pub trait VmcsAccess {
    /// VMREAD of `encoding`.
    fn read_raw(&self, encoding: u32) -> Result<u64, VmxError>;
    /// VMWRITE of `value` to `encoding`.
    fn write_raw(&mut self, encoding: u32, value: u64) -> Result<(), VmxError>;

    /// Read a 16-bit field.
    fn read16(&self, field: Field16) -> Result<u16, VmxError> {
        let v = self.read_raw(field.0)?;
        u16::try_from(v).map_err(|_| VmxError::FieldWidth(field.0))
    }
    /// Read a 32-bit field.
    fn read32(&self, field: Field32) -> Result<u32, VmxError> {
        let v = self.read_raw(field.0)?;
        u32::try_from(v).map_err(|_| VmxError::FieldWidth(field.0))
    }
    /// Read a 64-bit field.
    fn read64(&self, field: Field64) -> Result<u64, VmxError> {
        self.read_raw(field.0)
    }
    /// Read a natural-width field.
    fn read_natural(&self, field: FieldNatural) -> Result<u64, VmxError> {
        self.read_raw(field.0)
    }
    /// Write a 16-bit field.
    fn write16(&mut self, field: Field16, value: u16) -> Result<(), VmxError> {
        self.write_raw(field.0, value.into())
    }
    /// Write a 32-bit field.
    fn write32(&mut self, field: Field32, value: u32) -> Result<(), VmxError> {
        self.write_raw(field.0, value.into())
    }
    /// Write a 64-bit field.
    fn write64(&mut self, field: Field64, value: u64) -> Result<(), VmxError> {
        self.write_raw(field.0, value)
    }
    /// Write a natural-width field.
    fn write_natural(&mut self, field: FieldNatural, value: u64) -> Result<(), VmxError> {
        self.write_raw(field.0, value)
    }
}

/// A VMCS in memory for host tests: rejects unknown encodings like a CPU would
/// (VM-instruction error 12) and read-only fields on write (error 13).
#[cfg(test)]
pub mod fake {
    use alloc::collections::BTreeMap;

    use super::VmcsAccess;
    use crate::vmx::error::{InstructionError, VmxError, VmxInstruction};

    /// Map-backed VMCS.
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    pub struct FakeVmcs {
        /// Field values written so far.
        pub fields: BTreeMap<u32, u64>,
    }

    impl FakeVmcs {
        /// The value of a written field.
        pub fn get(&self, encoding: u32) -> Option<u64> {
            self.fields.get(&encoding).copied()
        }
    }

    fn known(encoding: u32) -> bool {
        super::fields::ALL.contains(&encoding)
    }

    impl VmcsAccess for FakeVmcs {
        fn read_raw(&self, encoding: u32) -> Result<u64, VmxError> {
            if !known(encoding) {
                return Err(VmxError::FailValid(
                    VmxInstruction::Vmread(encoding),
                    InstructionError(12),
                ));
            }
            Ok(self.fields.get(&encoding).copied().unwrap_or(0))
        }

        fn write_raw(&mut self, encoding: u32, value: u64) -> Result<(), VmxError> {
            let error = if !known(encoding) {
                Some(12)
            } else if (encoding >> 10) & 0b11 == 1 {
                // Type bits 11:10 = 1: read-only VM-exit information fields.
                Some(13)
            } else {
                None
            };
            if let Some(e) = error {
                return Err(VmxError::FailValid(
                    VmxInstruction::Vmwrite(encoding),
                    InstructionError(e),
                ));
            }
            self.fields.insert(encoding, value);
            Ok(())
        }
    }
}
