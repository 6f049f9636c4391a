//! The architectural state of a vCPU as bytes, for migration and snapshots: the guest-state
//! fields of the VMCS (SDM Vol. 3C §25.4), the GPRs, the emulated MSRs and XCR0, the MSRs
//! the vCPU switch carries (SYSCALL family), and the guest TSC.
//!
//! Encoding (little-endian), version 2: magic "VCPU" (4), version u16, reserved u16 = 0,
//! then `FIELD_COUNT + WORDS_AFTER_FIELDS` u64 words in the fixed order of [`GUEST_FIELDS`],
//! GPRs (RAX..R15 as in `GuestRegisters`), MTRR default type, MISC_ENABLE, XCR0, APIC ID,
//! the six switched MSRs, guest TSC, and the TSC rate the guest is shown in kHz (CPUID
//! 0x4000_0010, see `vm::cpuid`). Version 1 (from tern builds before the timing leaf) is
//! the same without the last word; it decodes with a rate of 0, "unknown", and the receiving
//! host shows its own rate. The length of each version is fixed, so decoding checks it
//! exactly; a
//! peer controls these bytes, so `decode` validates what the hypervisor itself relies on
//! (RFLAGS bit 1, XCR0, PAT, activity state) and everything else is left to the VM-entry
//! checks, which fail the entry — and stop the VM — rather than the hypervisor.

use alloc::vec::Vec;
use core::fmt;

use super::exit_handler::VcpuEmulation;
use super::msr::{SWITCHED_ON_VCPU_CHANGE, pat_valid, xcr0_valid};
use crate::vmx::error::VmxError;
use crate::vmx::regs::GuestRegisters;
use crate::vmx::setup::controls::bits::ENTRY_IA32E_MODE_GUEST;
use crate::vmx::setup::cr::EFER_LMA;
use crate::vmx::vmcs::VmcsAccess;
use crate::vmx::vmcs::fields::{control, guest};

/// Encoding version written by this build.
pub const VCPU_STATE_VERSION: u16 = 2;
/// The oldest encoding version this build still reads.
const OLDEST_READ_VERSION: u16 = 1;
const MAGIC: [u8; 4] = *b"VCPU";

/// VMCS fields saved, in encoding order: the guest-state area plus the CR0/CR4 read
/// shadows (what the guest believes its CR0/CR4 are).
pub const GUEST_FIELDS: [u32; 54] = [
    guest::ES_SELECTOR.0,
    guest::CS_SELECTOR.0,
    guest::SS_SELECTOR.0,
    guest::DS_SELECTOR.0,
    guest::FS_SELECTOR.0,
    guest::GS_SELECTOR.0,
    guest::LDTR_SELECTOR.0,
    guest::TR_SELECTOR.0,
    guest::IA32_DEBUGCTL.0,
    guest::IA32_PAT.0,
    guest::IA32_EFER.0,
    guest::ES_LIMIT.0,
    guest::CS_LIMIT.0,
    guest::SS_LIMIT.0,
    guest::DS_LIMIT.0,
    guest::FS_LIMIT.0,
    guest::GS_LIMIT.0,
    guest::LDTR_LIMIT.0,
    guest::TR_LIMIT.0,
    guest::GDTR_LIMIT.0,
    guest::IDTR_LIMIT.0,
    guest::ES_ACCESS_RIGHTS.0,
    guest::CS_ACCESS_RIGHTS.0,
    guest::SS_ACCESS_RIGHTS.0,
    guest::DS_ACCESS_RIGHTS.0,
    guest::FS_ACCESS_RIGHTS.0,
    guest::GS_ACCESS_RIGHTS.0,
    guest::LDTR_ACCESS_RIGHTS.0,
    guest::TR_ACCESS_RIGHTS.0,
    guest::INTERRUPTIBILITY_STATE.0,
    guest::ACTIVITY_STATE.0,
    guest::IA32_SYSENTER_CS.0,
    guest::CR0.0,
    guest::CR3.0,
    guest::CR4.0,
    guest::ES_BASE.0,
    guest::CS_BASE.0,
    guest::SS_BASE.0,
    guest::DS_BASE.0,
    guest::FS_BASE.0,
    guest::GS_BASE.0,
    guest::LDTR_BASE.0,
    guest::TR_BASE.0,
    guest::GDTR_BASE.0,
    guest::IDTR_BASE.0,
    guest::DR7.0,
    guest::RSP.0,
    guest::RIP.0,
    guest::RFLAGS.0,
    guest::PENDING_DEBUG_EXCEPTIONS.0,
    guest::IA32_SYSENTER_ESP.0,
    guest::IA32_SYSENTER_EIP.0,
    control::CR0_READ_SHADOW.0,
    control::CR4_READ_SHADOW.0,
];
const FIELD_COUNT: usize = GUEST_FIELDS.len();
const GPRS: usize = 15;
const SWITCHED: usize = SWITCHED_ON_VCPU_CHANGE.len();
/// Words after the VMCS fields: GPRs, MTRR def type, MISC_ENABLE, XCR0, APIC ID, switched
/// MSRs, guest TSC, guest TSC kHz.
const WORDS_AFTER_FIELDS: usize = GPRS + 4 + SWITCHED + 2;
/// Exact length of an encoded state (this build's version).
pub const ENCODED_LEN: usize = 8 + 8 * (FIELD_COUNT + WORDS_AFTER_FIELDS);
/// Exact length of a version-1 state (no TSC rate word).
const V1_ENCODED_LEN: usize = ENCODED_LEN - 8;

