//! Save and restore of the PIT for migration.
//!
//! Layout (little-endian, after the "PIT4" magic and `u16` version 1 header of
//! [`crate::vm::device_state_codec`]): `u8` port 0x61 bits 3:0, then per counter:
//!
//! ```text
//! u8 mode (0-5)  u8 access (1-3)  u8 BCD  u16 count register  u8 count written
//! u8+u64 start (present, ns)  u8+u64 pending low byte  u8 read high next
//! u8+u64 latched count  u8 latch high next  u8+u64 latched status  u8 gate
//! u64 edges reported (ticks since start)
//! ```
//!
//! Times are guest ns; the guest clock continues across migration, so they stay valid.
//! Restore checks ranges, that only a started counter has reported edges, and that the
//! gate of counter 2 agrees with port 0x61 bit 0 (counters 0 and 1 are tied high).

use alloc::vec::Vec;

use super::channel::{Access, Channel};
use super::{PORT61_WRITABLE, Pit};
use crate::vm::device_state_codec::{StateError, StateReader, StateWriter, invalid};

const MAGIC: [u8; 4] = *b"PIT4";
/// Current encoding version.
pub const STATE_VERSION: u16 = 1;
const DEVICE: &str = "8254 PIT";

/// A saved PIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitState(Pit);

impl Pit {
    /// The state to migrate.
    pub fn save(&self) -> PitState {
        PitState(self.clone())
    }

    /// Rebuilds a PIT from a saved state, refusing impossible states.
    pub fn restore(state: &PitState) -> Result<Self, StateError> {
        let pit = &state.0;
        if pit.port61 & !PORT61_WRITABLE != 0 {
            return Err(invalid(DEVICE, "port 0x61", pit.port61.into()));
        }
        for (i, c) in pit.channels.iter().enumerate() {
            if c.mode > 5 {
                return Err(invalid(DEVICE, "mode", c.mode.into()));
            }
            let gate_ok = if i == 2 {
                c.gate == (pit.port61 & 1 != 0)
            } else {
                c.gate
            };
            if !gate_ok {
                return Err(invalid(DEVICE, "gate", u64::from(c.gate)));
            }
            if c.start.is_none() && c.edges_reported != 0 {
                return Err(invalid(DEVICE, "edges reported", c.edges_reported));
            }
            if c.start.is_some() && !c.count_written {
                return Err(invalid(DEVICE, "start (no count written)", 1));
            }
            if c.latch_high_next && (c.latched_count.is_none() || c.access != Access::LowThenHigh) {
                return Err(invalid(DEVICE, "latch high next", 1));
            }
            if c.read_high_next && c.access != Access::LowThenHigh {
                return Err(invalid(DEVICE, "read high next", 1));
            }
            if c.pending_low.is_some() && c.access != Access::LowThenHigh {
                return Err(invalid(DEVICE, "pending low byte", 1));
            }
        }
        Ok(pit.clone())
    }
}

fn to_u8(field: &'static str, v: Option<u64>) -> Result<Option<u8>, StateError> {
    v.map(|v| u8::try_from(v).map_err(|_| invalid(DEVICE, field, v)))
        .transpose()
}

fn to_u16(field: &'static str, v: Option<u64>) -> Result<Option<u16>, StateError> {
    v.map(|v| u16::try_from(v).map_err(|_| invalid(DEVICE, field, v)))
        .transpose()
}

impl PitState {
    /// The migration encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = StateWriter::new(MAGIC, STATE_VERSION);
        w.u8(self.0.port61);
        for c in &self.0.channels {
            w.u8(c.mode);
            w.u8(c.access as u8);
            w.bool(c.bcd);
            w.u16(c.reload);
            w.bool(c.count_written);
            w.opt_u64(c.start);
            w.opt_u64(c.pending_low.map(u64::from));
            w.bool(c.read_high_next);
            w.opt_u64(c.latched_count.map(u64::from));
            w.bool(c.latch_high_next);
            w.opt_u64(c.latched_status.map(u64::from));
            w.bool(c.gate);
            w.u64(c.edges_reported);
        }
        w.finish()
    }

    /// Parses [`Self::encode`] output; invariants are checked by [`Pit::restore`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = StateReader::new(bytes, DEVICE, MAGIC, STATE_VERSION)?;
        let port61 = r.u8("port 0x61")?;
        let mut channels = [Channel::new(true), Channel::new(true), Channel::new(false)];
        for c in &mut channels {
            c.mode = r.u8("mode")?;
            let access = r.u8("access")?;
            c.access = Access::from_bits(access).ok_or(invalid(DEVICE, "access", access.into()))?;
            c.bcd = r.bool("bcd")?;
            c.reload = r.u16("count register")?;
            c.count_written = r.bool("count written")?;
            c.start = r.opt_u64("start")?;
            c.pending_low = to_u8("pending low byte", r.opt_u64("pending low byte")?)?;
            c.read_high_next = r.bool("read high next")?;
            c.latched_count = to_u16("latched count", r.opt_u64("latched count")?)?;
            c.latch_high_next = r.bool("latch high next")?;
            c.latched_status = to_u8("latched status", r.opt_u64("latched status")?)?;
            c.gate = r.bool("gate")?;
            c.edges_reported = r.u64("edges reported")?;
        }
        r.finish()?;
        Ok(Self(Pit { channels, port61 }))
    }
}
