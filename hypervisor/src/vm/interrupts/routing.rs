//! Where each ISA IRQ goes: the PIC input of the same number, and the I/O APIC pin its
//! global system interrupt (GSI) names.
//!
//! Why a table: the guest learns the ISA-to-GSI mapping from the MADT's Interrupt Source
//! Override entries (ACPI 6.5, 5.2.12.5), and the hypervisor must route exactly as it
//! told the guest. Identity mapping holds except where an override says otherwise; the
//! PC convention is that the PIT's IRQ0 arrives on I/O APIC pin 2 (pin 0 carries the
//! 8259's INTR for ExtINT mode), so IRQ0 -> GSI 2 is the one override tern declares. The
//! same [`GsiRouting::overrides`] list is what a MADT builder emits.

use super::message::TriggerMode;
use crate::vm::ioapic::IOAPIC_PINS;

/// One MADT Interrupt Source Override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsaOverride {
    /// The ISA IRQ (bus-relative source).
    pub isa_irq: u8,
    /// The GSI it is wired to.
    pub gsi: u32,
    /// Trigger mode of the line.
    pub trigger: TriggerMode,
    /// Polarity: true for active-low.
    pub active_low: bool,
}

/// The overrides of a tern VM: the PIT on GSI 2, edge, active-high.
pub const TERN_ISA_OVERRIDES: &[IsaOverride] = &[IsaOverride {
    isa_irq: 0,
    gsi: 2,
    trigger: TriggerMode::Edge,
    active_low: false,
}];

/// ISA IRQ to GSI routing for one I/O APIC based at GSI 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsiRouting {
    overrides: &'static [IsaOverride],
}

impl Default for GsiRouting {
    fn default() -> Self {
        Self::new(TERN_ISA_OVERRIDES)
    }
}

impl GsiRouting {
    /// Routing with the given overrides (later entries for the same IRQ are ignored).
    pub const fn new(overrides: &'static [IsaOverride]) -> Self {
        Self { overrides }
    }

    /// The overrides, for the MADT.
    pub fn overrides(&self) -> &'static [IsaOverride] {
        self.overrides
    }

    /// The GSI of ISA IRQ `irq`.
    pub fn isa_to_gsi(&self, irq: u8) -> u32 {
        self.overrides
            .iter()
            .find(|o| o.isa_irq == irq)
            .map_or(u32::from(irq), |o| o.gsi)
    }

    /// The I/O APIC pin of ISA IRQ `irq`, if the GSI is on the (single) I/O APIC.
    pub fn isa_to_ioapic_pin(&self, irq: u8) -> Option<usize> {
        let gsi = usize::try_from(self.isa_to_gsi(irq)).ok()?;
        (gsi < IOAPIC_PINS).then_some(gsi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irq0_goes_to_gsi2_others_identity() {
        let r = GsiRouting::default();
        assert_eq!(r.isa_to_gsi(0), 2);
        assert_eq!(r.isa_to_gsi(1), 1);
        assert_eq!(r.isa_to_gsi(8), 8);
        assert_eq!(r.isa_to_ioapic_pin(0), Some(2));
        static FAR: &[IsaOverride] = &[IsaOverride {
            isa_irq: 5,
            gsi: 40,
            trigger: TriggerMode::Level,
            active_low: true,
        }];
        assert_eq!(GsiRouting::new(FAR).isa_to_ioapic_pin(5), None);
    }
}