/// A vCPU's state outside the hypervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuState {
    fields: [u64; FIELD_COUNT],
    /// Guest GPRs.
    pub regs: GuestRegisters,
    /// Emulated MSRs, XCR0, APIC ID, the TSC rate shown to the guest (0 from a version-1
    /// state: unknown).
    pub emulation: VcpuEmulation,
    /// STAR, LSTAR, CSTAR, FMASK, KERNEL_GS_BASE, TSC_AUX.
    pub switched_msrs: [u64; SWITCHED],
    /// The guest's TSC when the state was captured.
    pub guest_tsc: u64,
}

/// Why an encoded vCPU state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuStateError {
    /// Wrong length for its version.
    Length {
        /// Bytes received.
        got: usize,
        /// Bytes that version has.
        expected: usize,
    },
    /// Does not start with "VCPU".
    BadMagic,
    /// Unknown encoding version.
    UnsupportedVersion(u16),
    /// A value the hypervisor relies on is invalid.
    Invalid(&'static str),
}

impl fmt::Display for VcpuStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { got, expected } => {
                write!(f, "vCPU state has {got} bytes, expected {expected}")
            }
            Self::BadMagic => write!(f, "vCPU state has a bad magic (expected \"VCPU\")"),
            Self::UnsupportedVersion(v) => write!(f, "vCPU state version {v} is not supported"),
            Self::Invalid(what) => write!(f, "vCPU state: invalid {what}"),
        }
    }
}

fn all_fields() -> impl Iterator<Item = u32> {
    GUEST_FIELDS.into_iter()
}

fn field_index(encoding: u32) -> usize {
    all_fields()
        .position(|f| f == encoding)
        .unwrap_or(usize::MAX)
}

impl VcpuState {
    /// Read the state of the current VMCS and the given software state.
    pub fn capture(
        vmcs: &impl VmcsAccess,
        regs: &GuestRegisters,
        emulation: &VcpuEmulation,
        switched_msrs: [u64; SWITCHED],
        guest_tsc: u64,
    ) -> Result<Self, VmxError> {
        let mut fields = [0u64; FIELD_COUNT];
        for (slot, encoding) in fields.iter_mut().zip(all_fields()) {
            *slot = vmcs.read_raw(encoding)?;
        }
        Ok(Self {
            fields,
            regs: *regs,
            emulation: *emulation,
            switched_msrs,
            guest_tsc,
        })
    }

    /// Write the VMCS fields (and the "IA-32e mode guest" entry control, which must match
    /// EFER.LMA, SDM §27.3.1.1) into the current VMCS.
    pub fn apply_to_vmcs(&self, vmcs: &mut impl VmcsAccess) -> Result<(), VmxError> {
        for (value, encoding) in self.fields.iter().zip(all_fields()) {
            vmcs.write_raw(encoding, *value)?;
        }
        let entry = vmcs.read32(control::ENTRY_CONTROLS)?;
        let entry = if self.field(guest::IA32_EFER.0) & EFER_LMA != 0 {
            entry | ENTRY_IA32E_MODE_GUEST
        } else {
            entry & !ENTRY_IA32E_MODE_GUEST
        };
        vmcs.write32(control::ENTRY_CONTROLS, entry)
    }

