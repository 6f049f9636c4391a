//! An I/O APIC (82093AA) as a pure state machine: 24 redirection entries behind the
//! IOREGSEL/IOWIN window, edge and level inputs, remote IRR, EOI by vector.
//!
//! Why this shape: the exit handler forwards 32-bit MMIO accesses of the I/O APIC page
//! ([`IoApic::mmio_read`], [`IoApic::mmio_write`]), device models drive input pins
//! ([`IoApic::set_irq`]), and a local APIC's EOI broadcast comes back as
//! [`IoApic::eoi`]. Each of them may emit interrupt messages, handed to a `deliver`
//! callback so that the caller decides which local APIC accepts them; the I/O APIC never
//! knows about vCPUs. Delivery is instantaneous, so the delivery-status bit always reads 0.
//!
//! Sources: Intel 82093AA I/O APIC data sheet (3.0 register map, 3.2.4 redirection table:
//! bit 14 remote IRR is set when a level interrupt is accepted and cleared by an EOI with a
//! matching vector; masked edge interrupts are lost, masked level interrupts are delivered
//! when unmasked if still asserted), and SDM Vol. 3A 11.8.5 for the EOI broadcast.
//!
//! Pin levels are logical ("asserted"); the board model applies polarity (ISA IRQs are
//! active-high on the ISA side, PCI INTx active-low), so bit 13 is stored but not applied.

pub mod state;

use crate::vm::interrupts::message::{
    DeliveryMode, DestinationMode, InterruptMessage, TriggerMode,
};

/// Redirection entries (input pins) of the 82093AA.
pub const IOAPIC_PINS: usize = 24;
/// The conventional guest-physical base of the first I/O APIC.
pub const DEFAULT_IOAPIC_BASE: u64 = 0xfec0_0000;

/// MMIO offsets in the I/O APIC page.
pub mod mmio {
    /// I/O register select (index).
    pub const IOREGSEL: u32 = 0x00;
    /// I/O window (data of the selected register).
    pub const IOWIN: u32 = 0x10;
}

const REG_ID: u8 = 0x00;
const REG_VERSION: u8 = 0x01;
const REG_ARBITRATION: u8 = 0x02;
const REG_REDIRECTION_FIRST: u8 = 0x10;
/// Version 0x11, maximum redirection entry 23.
const VERSION_VALUE: u32 = 0x0017_0011;

const ENTRY_REMOTE_IRR: u64 = 1 << 14;
const ENTRY_MASKED: u64 = 1 << 16;
/// Bits software may write in a redirection entry: vector, delivery mode, destination
/// mode, polarity, trigger mode, mask, destination.
pub(crate) const ENTRY_WRITABLE: u64 = 0xff00_0000_0001_afff;

/// An I/O APIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoApic {
    pub(crate) id: u8,
    pub(crate) ioregsel: u8,
    pub(crate) entries: [u64; IOAPIC_PINS],
    /// Bit n: input pin n asserted.
    pub(crate) pin_levels: u32,
}

impl Default for IoApic {
    fn default() -> Self {
        Self::new(0)
    }
}

impl IoApic {
    /// An I/O APIC at reset with APIC ID `id` (low 4 bits): every entry masked.
    pub fn new(id: u8) -> Self {
        Self {
            id: id & 0xf,
            ioregsel: 0,
            entries: [ENTRY_MASKED; IOAPIC_PINS],
            pin_levels: 0,
        }
    }

    /// The redirection entry of `pin` (as the guest reads it).
    pub fn entry(&self, pin: usize) -> Option<u64> {
        self.entries.get(pin).copied()
    }

    /// A 32-bit read at `offset` in the I/O APIC page; other offsets read 0.
    pub fn mmio_read(&self, offset: u32) -> u32 {
        match offset {
            mmio::IOREGSEL => u32::from(self.ioregsel),
            mmio::IOWIN => self.read_register(self.ioregsel),
            _ => 0,
        }
    }

    /// A 32-bit write at `offset`; a redirection entry write may deliver (a level
    /// interrupt still asserted when it is unmasked).
    pub fn mmio_write(
        &mut self,
        offset: u32,
        value: u32,
        deliver: &mut impl FnMut(InterruptMessage),
    ) {
        match offset {
            mmio::IOREGSEL => self.ioregsel = value as u8,
            mmio::IOWIN => self.write_register(self.ioregsel, value, deliver),
            _ => {}
        }
    }

