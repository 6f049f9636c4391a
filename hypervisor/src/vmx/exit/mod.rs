//! The single boundary where raw VM-exit information becomes the portable [`VmExit`].
//!
//! Why: everything above `vmx` (exit handlers, device models, counters, tests) deals in one
//! enum with decoded operands, never in VMCS field encodings or qualification bit layouts.
//! The bare-metal side reads the exit-information fields into a [`RawExit`] (SDM §25.9
//! "VM-Exit Information Fields") and calls [`VmExit::decode`]; host tests feed it synthetic
//! values. Unknown or unexpected reasons become [`VmExit::Unhandled`] carrying the raw
//! reason, never a silent default.

pub mod qualification;
pub mod reason;

pub use qualification::{
    CrAccess, CrAccessKind, EptViolation, Interruption, InterruptionType, IoAccess, IoDirection,
};

use crate::vmx::regs::GuestRegisters;

/// The exit-information fields the decoder needs, read from the VMCS right after the exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawExit {
    /// Exit reason (field 0x4402): bits 15:0 basic reason, bit 31 VM-entry failure.
    pub reason: u32,
    /// Exit qualification (field 0x6400).
    pub qualification: u64,
    /// Guest-physical address (field 0x2400), for EPT violations/misconfigurations.
    pub guest_physical: u64,
    /// Guest-linear address (field 0x640a).
    pub guest_linear: u64,
    /// VM-exit interruption information (field 0x4404).
    pub interruption_info: u32,
    /// VM-exit interruption error code (field 0x4406).
    pub interruption_error: u32,
    /// VM-exit instruction length (field 0x440c).
    pub instruction_len: u32,
}

impl RawExit {
    /// The basic exit reason (bits 15:0).
    pub fn basic_reason(&self) -> u16 {
        // Masked to 16 bits, so the cast cannot truncate.
        (self.reason & 0xffff) as u16
    }

    /// Whether this "exit" is a failed VM entry (bit 31, SDM §27.8).
    pub fn is_entry_failure(&self) -> bool {
        self.reason & reason::ENTRY_FAILURE_BIT != 0
    }
}

/// Why a VM entry failed after the processor started loading guest state (SDM §27.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFailure {
    /// Guest-state checks failed (reason 33); the qualification names the failing check
    /// class (SDM §27.8: 0 = not used, 2 = PDPTE load, 3 = NMI injection, 4 = VMCS link).
    InvalidGuestState {
        /// Exit qualification.
        qualification: u64,
    },
    /// Loading the VM-entry MSR-load area failed at (1-based) entry `index` (reason 34).
    MsrLoading {
        /// Index of the failing MSR-load entry.
        index: u64,
    },
    /// A machine-check event during VM entry (reason 41).
    MachineCheck,
    /// Bit 31 with another basic reason (not defined by the SDM).
    Other {
        /// The basic reason.
        reason: u16,
    },
}

/// A VM exit, decoded and independent of the VMX encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmExit {
    /// An exception or NMI in the guest that the exception bitmap intercepts.
    ExceptionOrNmi(Interruption),
    /// An external interrupt arrived while the guest ran; `vector` is known when the
    /// "acknowledge interrupt on exit" control is set.
    ExternalInterrupt {
        /// The acknowledged vector.
        vector: Option<u8>,
    },
    /// The guest triple-faulted: it cannot continue.
    TripleFault,
    /// INIT signal.
    Init,
    /// Startup IPI with its vector.
    Sipi {
        /// SIPI vector (qualification bits 7:0).
        vector: u8,
    },
    /// The guest became interruptible ("interrupt-window exiting").
    InterruptWindow,
    /// CPUID with EAX/ECX.
    Cpuid {
        /// EAX at the CPUID.
        leaf: u32,
        /// ECX at the CPUID.
        subleaf: u32,
    },
    /// HLT.
    Hlt,
    /// VMCALL: a hypercall; the operands are in the guest registers.
    Vmcall,
    /// A VMX instruction executed by the guest (nested VMX is not offered: inject #UD).
    VmxInstruction {
        /// Which instruction (basic reason 19..=27, 50, 53).
        reason: u16,
    },
    /// MOV to/from CR, CLTS, LMSW.
    CrAccess(CrAccess),
    /// IN/OUT/INS/OUTS.
    Io(IoAccess),
    /// RDMSR with ECX.
    Rdmsr {
        /// ECX.
        msr: u32,
    },
    /// WRMSR with ECX and EDX:EAX.
    Wrmsr {
        /// ECX.
        msr: u32,
        /// EDX:EAX.
        value: u64,
    },
    /// XSETBV with ECX and EDX:EAX.
    Xsetbv {
        /// ECX: which XCR.
        xcr: u32,
        /// EDX:EAX.
        value: u64,
    },
    /// EPT violation.
    EptViolation(EptViolation),
    /// EPT misconfiguration: a hypervisor bug in the EPT tables (SDM §29.3.3.1).
    EptMisconfig {
        /// Faulting guest-physical address.
        guest_physical: u64,
    },
    /// The VMX preemption timer expired: the slice is over.
    PreemptionTimer,
    /// The page-modification log is full (SDM §29.3.6).
    PmlFull,
    /// PAUSE (with PAUSE exiting or PAUSE-loop exiting).
    Pause,
    /// RDTSC / RDTSCP / RDPMC / INVD / WBINVD / MWAIT / MONITOR / INVLPG / DR access:
    /// instructions that exit only when the matching control is set.
    Instruction {
        /// Basic reason.
        reason: u16,
    },
    /// VM entry failed while loading guest state.
    EntryFailure(EntryFailure),
    /// A reason the hypervisor does not handle (or an I/O exit with an undefined size
    /// encoding): the VM is stopped with a state dump.
    Unhandled {
        /// Basic reason.
        reason: u16,
        /// Exit qualification.
        qualification: u64,
    },
}

