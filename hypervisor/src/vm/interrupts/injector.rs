//! What the vCPU gets at the next VM entry: the event-injection decision as pure logic.
//!
//! Why this shape: every VM entry must answer the same question from the same inputs —
//! an event found in the IDT-vectoring information field at the last exit (it was being
//! delivered when the exit happened and must be delivered again, SDM Vol. 3C 28.2.4 /
//! 25.9.3 "Information for VM Exits That Occur During Event Delivery"), an exception the
//! exit handler raised, a pending NMI, a maskable interrupt waiting in the interrupt
//! controllers, and the guest's RFLAGS.IF and interruptibility state. The answer is at
//! most one event for the VM-entry interruption-information field plus whether to request
//! interrupt-window and NMI-window exiting. [`EventInjector::plan_entry`] computes it; the
//! VMCS reads and writes stay with the wiring step.
//!
//! Order (SDM Vol. 3A 6.9, Table 6-2, adapted the way KVM does): the re-injected event
//! first (it was already in flight), then a queued exception (it belongs to the instruction
//! the exit was for), then an NMI, then a maskable interrupt. A maskable interrupt needs
//! RFLAGS.IF = 1 and no blocking by STI or MOV SS (VM-entry checks on the interruptibility
//! state, SDM Vol. 3C 27.3.1.5 / 26.3.1.5); an NMI needs no blocking by NMI or MOV SS (and,
//! conservatively, none by STI). An event that cannot go now requests the matching window
//! exit (interrupt-window exiting, primary processor-based control bit 2; NMI-window
//! exiting, bit 22, which needs the "virtual NMIs" pin-based control), so the vCPU exits as
//! soon as the guest can take it. Two exceptions combine by the double-fault rules of
//! SDM Vol. 3A 6.15 (Table 6-5).

/// Interruption types of the IDT-vectoring and VM-entry interruption-information fields
/// (SDM Vol. 3C 25.8.3 / 24.8.3, bits 10:8): the protocol's type, so an event saved here is
/// the one a migrated vCPU state carries.
pub use migration_proto::message::EventKind;

/// Decodes the interruption type in bits 10:8; types 1 (reserved) and 7 (other event) are
/// not deliverable.
pub fn event_kind(type_bits: u32) -> Option<EventKind> {
    EventKind::from_code((type_bits & 7) as u8).ok()
}

/// Whether delivery needs the VM-entry instruction length (the event came from an
/// instruction, SDM Vol. 3C 26.6.1.1 / 27.6.1.1).
pub fn uses_instruction_length(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::SoftwareInterrupt
            | EventKind::PrivilegedSoftwareException
            | EventKind::SoftwareException
    )
}

/// Exceptions that push an error code (SDM Vol. 3A 6.13, Table 6-1): #DF, #TS, #NP, #SS,
/// #GP, #PF, #AC, #CP.
pub fn exception_has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21)
}

/// #DF.
pub const DOUBLE_FAULT: u8 = 8;
/// #PF.
pub const PAGE_FAULT: u8 = 14;
/// NMI vector.
pub const NMI_VECTOR: u8 = 2;

/// One event to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Its type.
    pub kind: EventKind,
    /// Its vector.
    pub vector: u8,
    /// The error code to push, if the event has one.
    pub error_code: Option<u32>,
    /// VM-entry instruction length for software interrupts/exceptions (0 otherwise).
    pub instruction_len: u32,
}

impl Event {
    /// The VM-entry interruption-information field for this event (valid bit 31, error
    /// code bit 11, type bits 10:8, vector bits 7:0; SDM Vol. 3C 25.8.3).
    pub fn entry_interruption_info(&self) -> u32 {
        (1 << 31)
            | (u32::from(self.error_code.is_some()) << 11)
            | ((self.kind as u32) << 8)
            | u32::from(self.vector)
    }