    fn read_register(&self, index: u8) -> u32 {
        match index {
            REG_ID | REG_ARBITRATION => u32::from(self.id) << 24,
            REG_VERSION => VERSION_VALUE,
            _ => match redirection_slot(index) {
                Some((pin, high)) => {
                    let entry = self.entries[pin];
                    if high {
                        (entry >> 32) as u32
                    } else {
                        entry as u32
                    }
                }
                None => 0,
            },
        }
    }

    fn write_register(
        &mut self,
        index: u8,
        value: u32,
        deliver: &mut impl FnMut(InterruptMessage),
    ) {
        if index == REG_ID {
            self.id = ((value >> 24) & 0xf) as u8;
            return;
        }
        let Some((pin, high)) = redirection_slot(index) else {
            return;
        };
        let old = self.entries[pin];
        let written = if high {
            (old & 0xffff_ffff) | (u64::from(value) << 32)
        } else {
            (old & !0xffff_ffff) | u64::from(value)
        };
        let mut entry = (written & ENTRY_WRITABLE) | (old & ENTRY_REMOTE_IRR);
        if TriggerMode::from_bit15(entry) == TriggerMode::Edge {
            // Remote IRR is meaningless for edge-triggered entries.
            entry &= !ENTRY_REMOTE_IRR;
        }
        self.entries[pin] = entry;
        if TriggerMode::from_bit15(entry) == TriggerMode::Level && self.pin_asserted(pin) {
            self.service(pin, deliver);
        }
    }

    fn pin_asserted(&self, pin: usize) -> bool {
        self.pin_levels & (1 << pin) != 0
    }

    /// Drives input `pin` (0..24; others ignored). An edge entry delivers on the rising
    /// edge; a level entry delivers while asserted unless remote IRR is set.
    pub fn set_irq(
        &mut self,
        pin: usize,
        asserted: bool,
        deliver: &mut impl FnMut(InterruptMessage),
    ) {
        if pin >= IOAPIC_PINS {
            return;
        }
        let was = self.pin_asserted(pin);
        if asserted {
            self.pin_levels |= 1 << pin;
        } else {
            self.pin_levels &= !(1 << pin);
        }
        let edge = TriggerMode::from_bit15(self.entries[pin]) == TriggerMode::Edge;
        if asserted && (!edge || !was) {
            self.service(pin, deliver);
        }
    }

    /// An EOI broadcast for `vector`: clears remote IRR of every level entry with that
    /// vector, re-delivering lines that are still asserted.
    pub fn eoi(&mut self, vector: u8, deliver: &mut impl FnMut(InterruptMessage)) {
        for pin in 0..IOAPIC_PINS {
            let entry = self.entries[pin];
            if entry as u8 == vector && entry & ENTRY_REMOTE_IRR != 0 {
                self.entries[pin] = entry & !ENTRY_REMOTE_IRR;
                if self.pin_asserted(pin) {
                    self.service(pin, deliver);
                }
            }
        }
    }

    fn service(&mut self, pin: usize, deliver: &mut impl FnMut(InterruptMessage)) {
        let entry = self.entries[pin];
        if entry & ENTRY_MASKED != 0 {
            return;
        }
        let trigger = TriggerMode::from_bit15(entry);
        if trigger == TriggerMode::Level {
            if entry & ENTRY_REMOTE_IRR != 0 {
                return;
            }
            self.entries[pin] = entry | ENTRY_REMOTE_IRR;
        }
        // Reserved delivery mode 0b011: the 82093AA behaviour is undefined; nothing is sent.
        let Some(delivery_mode) = DeliveryMode::from_bits((entry >> 8) as u32) else {
            return;
        };
        deliver(InterruptMessage {
            vector: entry as u8,
            destination: (entry >> 56) as u32,
            destination_mode: DestinationMode::from_bit11(entry),
            delivery_mode,
            trigger,
        });
    }
}

/// The pin and half (true = high dword) a register index selects, if it is a redirection
/// register.
fn redirection_slot(index: u8) -> Option<(usize, bool)> {
    let offset = usize::from(index.checked_sub(REG_REDIRECTION_FIRST)?);
    (offset < 2 * IOAPIC_PINS).then_some((offset / 2, offset % 2 == 1))
}

#[cfg(test)]
mod tests;
