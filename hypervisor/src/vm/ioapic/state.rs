//! Save and restore of the I/O APIC for migration.
//!
//! Layout (little-endian, after the "IOAP" magic and `u16` version 1 header of
//! [`crate::vm::device_state_codec`]): `u8` ID, `u8` IOREGSEL, `u32` pin levels (bit n =
//! pin n asserted), 24 x `u64` redirection entries. Restore checks the ID range, reserved
//! entry bits, that remote IRR appears only on level entries, and that no pin beyond 23 is
//! asserted.

use alloc::vec::Vec;

use super::{ENTRY_REMOTE_IRR, ENTRY_WRITABLE, IOAPIC_PINS, IoApic};
use crate::vm::device_state_codec::{StateError, StateReader, StateWriter, invalid};
use crate::vm::interrupts::message::TriggerMode;

const MAGIC: [u8; 4] = *b"IOAP";
/// Current encoding version.
pub const STATE_VERSION: u16 = 1;
const DEVICE: &str = "I/O APIC";

/// A saved I/O APIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoApicState(IoApic);

impl IoApic {
    /// The state to migrate.
    pub fn save(&self) -> IoApicState {
        IoApicState(self.clone())
    }

    /// Rebuilds an I/O APIC from a saved state, refusing impossible states.
    pub fn restore(state: &IoApicState) -> Result<Self, StateError> {
        let s = &state.0;
        if s.id > 0xf {
            return Err(invalid(DEVICE, "id", s.id.into()));
        }
        if s.pin_levels >> IOAPIC_PINS != 0 {
            return Err(invalid(DEVICE, "pin_levels", s.pin_levels.into()));
        }
        for entry in s.entries {
            let allowed = ENTRY_WRITABLE
                | if TriggerMode::from_bit15(entry) == TriggerMode::Level {
                    ENTRY_REMOTE_IRR
                } else {
                    0
                };
            if entry & !allowed != 0 {
                return Err(invalid(DEVICE, "redirection entry", entry));
            }
        }
        Ok(s.clone())
    }
}

impl IoApicState {
    /// The migration encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = StateWriter::new(MAGIC, STATE_VERSION);
        w.u8(self.0.id);
        w.u8(self.0.ioregsel);
        w.u32(self.0.pin_levels);
        for entry in self.0.entries {
            w.u64(entry);
        }
        w.finish()
    }

    /// Parses [`Self::encode`] output; invariants are checked by [`IoApic::restore`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = StateReader::new(bytes, DEVICE, MAGIC, STATE_VERSION)?;
        let id = r.u8("id")?;
        let ioregsel = r.u8("ioregsel")?;
        let pin_levels = r.u32("pin_levels")?;
        let mut entries = [0u64; IOAPIC_PINS];
        for entry in &mut entries {
            *entry = r.u64("redirection entry")?;
        }
        r.finish()?;
        Ok(Self(IoApic {
            id,
            ioregsel,
            entries,
            pin_levels,
        }))
    }
}