impl VmExit {
    /// Decode `raw`, taking instruction operands (CPUID leaf, MSR index and value) from the
    /// guest registers saved at the exit.
    pub fn decode(raw: &RawExit, regs: &GuestRegisters) -> Self {
        let basic = raw.basic_reason();
        let q = raw.qualification;
        if raw.is_entry_failure() {
            return Self::EntryFailure(match basic {
                reason::ENTRY_FAIL_GUEST_STATE => {
                    EntryFailure::InvalidGuestState { qualification: q }
                }
                reason::ENTRY_FAIL_MSR_LOADING => EntryFailure::MsrLoading { index: q },
                reason::ENTRY_FAIL_MACHINE_CHECK => EntryFailure::MachineCheck,
                other => EntryFailure::Other { reason: other },
            });
        }
        let ecx = (regs.rcx & 0xffff_ffff) as u32;
        match basic {
            reason::EXCEPTION_OR_NMI => {
                match Interruption::decode(raw.interruption_info, raw.interruption_error) {
                    Some(event) => Self::ExceptionOrNmi(event),
                    None => Self::Unhandled {
                        reason: basic,
                        qualification: q,
                    },
                }
            }
            reason::EXTERNAL_INTERRUPT => Self::ExternalInterrupt {
                vector: Interruption::decode(raw.interruption_info, 0).map(|i| i.vector),
            },
            reason::TRIPLE_FAULT => Self::TripleFault,
            reason::INIT_SIGNAL => Self::Init,
            reason::SIPI => Self::Sipi {
                vector: q.to_le_bytes()[0],
            },
            reason::INTERRUPT_WINDOW => Self::InterruptWindow,
            reason::CPUID => Self::Cpuid {
                leaf: (regs.rax & 0xffff_ffff) as u32,
                subleaf: ecx,
            },
            reason::HLT => Self::Hlt,
            reason::VMCALL => Self::Vmcall,
            reason::VMCLEAR..=reason::VMXON | reason::INVEPT | reason::INVVPID => {
                Self::VmxInstruction { reason: basic }
            }
            reason::CR_ACCESS => Self::CrAccess(CrAccess::decode(q)),
            reason::IO_INSTRUCTION => match IoAccess::decode(q) {
                Some(io) => Self::Io(io),
                None => Self::Unhandled {
                    reason: basic,
                    qualification: q,
                },
            },
            reason::RDMSR => Self::Rdmsr { msr: ecx },
            reason::WRMSR => Self::Wrmsr {
                msr: ecx,
                value: regs.edx_eax(),
            },
            reason::XSETBV => Self::Xsetbv {
                xcr: ecx,
                value: regs.edx_eax(),
            },
            reason::EPT_VIOLATION => Self::EptViolation(EptViolation::decode(
                q,
                raw.guest_physical,
                raw.guest_linear,
            )),
            reason::EPT_MISCONFIG => Self::EptMisconfig {
                guest_physical: raw.guest_physical,
            },
            reason::PREEMPTION_TIMER => Self::PreemptionTimer,
            reason::PML_FULL => Self::PmlFull,
            reason::PAUSE => Self::Pause,
            reason::RDTSC
            | reason::RDTSCP
            | reason::RDPMC
            | reason::INVD
            | reason::WBINVD
            | reason::MWAIT
            | reason::MONITOR
            | reason::INVLPG
            | reason::DR_ACCESS => Self::Instruction { reason: basic },
            _ => Self::Unhandled {
                reason: basic,
                qualification: q,
            },
        }
    }
}

#[cfg(test)]
mod tests;