    /// Checks the rules the processor keeps for a delivered event: exceptions are vectors
    /// 0-31 with an error code exactly when the vector pushes one (SDM Vol. 3A 6.13), an
    /// NMI is vector 2, nothing else has an error code, and only instruction-sourced events
    /// have an instruction length, 1-15 bytes. Returns the name of the broken rule.
    pub fn check(&self) -> Result<(), &'static str> {
        match self.kind {
            EventKind::HardwareException if self.vector >= 32 => {
                return Err("exception vector above 31");
            }
            EventKind::HardwareException
                if self.error_code.is_some() != exception_has_error_code(self.vector) =>
            {
                return Err("error code presence");
            }
            EventKind::HardwareException => {}
            EventKind::Nmi if self.vector != NMI_VECTOR => return Err("NMI vector"),
            _ if self.error_code.is_some() => return Err("error code on a non-exception"),
            _ => {}
        }
        let len_ok = if uses_instruction_length(self.kind) {
            (1..=15).contains(&self.instruction_len)
        } else {
            self.instruction_len == 0
        };
        if len_ok {
            Ok(())
        } else {
            Err("instruction length")
        }
    }

    fn exception(vector: u8, error_code: Option<u32>) -> Self {
        Self {
            kind: EventKind::HardwareException,
            vector,
            error_code,
            instruction_len: 0,
        }
    }
}

/// The guest state that gates delivery, read from the VMCS at the exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestInterruptibility {
    /// RFLAGS.IF.
    pub interrupts_enabled: bool,
    /// Interruptibility state bit 0.
    pub blocking_by_sti: bool,
    /// Interruptibility state bit 1.
    pub blocking_by_mov_ss: bool,
    /// Interruptibility state bit 3.
    pub blocking_by_nmi: bool,
}

impl GuestInterruptibility {
    /// From guest RFLAGS and the guest interruptibility-state field (SDM Vol. 3C 25.4.2,
    /// Table 25-3).
    pub fn from_vmcs(rflags: u64, interruptibility: u32) -> Self {
        Self {
            interrupts_enabled: rflags & (1 << 9) != 0,
            blocking_by_sti: interruptibility & 1 != 0,
            blocking_by_mov_ss: interruptibility & 2 != 0,
            blocking_by_nmi: interruptibility & 8 != 0,
        }
    }

    fn can_take_interrupt(&self) -> bool {
        self.interrupts_enabled && !self.blocking_by_sti && !self.blocking_by_mov_ss
    }

    fn can_take_nmi(&self) -> bool {
        !self.blocking_by_nmi && !self.blocking_by_mov_ss && !self.blocking_by_sti
    }
}

/// The interrupt controllers as the vCPU sees them (the LAPIC, and the PIC through LINT0).
pub trait InterruptController {
    /// Whether a maskable interrupt is waiting to be taken.
    fn has_pending(&self) -> bool;
    /// The INTA cycle: commits to the interrupt and returns its vector.
    fn acknowledge(&mut self) -> Option<u8>;
}

/// What to program for the next VM entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryPlan {
    /// The event for the VM-entry interruption-information field.
    pub inject: Option<Event>,
    /// Set interrupt-window exiting: a maskable interrupt is still waiting.
    pub interrupt_window_exiting: bool,
    /// Set NMI-window exiting: an NMI is still waiting.
    pub nmi_window_exiting: bool,
}

/// Why an exit's IDT-vectoring information could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectoringError {
    /// Reserved bits 30:13 are set.
    ReservedBits(u32),
    /// Type 1 or 7 cannot be re-injected.
    UndeliverableType(u32),
    /// The event breaks a rule of [`Event::check`] (named).
    Inconsistent(&'static str),
}

/// Queuing an exception made the guest shut down (an exception while delivering #DF,
/// SDM Vol. 3A 6.15): the VM must be reset or stopped, as on a triple-fault exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TripleFault;

/// The double-fault classes (SDM Vol. 3A 6.15, Table 6-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExceptionClass {
    Benign,
    Contributory,
    PageFault,
}

fn class(vector: u8) -> ExceptionClass {
    match vector {
        0 | 10 | 11 | 12 | 13 | 21 => ExceptionClass::Contributory,
        PAGE_FAULT => ExceptionClass::PageFault,
        _ => ExceptionClass::Benign,
    }
}

/// The per-vCPU injection state: what is in flight and queued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventInjector {
    pub(crate) reinject: Option<Event>,
    pub(crate) exception: Option<Event>,
    pub(crate) nmi_pending: bool,
}

