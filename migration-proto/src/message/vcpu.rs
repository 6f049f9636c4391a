//! Architectural state of one x86-64 vCPU running under VMX.
//!
//! This is what the hypervisor reads out of the VMCS guest-state area (Intel SDM Vol. 3C
//! 25.4 "Guest-State Area"), the MSR load/store areas and XSAVE, and writes back on the
//! destination. Segment access rights use the VMCS format (SDM 25.4.1, Table 25-2:
//! type/S/DPL/P in bits 7:0, AVL/L/D/G in 15:12, "unusable" in bit 16). Interruptibility and
//! activity use their VMCS encodings (SDM 25.4.2, Tables 25-3 and 25-4), the pending event
//! uses the VM-entry interruption-information types (SDM 25.8.3, Table 25-17).

use alloc::vec::Vec;

use crate::wire::{DecodeError, Reader, Writer};

/// Most MSRs carried per vCPU.
pub const MAX_VCPU_MSRS: usize = 256;
/// Largest XSAVE area (covers AVX-512 and AMX tile data with room to spare).
pub const MAX_XSAVE_LEN: usize = 64 * 1024;

/// A segment register including its hidden (descriptor cache) part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentRegister {
    /// Visible selector.
    pub selector: u16,
    /// Hidden base.
    pub base: u64,
    /// Hidden limit (byte granular, as in the VMCS).
    pub limit: u32,
    /// Hidden access rights in VMCS format; bits 31:17 and 11:8 are reserved and must be 0.
    pub access_rights: u32,
}

/// GDTR or IDTR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescriptorTable {
    /// Linear base.
    pub base: u64,
    /// Limit.
    pub limit: u16,
}

/// Kind of a pending event (VM-entry interruption type, SDM Table 25-17).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    /// External interrupt.
    ExternalInterrupt = 0,
    /// Non-maskable interrupt.
    Nmi = 2,
    /// Hardware exception.
    HardwareException = 3,
    /// Software interrupt (INT n).
    SoftwareInterrupt = 4,
    /// Privileged software exception (INT1).
    PrivilegedSoftwareException = 5,
    /// Software exception (INT3, INTO).
    SoftwareException = 6,
}

impl EventKind {
    /// The kind with VM-entry interruption type `code` (SDM Table 25-17); 1 and 7 are not
    /// events a vCPU state carries.
    pub fn from_code(code: u8) -> Result<Self, DecodeError> {
        Ok(match code {
            0 => EventKind::ExternalInterrupt,
            2 => EventKind::Nmi,
            3 => EventKind::HardwareException,
            4 => EventKind::SoftwareInterrupt,
            5 => EventKind::PrivilegedSoftwareException,
            6 => EventKind::SoftwareException,
            v => {
                return Err(DecodeError::InvalidValue {
                    field: "vcpu.event_kind",
                    value: v.into(),
                });
            }
        })
    }
}

/// An event that was being delivered or was due for injection when the vCPU stopped
/// (IDT-vectoring information or a pending injection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingEvent {
    /// Vector.
    pub vector: u8,
    /// Kind.
    pub kind: EventKind,
    /// Error code, for exceptions that push one.
    pub error_code: Option<u32>,
    /// Instruction length for software interrupts/exceptions.
    pub instruction_len: u32,
}

/// One MSR value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrValue {
    /// Index.
    pub index: u32,
    /// Value.
    pub value: u64,
}

/// Complete architectural state of one vCPU.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VcpuState {
    /// vCPU number (0-based, below the VM's vCPU count).
    pub vcpu_index: u32,
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15 (instruction-encoding order).
    pub gprs: [u64; 16],
    /// RIP.
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// ES, CS, SS, DS, FS, GS, LDTR, TR.
    pub segments: [SegmentRegister; 8],
    /// GDTR.
    pub gdtr: DescriptorTable,
    /// IDTR.
    pub idtr: DescriptorTable,
    /// CR0.
    pub cr0: u64,
    /// CR2.
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8 (TPR).
    pub cr8: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// XCR0.
    pub xcr0: u64,
    /// PAE PDPTEs held in the VMCS when the guest uses PAE paging under EPT (SDM 25.4.2).
    pub pdptes: [u64; 4],
    /// DR0..DR3.
    pub dr0_3: [u64; 4],
    /// DR6.
    pub dr6: u64,
    /// DR7.
    pub dr7: u64,
    /// Guest interruptibility state (STI/MOV-SS/SMI/NMI blocking, bits 4:0).
    pub interruptibility: u32,
    /// Activity state: 0 active, 1 HLT, 2 shutdown, 3 wait-for-SIPI.
    pub activity_state: u32,
    /// Pending debug exceptions field.
    pub pending_debug_exceptions: u64,
    /// Event in delivery or due for injection.
    pub pending_event: Option<PendingEvent>,
    /// An NMI is pending (not yet delivered).
    pub nmi_pending: bool,
    /// Guest MSRs (SYSENTER_*, STAR/LSTAR/CSTAR/FMASK, KERNEL_GS_BASE, PAT, TSC, TSC_AUX,
    /// APIC_BASE, SPEC_CTRL, ...), no index twice.
    pub msrs: Vec<MsrValue>,
    /// XSAVE area in the standard (non-compacted) format, as XSAVE wrote it.
    pub xsave: Vec<u8>,
}

