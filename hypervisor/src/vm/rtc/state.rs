//! Save and restore of the RTC/CMOS for migration.
//!
//! Layout (little-endian, after the "RTC1" magic and `u16` version 1 header of
//! [`crate::vm::device_state_codec`]): `u8` selected index, `u8` NMI disabled (0/1),
//! 128 CMOS bytes, `u64` wall-clock ns at the reference, `u64` reference guest ns, `u64`
//! wall-clock ns up to which interrupt events were processed.
//!
//! The wall clock travels as the source saw it: the destination keeps counting from the
//! source's reference (guest time continues across migration), so the guest's RTC does not
//! jump to the destination host's clock. Restore checks the index range, that register A
//! does not store UIP (it is computed), that register C's IRQF agrees with its flags and
//! register B's enables, that register D reads "valid RAM", and that SET and UIE are not
//! both on.

use alloc::vec::Vec;

use super::{A_UIP, B_SET, B_UIE, C_IRQF, CMOS_SIZE, D_VRT, REG_A, REG_B, REG_C, REG_D, Rtc};
use crate::vm::device_state_codec::{StateError, StateReader, StateWriter, invalid};

const MAGIC: [u8; 4] = *b"RTC1";
/// Current encoding version.
pub const STATE_VERSION: u16 = 1;
const DEVICE: &str = "CMOS RTC";

/// A saved RTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcState(Rtc);

impl Rtc {
    /// The state to migrate.
    pub fn save(&self) -> RtcState {
        RtcState(self.clone())
    }

    /// Rebuilds an RTC from a saved state, refusing impossible states.
    pub fn restore(state: &RtcState) -> Result<Self, StateError> {
        let rtc = &state.0;
        let reg = |i: u8| rtc.cmos[usize::from(i)];
        if rtc.index > 0x7f {
            return Err(invalid(DEVICE, "index", rtc.index.into()));
        }
        if reg(REG_A) & A_UIP != 0 {
            return Err(invalid(DEVICE, "register A", reg(REG_A).into()));
        }
        if reg(REG_B) & B_SET != 0 && reg(REG_B) & B_UIE != 0 {
            return Err(invalid(DEVICE, "register B", reg(REG_B).into()));
        }
        if reg(REG_D) != D_VRT {
            return Err(invalid(DEVICE, "register D", reg(REG_D).into()));
        }
        let c = reg(REG_C);
        let mut check = rtc.clone();
        check.cmos[usize::from(REG_C)] = c & !C_IRQF;
        check.update_irqf();
        if c & 0x0f != 0 || check.cmos[usize::from(REG_C)] != c {
            return Err(invalid(DEVICE, "register C", c.into()));
        }
        Ok(rtc.clone())
    }
}

impl RtcState {
    /// The migration encoding.
    pub fn encode(&self) -> Vec<u8> {
        let r = &self.0;
        let mut w = StateWriter::new(MAGIC, STATE_VERSION);
        w.u8(r.index);
        w.bool(r.nmi_disabled);
        for byte in r.cmos {
            w.u8(byte);
        }
        w.u64(r.wall_at_ref);
        w.u64(r.ref_ns);
        w.u64(r.events_through);
        w.finish()
    }

    /// Parses [`Self::encode`] output; invariants are checked by [`Rtc::restore`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = StateReader::new(bytes, DEVICE, MAGIC, STATE_VERSION)?;
        let index = r.u8("index")?;
        let nmi_disabled = r.bool("nmi disabled")?;
        let mut cmos = [0u8; CMOS_SIZE];
        for byte in &mut cmos {
            *byte = r.u8("cmos")?;
        }
        let wall_at_ref = r.u64("wall clock")?;
        let ref_ns = r.u64("reference time")?;
        let events_through = r.u64("events through")?;
        r.finish()?;
        Ok(Self(Rtc {
            index,
            nmi_disabled,
            cmos,
            wall_at_ref,
            ref_ns,
            events_through,
        }))
    }
}