impl EventInjector {
    /// Nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the IDT-vectoring information of an exit (and its error-code and
    /// instruction-length fields). A valid event is re-injected before anything else.
    pub fn record_exit(
        &mut self,
        idt_vectoring_info: u32,
        error_code: u32,
        instruction_len: u32,
    ) -> Result<(), VectoringError> {
        if idt_vectoring_info & (1 << 31) == 0 {
            return Ok(());
        }
        if idt_vectoring_info & 0x7fff_e000 != 0 {
            return Err(VectoringError::ReservedBits(idt_vectoring_info));
        }
        let kind = event_kind(idt_vectoring_info >> 8).ok_or(VectoringError::UndeliverableType(
            (idt_vectoring_info >> 8) & 7,
        ))?;
        let event = Event {
            kind,
            vector: idt_vectoring_info as u8,
            error_code: (idt_vectoring_info & (1 << 11) != 0).then_some(error_code),
            instruction_len: if uses_instruction_length(kind) {
                instruction_len
            } else {
                0
            },
        };
        event.check().map_err(VectoringError::Inconsistent)?;
        self.reinject = Some(event);
        Ok(())
    }

    /// Queues hardware exception `vector` (0..32); `error_code` is used only for vectors
    /// that push one. Combines with an exception already pending or in flight by the
    /// double-fault rules; returns [`TripleFault`] when the guest would shut down.
    pub fn queue_exception(&mut self, vector: u8, error_code: u32) -> Result<(), TripleFault> {
        let vector = vector & 31;
        let new = Event::exception(
            vector,
            exception_has_error_code(vector).then_some(error_code),
        );
        let first = self.exception.or(self
            .reinject
            .filter(|e| e.kind == EventKind::HardwareException));
        let Some(first) = first else {
            self.exception = Some(new);
            return Ok(());
        };
        if first.kind == EventKind::HardwareException && self.reinject == Some(first) {
            // The in-flight exception is superseded by the combination below.
            self.reinject = None;
        }
        let (a, b) = (class(first.vector), class(vector));
        self.exception = Some(if first.vector == DOUBLE_FAULT {
            if b == ExceptionClass::Benign {
                new
            } else {
                return Err(TripleFault);
            }
        } else if (a == ExceptionClass::Contributory && b == ExceptionClass::Contributory)
            || (a == ExceptionClass::PageFault && b != ExceptionClass::Benign)
        {
            Event::exception(DOUBLE_FAULT, Some(0))
        } else {
            // Handled serially: the new exception is delivered; re-executing the
            // instruction regenerates the first if it still applies.
            new
        });
        Ok(())
    }

    /// Latches an NMI (a second NMI while one is pending is lost, as on hardware).
    pub fn queue_nmi(&mut self) {
        self.nmi_pending = true;
    }

    /// Whether anything is queued or in flight here (the controllers aside).
    pub fn has_events(&self) -> bool {
        self.reinject.is_some() || self.exception.is_some() || self.nmi_pending
    }

    /// The decision for the next VM entry. Acknowledges the controller's interrupt only
    /// when it is injected.
    pub fn plan_entry(
        &mut self,
        cpu: GuestInterruptibility,
        controller: &mut impl InterruptController,
    ) -> EntryPlan {
        let mut inject = self.reinject.take().or_else(|| self.exception.take());
        if inject.is_none() && self.nmi_pending && cpu.can_take_nmi() {
            self.nmi_pending = false;
            inject = Some(Event {
                kind: EventKind::Nmi,
                vector: NMI_VECTOR,
                error_code: None,
                instruction_len: 0,
            });
        }
        if inject.is_none() && cpu.can_take_interrupt() && controller.has_pending() {
            inject = controller.acknowledge().map(|vector| Event {
                kind: EventKind::ExternalInterrupt,
                vector,
                error_code: None,
                instruction_len: 0,
            });
        }
        EntryPlan {
            inject,
            interrupt_window_exiting: controller.has_pending(),
            nmi_window_exiting: self.nmi_pending,
        }
    }

    /// Whether a vCPU halted in HLT wakes up now: an event is in flight or queued, an NMI
    /// is not blocked, or an interrupt is pending with RFLAGS.IF = 1 (HLT ends on any
    /// unmasked interrupt; the STI shadow of `sti; hlt` has passed once the CPU halts).
    pub fn wakes_from_halt(
        &self,
        cpu: GuestInterruptibility,
        controller: &impl InterruptController,
    ) -> bool {
        self.reinject.is_some()
            || self.exception.is_some()
            || (self.nmi_pending && !cpu.blocking_by_nmi)
            || (cpu.interrupts_enabled && controller.has_pending())
    }
}