impl VcpuState {
    /// Checks the field rules the decoder enforces.
    pub fn validate(&self) -> Result<(), DecodeError> {
        for s in &self.segments {
            if s.access_rights & 0xfffe_0f00 != 0 {
                return Err(DecodeError::InvalidValue {
                    field: "vcpu.access_rights",
                    value: s.access_rights.into(),
                });
            }
        }
        if self.interruptibility & !0x1f != 0 {
            return Err(DecodeError::InvalidValue {
                field: "vcpu.interruptibility",
                value: self.interruptibility.into(),
            });
        }
        if self.activity_state > 3 {
            return Err(DecodeError::InvalidValue {
                field: "vcpu.activity_state",
                value: self.activity_state.into(),
            });
        }
        if self.msrs.len() > MAX_VCPU_MSRS {
            return Err(DecodeError::TooLong {
                field: "vcpu.msrs",
                len: self.msrs.len(),
                max: MAX_VCPU_MSRS,
            });
        }
        for (i, m) in self.msrs.iter().enumerate() {
            if self.msrs[..i].iter().any(|o| o.index == m.index) {
                return Err(DecodeError::Duplicate {
                    field: "vcpu.msrs",
                    key: m.index.into(),
                });
            }
        }
        if self.xsave.len() > MAX_XSAVE_LEN {
            return Err(DecodeError::TooLong {
                field: "vcpu.xsave",
                len: self.xsave.len(),
                max: MAX_XSAVE_LEN,
            });
        }
        Ok(())
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.vcpu_index);
        for v in self.gprs {
            w.u64(v);
        }
        w.u64(self.rip);
        w.u64(self.rflags);
        for s in &self.segments {
            w.u16(s.selector);
            w.u64(s.base);
            w.u32(s.limit);
            w.u32(s.access_rights);
        }
        for t in [self.gdtr, self.idtr] {
            w.u64(t.base);
            w.u16(t.limit);
        }
        for v in [
            self.cr0, self.cr2, self.cr3, self.cr4, self.cr8, self.efer, self.xcr0,
        ] {
            w.u64(v);
        }
        for v in self.pdptes.iter().chain(&self.dr0_3) {
            w.u64(*v);
        }
        w.u64(self.dr6);
        w.u64(self.dr7);
        w.u32(self.interruptibility);
        w.u32(self.activity_state);
        w.u64(self.pending_debug_exceptions);
        match self.pending_event {
            None => w.u8(0),
            Some(e) => {
                w.u8(1);
                w.u8(e.vector);
                w.u8(e.kind as u8);
                w.bool(e.error_code.is_some());
                w.u32(e.error_code.unwrap_or(0));
                w.u32(e.instruction_len);
            }
        }
        w.bool(self.nmi_pending);
        w.count16(self.msrs.len());
        for m in &self.msrs {
            w.u32(m.index);
            w.u64(m.value);
        }
        w.blob32(&self.xsave);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut s = VcpuState {
            vcpu_index: r.u32("vcpu.index")?,
            ..VcpuState::default()
        };
        for v in &mut s.gprs {
            *v = r.u64("vcpu.gprs")?;
        }
        s.rip = r.u64("vcpu.rip")?;
        s.rflags = r.u64("vcpu.rflags")?;
        for seg in &mut s.segments {
            *seg = SegmentRegister {
                selector: r.u16("vcpu.segment.selector")?,
                base: r.u64("vcpu.segment.base")?,
                limit: r.u32("vcpu.segment.limit")?,
                access_rights: r.u32("vcpu.segment.access_rights")?,
            };
        }
        for t in [&mut s.gdtr, &mut s.idtr] {
            *t = DescriptorTable {
                base: r.u64("vcpu.dtr.base")?,
                limit: r.u16("vcpu.dtr.limit")?,
            };
        }
        for v in [
            &mut s.cr0,
            &mut s.cr2,
            &mut s.cr3,
            &mut s.cr4,
            &mut s.cr8,
            &mut s.efer,
            &mut s.xcr0,
        ] {
            *v = r.u64("vcpu.control_registers")?;
        }
        for v in s.pdptes.iter_mut().chain(s.dr0_3.iter_mut()) {
            *v = r.u64("vcpu.pdptes_dr")?;
        }
        s.dr6 = r.u64("vcpu.dr6")?;
        s.dr7 = r.u64("vcpu.dr7")?;
        s.interruptibility = r.u32("vcpu.interruptibility")?;
        s.activity_state = r.u32("vcpu.activity_state")?;
        s.pending_debug_exceptions = r.u64("vcpu.pending_debug_exceptions")?;
        if r.bool("vcpu.pending_event")? {
            let vector = r.u8("vcpu.event_vector")?;
            let kind = EventKind::from_code(r.u8("vcpu.event_kind")?)?;
            let has_code = r.bool("vcpu.event_has_error_code")?;
            let code = r.u32("vcpu.event_error_code")?;
            if !has_code && code != 0 {
                return Err(DecodeError::InvalidValue {
                    field: "vcpu.event_error_code",
                    value: code.into(),
                });
            }
            let instruction_len = r.u32("vcpu.event_instruction_len")?;
            s.pending_event = Some(PendingEvent {
                vector,
                kind,
                error_code: has_code.then_some(code),
                instruction_len,
            });
        }
        s.nmi_pending = r.bool("vcpu.nmi_pending")?;
        let n = r.count16("vcpu.msr_count", MAX_VCPU_MSRS)?;
        s.msrs.reserve(n);
        for _ in 0..n {
            s.msrs.push(MsrValue {
                index: r.u32("vcpu.msr_index")?,
                value: r.u64("vcpu.msr_value")?,
            });
        }
        s.xsave = r.blob32("vcpu.xsave", MAX_XSAVE_LEN)?.to_vec();
        s.validate()?;
        Ok(s)
    }
}