    /// The saved value of a VMCS field (0 for a field that is not saved).
    pub fn field(&self, encoding: u32) -> u64 {
        self.fields.get(field_index(encoding)).copied().unwrap_or(0)
    }

    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VCPU_STATE_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        let r = &self.regs;
        let gprs = [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12,
            r.r13, r.r14, r.r15,
        ];
        let e = &self.emulation;
        let emulation = [
            e.msrs.mtrr_def_type,
            e.msrs.misc_enable,
            e.xcr0,
            u64::from(e.apic_id),
        ];
        let tail = [self.guest_tsc, u64::from(e.tsc_khz)];
        for word in self
            .fields
            .iter()
            .chain(&gprs)
            .chain(&emulation)
            .chain(&self.switched_msrs)
            .chain(&tail)
        {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// Decode and validate.
    pub fn decode(bytes: &[u8]) -> Result<Self, VcpuStateError> {
        if bytes.len() < 8 {
            return Err(VcpuStateError::Length {
                got: bytes.len(),
                expected: ENCODED_LEN,
            });
        }
        if bytes[0..4] != MAGIC {
            return Err(VcpuStateError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        let expected = match version {
            VCPU_STATE_VERSION => ENCODED_LEN,
            OLDEST_READ_VERSION => V1_ENCODED_LEN,
            _ => return Err(VcpuStateError::UnsupportedVersion(version)),
        };
        if bytes.len() != expected {
            return Err(VcpuStateError::Length {
                got: bytes.len(),
                expected,
            });
        }
        if bytes[6..8] != [0, 0] {
            return Err(VcpuStateError::Invalid("reserved header bytes"));
        }
        let mut words = bytes[8..].chunks_exact(8).map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        });
        // The exact length was checked, so every `next` below yields a word (except the
        // rate word of version 1, which reads as 0).
        let mut next = || words.next().unwrap_or(0);
        let mut fields = [0u64; FIELD_COUNT];
        fields.iter_mut().for_each(|f| *f = next());
        let regs = GuestRegisters {
            rax: next(),
            rbx: next(),
            rcx: next(),
            rdx: next(),
            rsi: next(),
            rdi: next(),
            rbp: next(),
            r8: next(),
            r9: next(),
            r10: next(),
            r11: next(),
            r12: next(),
            r13: next(),
            r14: next(),
            r15: next(),
        };
        let mut emulation = VcpuEmulation::default();
        emulation.msrs.mtrr_def_type = next();
        emulation.msrs.misc_enable = next();
        emulation.xcr0 = next();
        let apic_id = next();
        emulation.apic_id =
            u8::try_from(apic_id).map_err(|_| VcpuStateError::Invalid("APIC ID"))?;
        let mut switched_msrs = [0u64; SWITCHED];
        switched_msrs.iter_mut().for_each(|m| *m = next());
        let guest_tsc = next();
        // Version 1 has no rate word: `next` yields 0, "unknown".
        emulation.tsc_khz =
            u32::try_from(next()).map_err(|_| VcpuStateError::Invalid("TSC frequency"))?;
        let state = Self {
            fields,
            regs,
            emulation,
            switched_msrs,
            guest_tsc,
        };
        state.validate()?;
        Ok(state)
    }

    fn validate(&self) -> Result<(), VcpuStateError> {
        let rflags = self.field(guest::RFLAGS.0);
        // Bit 1 reads as 1; bits 63:22, 15, 5 and 3 are reserved (SDM Vol. 1 §3.4.3).
        if rflags & 0x2 == 0 || rflags & !0x3f_7fd7 != 0 {
            return Err(VcpuStateError::Invalid("RFLAGS"));
        }
        if !pat_valid(self.field(guest::IA32_PAT.0)) {
            return Err(VcpuStateError::Invalid("IA32_PAT"));
        }
        if !xcr0_valid(self.emulation.xcr0, super::cpuid::XCR0_OFFERED) {
            return Err(VcpuStateError::Invalid("XCR0"));
        }
        // Activity states: 0 active, 1 HLT, 2 shutdown, 3 wait-for-SIPI (SDM §25.4.2).
        if self.field(guest::ACTIVITY_STATE.0) > 3 {
            return Err(VcpuStateError::Invalid("activity state"));
        }
        Ok(())
    }
}

pub mod entry_checks;
#[cfg(test)]
mod tests;
