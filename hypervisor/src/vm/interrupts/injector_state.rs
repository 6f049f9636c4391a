//! Save and restore of the event injector (in-flight and queued events) for migration.
//!
//! Layout (little-endian, after the "EVNT" magic and `u16` version 1 header of
//! [`crate::vm::device_state_codec`]): `u8` NMI pending, then the re-injection event and
//! the queued exception, each as `u8` present, `u8` type, `u8` vector, `u8` error code
//! present, `u32` error code, `u32` instruction length (all zero when absent).
//!
//! An event found in the IDT-vectoring field at the source's last exit must be delivered
//! by the destination's first VM entry, or the guest loses an interrupt or an exception;
//! that is why this small state travels. Restore checks the types, that exceptions are
//! vectors 0-31 with an error code exactly when the vector pushes one, that an NMI is
//! vector 2, and that only instruction-sourced events carry an instruction length (1-15).

use alloc::vec::Vec;

use super::injector::{Event, EventInjector, EventKind, event_kind};
use crate::vm::device_state_codec::{StateError, StateReader, StateWriter, invalid};

const MAGIC: [u8; 4] = *b"EVNT";
/// Current encoding version.
pub const STATE_VERSION: u16 = 1;
const DEVICE: &str = "event injector";

/// A saved event injector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInjectorState(EventInjector);

impl EventInjector {
    /// The state to migrate.
    pub fn save(&self) -> EventInjectorState {
        EventInjectorState(self.clone())
    }

    /// Rebuilds the injector from a saved state, refusing impossible events.
    pub fn restore(state: &EventInjectorState) -> Result<Self, StateError> {
        let s = &state.0;
        for event in [s.reinject, s.exception].into_iter().flatten() {
            check_event(&event)?;
        }
        if let Some(e) = s.exception
            && e.kind != EventKind::HardwareException
        {
            return Err(invalid(DEVICE, "queued exception type", e.kind as u64));
        }
        Ok(s.clone())
    }
}

fn check_event(e: &Event) -> Result<(), StateError> {
    e.check()
        .map_err(|rule| invalid(DEVICE, rule, u64::from(e.vector)))
}

fn encode_event(w: &mut StateWriter, e: Option<Event>) {
    w.bool(e.is_some());
    let e = e.unwrap_or(Event {
        kind: EventKind::ExternalInterrupt,
        vector: 0,
        error_code: None,
        instruction_len: 0,
    });
    w.u8(e.kind as u8);
    w.u8(e.vector);
    w.bool(e.error_code.is_some());
    w.u32(e.error_code.unwrap_or(0));
    w.u32(e.instruction_len);
}

fn decode_event(r: &mut StateReader<'_>) -> Result<Option<Event>, StateError> {
    let present = r.bool("event present")?;
    let kind_bits = r.u8("event type")?;
    let vector = r.u8("event vector")?;
    let has_error = r.bool("error code present")?;
    let error = r.u32("error code")?;
    let instruction_len = r.u32("instruction length")?;
    if !present {
        if (kind_bits, vector, has_error, error, instruction_len) != (0, 0, false, 0, 0) {
            return Err(invalid(DEVICE, "absent event", kind_bits.into()));
        }
        return Ok(None);
    }
    let kind = event_kind(kind_bits.into())
        .filter(|k| *k as u8 == kind_bits)
        .ok_or(invalid(DEVICE, "event type", kind_bits.into()))?;
    if !has_error && error != 0 {
        return Err(invalid(DEVICE, "error code", error.into()));
    }
    Ok(Some(Event {
        kind,
        vector,
        error_code: has_error.then_some(error),
        instruction_len,
    }))
}

impl EventInjectorState {
    /// The migration encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = StateWriter::new(MAGIC, STATE_VERSION);
        w.bool(self.0.nmi_pending);
        encode_event(&mut w, self.0.reinject);
        encode_event(&mut w, self.0.exception);
        w.finish()
    }

    /// Parses [`Self::encode`] output; invariants are checked by [`EventInjector::restore`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = StateReader::new(bytes, DEVICE, MAGIC, STATE_VERSION)?;
        let nmi_pending = r.bool("nmi pending")?;
        let reinject = decode_event(&mut r)?;
        let exception = decode_event(&mut r)?;
        r.finish()?;
        Ok(Self(EventInjector {
            reinject,
            exception,
            nmi_pending,
        }))
    }
}
