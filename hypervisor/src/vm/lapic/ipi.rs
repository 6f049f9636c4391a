//! Interprocessor interrupts from the ICR (SDM Vol. 3A 11.6.1) and destination matching
//! for incoming messages (11.6.2, 11.12.9, 11.12.10).
//!
//! Why here and not in a router: with one vCPU per VM, most IPIs a guest sends are to
//! itself (self shorthand, or its own APIC ID), and those must land in this APIC's IRR at
//! once. Everything else leaves as an [`Ipi`] value for whoever models the other CPUs;
//! the delivery-status bit reads idle because sending is instantaneous.

use super::{ApicMode, ESR_SEND_ILLEGAL_VECTOR, Lapic, LapicOutput};
use crate::vm::interrupts::message::{
    DeliveryMode, DestinationMode, InterruptMessage, TriggerMode,
};

/// IPI destination shorthand (ICR bits 19:18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shorthand {
    /// Use the destination field.
    None,
    /// All APICs but the sender.
    AllExcludingSelf,
}

/// An IPI this APIC sends to others (anything addressed only to itself is accepted
/// locally and never leaves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipi {
    /// Vector, destination, modes.
    pub message: InterruptMessage,
    /// Destination shorthand.
    pub shorthand: Shorthand,
}

impl Lapic {
    /// Sends the IPI in the ICR (SDM 11.6.1). Fixed IPIs to this APIC alone are accepted
    /// here; everything else goes to the router.
    pub(crate) fn send_ipi(&mut self) -> Option<LapicOutput> {
        let icr = self.regs.icr;
        let vector = icr as u8;
        let delivery_mode = DeliveryMode::from_bits((icr >> 8) as u32)?;
        let fixed = matches!(
            delivery_mode,
            DeliveryMode::Fixed | DeliveryMode::LowestPriority
        );
        if fixed && vector < 16 {
            self.record_error(ESR_SEND_ILLEGAL_VECTOR);
            return None;
        }
        let destination = match self.mode() {
            ApicMode::X2Apic => (icr >> 32) as u32,
            _ => (icr >> 56) as u32,
        };
        let message = InterruptMessage {
            vector,
            destination,
            destination_mode: DestinationMode::from_bit11(icr),
            delivery_mode,
            trigger: TriggerMode::from_bit15(icr),
        };
        let to_other = |shorthand| Some(LapicOutput::Ipi(Ipi { message, shorthand }));
        match (icr >> 18) & 3 {
            // Self: fixed only (other modes are invalid with this shorthand).
            1 => {
                if fixed {
                    self.accept(vector, TriggerMode::Edge);
                }
                None
            }
            2 => {
                if fixed {
                    self.accept(vector, TriggerMode::Edge);
                }
                to_other(Shorthand::AllExcludingSelf)
            }
            3 => to_other(Shorthand::AllExcludingSelf),
            _ => {
                let own = match self.mode() {
                    ApicMode::X2Apic => self.regs.id,
                    _ => self.regs.id & 0xff,
                };
                if fixed
                    && message.destination_mode == DestinationMode::Physical
                    && destination == own
                {
                    self.accept(vector, TriggerMode::Edge);
                    None
                } else {
                    to_other(Shorthand::None)
                }
            }
        }
    }

    /// Whether a message addressed to `destination` in `mode` is for this APIC: physical
    /// ID or broadcast (SDM 11.6.2.1, 11.12.9), logical flat or cluster model against
    /// LDR/DFR (11.6.2.2), x2APIC logical cluster (11.12.10.2).
    pub fn matches_destination(&self, destination: u32, mode: DestinationMode) -> bool {
        let x2 = self.mode() == ApicMode::X2Apic;
        match (mode, x2) {
            (_, _) if self.mode() == ApicMode::Disabled => false,
            (DestinationMode::Physical, true) => {
                destination == u32::MAX || destination == self.regs.id
            }
            (DestinationMode::Physical, false) => {
                let destination = destination & 0xff;
                destination == 0xff || destination == self.regs.id & 0xff
            }
            (DestinationMode::Logical, true) => {
                destination == u32::MAX
                    || (destination >> 16 == self.regs.ldr >> 16
                        && destination & self.regs.ldr & 0xffff != 0)
            }
            (DestinationMode::Logical, false) => {
                let destination = destination & 0xff;
                let logical = self.regs.ldr >> 24;
                if destination == 0xff {
                    true
                } else if self.regs.dfr >> 28 == 0xf {
                    // Flat model: one bit per APIC.
                    destination & logical != 0
                } else {
                    // Cluster model: cluster in bits 7:4, members in bits 3:0.
                    destination >> 4 == logical >> 4 && destination & logical & 0xf != 0
                }
            }
        }
    }
}
