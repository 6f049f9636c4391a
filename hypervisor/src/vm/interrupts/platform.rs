//! The interrupt complex of a one-vCPU PC: 8259 pair, I/O APIC, local APIC and event
//! injector wired together, so that a device line goes all the way to a VM-entry decision.
//!
//! Why a composition and not a bus: tern VMs have one vCPU, so every APIC message either
//! is for this local APIC or goes nowhere; a router for several vCPUs would replace
//! [`PlatformInterrupts::deliver`] and nothing else. The path (see docs/ARCHITECTURE.md,
//! "Interrupt and timer models"):
//!
//! ```text
//! PIT OUT0 / RTC IRQ8 / UART  --ISA IRQ n-->  8259 pair (IR n) --INTR--> LAPIC LINT0 (ExtINT)
//!                              \-> GSI routing --> I/O APIC pin --message--> LAPIC IRR
//! LAPIC (IRR/ISR/TPR) + PIC via LINT0 --> EventInjector::plan_entry --> VM entry
//! LAPIC EOI of a level vector --> I/O APIC EOI (remote IRR) --> re-delivery if still asserted
//! ```
//!
//! Both paths are always driven, as on a real board; which one the guest sees depends on
//! how it programmed them (masks in the PIC and I/O APIC, LINT0 in ExtINT or masked).
//! I/O APIC entries in ExtINT, SMI, INIT or start-up delivery mode are not acted on here
//! (INIT/SIPI come from IPIs, which leave through [`PlatformInterrupts::lapic_output`]).

use super::injector::{EntryPlan, EventInjector, GuestInterruptibility, InterruptController};
use super::message::{DeliveryMode, InterruptMessage};
use super::routing::GsiRouting;
use crate::vm::ioapic::IoApic;
use crate::vm::lapic::{Ipi, Lapic, LapicOutput, LvtEntry};
use crate::vm::pic::DualPic;

/// The PIC, I/O APIC, local APIC and injector of a one-vCPU VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformInterrupts {
    /// The 8259 pair.
    pub pic: DualPic,
    /// The I/O APIC.
    pub ioapic: IoApic,
    /// The vCPU's local APIC.
    pub lapic: Lapic,
    /// The vCPU's event injector.
    pub injector: EventInjector,
    routing: GsiRouting,
}

/// The controllers as the injector sees them: the PIC first when LINT0 passes ExtINT (an
/// ExtINT bypasses the IRR), then the local APIC.
struct Controllers<'a> {
    pic: &'a mut DualPic,
    lapic: &'a mut Lapic,
}

impl Controllers<'_> {
    fn pic_pending(&self) -> bool {
        self.lapic.accepts_pic_interrupts() && self.pic.interrupt_output()
    }
}

impl InterruptController for Controllers<'_> {
    fn has_pending(&self) -> bool {
        self.pic_pending() || self.lapic.highest_deliverable().is_some()
    }

    fn acknowledge(&mut self) -> Option<u8> {
        if self.pic_pending() {
            Some(self.pic.acknowledge())
        } else {
            self.lapic.acknowledge()
        }
    }
}

impl PlatformInterrupts {
    /// Fresh controllers around `lapic`, with tern's ISA routing.
    pub fn new(lapic: Lapic) -> Self {
        Self {
            pic: DualPic::new(),
            ioapic: IoApic::new(0),
            lapic,
            injector: EventInjector::new(),
            routing: GsiRouting::default(),
        }
    }

    /// The ISA routing in use (for the MADT).
    pub fn routing(&self) -> GsiRouting {
        self.routing
    }

    /// Drives ISA IRQ line `irq` (0..16) to `level` on both the PIC and the I/O APIC.
    pub fn set_isa_irq(&mut self, irq: u8, level: bool) {
        self.pic.set_irq(irq, level);
        if let Some(pin) = self.routing.isa_to_ioapic_pin(irq) {
            let (lapic, injector) = (&mut self.lapic, &mut self.injector);
            self.ioapic
                .set_irq(pin, level, &mut |m| deliver(lapic, injector, m));
        }
    }

    /// One rising and falling edge on ISA IRQ `irq` (the PIT's OUT0 edges).
    pub fn pulse_isa_irq(&mut self, irq: u8) {
        self.set_isa_irq(irq, true);
        self.set_isa_irq(irq, false);
    }

    /// Acts on what a local APIC register write sent out: an EOI broadcast reaches the I/O
    /// APIC; an IPI for other vCPUs is returned (a one-vCPU VM has no one to deliver it to).
    pub fn lapic_output(&mut self, output: Option<LapicOutput>) -> Option<Ipi> {
        match output? {
            LapicOutput::EoiBroadcast { vector } => {
                let (lapic, injector) = (&mut self.lapic, &mut self.injector);
                self.ioapic
                    .eoi(vector, &mut |m| deliver(lapic, injector, m));
                None
            }
            LapicOutput::Ipi(ipi) => Some(ipi),
        }
    }

    /// A 32-bit guest write to the I/O APIC page at `offset`; a redirection entry that is
    /// unmasked while its level line is asserted delivers at once.
    pub fn ioapic_mmio_write(&mut self, offset: u32, value: u32) {
        let (lapic, injector) = (&mut self.lapic, &mut self.injector);
        self.ioapic
            .mmio_write(offset, value, &mut |m| deliver(lapic, injector, m));
    }

    /// A 32-bit guest write to the xAPIC page at `offset`, guest TSC `now`; an EOI of a
    /// level-triggered vector reaches the I/O APIC. IPIs to other vCPUs are dropped (a
    /// one-vCPU VM has none) and returned for the caller to count.
    pub fn lapic_mmio_write(&mut self, offset: u32, value: u32, now: u64) -> Option<Ipi> {
        let out = self.lapic.mmio_write(offset, value, now);
        self.lapic_output(out)
    }

    /// The NMI wire on LINT1 (e.g. an operator "nmi" command).
    pub fn signal_lint1(&mut self) {
        if self.lapic.signal_lint(LvtEntry::Lint1) == Some(DeliveryMode::Nmi) {
            self.injector.queue_nmi();
        }
    }

    /// The decision for the next VM entry.
    pub fn plan_entry(&mut self, cpu: GuestInterruptibility) -> EntryPlan {
        let mut controllers = Controllers {
            pic: &mut self.pic,
            lapic: &mut self.lapic,
        };
        self.injector.plan_entry(cpu, &mut controllers)
    }

    /// Whether a vCPU in HLT wakes now.
    pub fn wakes_from_halt(&mut self, cpu: GuestInterruptibility) -> bool {
        let controllers = Controllers {
            pic: &mut self.pic,
            lapic: &mut self.lapic,
        };
        self.injector.wakes_from_halt(cpu, &controllers)
    }
}

/// An I/O APIC message to this vCPU's local APIC.
fn deliver(lapic: &mut Lapic, injector: &mut EventInjector, m: InterruptMessage) {
    if !lapic.matches_destination(m.destination, m.destination_mode) {
        return;
    }
    match m.delivery_mode {
        DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
            lapic.accept(m.vector, m.trigger);
        }
        DeliveryMode::Nmi => injector.queue_nmi(),
        DeliveryMode::Smi | DeliveryMode::Init | DeliveryMode::StartUp | DeliveryMode::ExtInt => {}
    }
}
