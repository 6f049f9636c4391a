//! Save and restore of the 8259A pair for migration.
//!
//! Layout (little-endian, after the "PIC2" magic and `u16` version 1 header of
//! [`crate::vm::device_state_codec`]), master then slave, 10 bytes each:
//!
//! ```text
//! IRR  ISR  IMR  input lines  ELCR  vector base  init step (0-3)  lowest-priority IR
//! flags: bit 0 IC4, 1 single, 2 auto-EOI, 3 rotate in auto-EOI, 4 special fully nested,
//!        5 read ISR, 6 poll pending, 7 special mask
//! ICW3
//! ```
//!
//! Restore checks the ranges, the ELCR bits that do not exist, that level-triggered
//! requests match their input lines, and that the master's IR2 line equals the slave's
//! INT output (the cascade wire is not an input anybody else drives).

use alloc::vec::Vec;

use super::chip::{InitStep, Pic8259};
use super::{CASCADE_IRQ, DualPic, ELCR_MASTER_WRITABLE, ELCR_SLAVE_WRITABLE};
use crate::vm::device_state_codec::{StateError, StateReader, StateWriter, invalid};

const MAGIC: [u8; 4] = *b"PIC2";
/// Current encoding version.
pub const STATE_VERSION: u16 = 1;
const DEVICE: &str = "8259 PIC pair";

/// A saved PIC pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DualPicState(DualPic);

impl DualPic {
    /// The state to migrate.
    pub fn save(&self) -> DualPicState {
        DualPicState(self.clone())
    }

    /// Rebuilds the pair from a saved state, refusing impossible states.
    pub fn restore(state: &DualPicState) -> Result<Self, StateError> {
        let pic = &state.0;
        check_chip(&pic.master, ELCR_MASTER_WRITABLE)?;
        check_chip(&pic.slave, ELCR_SLAVE_WRITABLE)?;
        let cascade = pic.master.lines & (1 << CASCADE_IRQ) != 0;
        let cascade_requested = pic.master.irr & (1 << CASCADE_IRQ) != 0;
        if cascade != pic.slave.pending().is_some() || (cascade_requested && !cascade) {
            return Err(invalid(DEVICE, "master IR2 line", pic.master.lines.into()));
        }
        Ok(pic.clone())
    }
}

fn check_chip(chip: &Pic8259, elcr_writable: u8) -> Result<(), StateError> {
    if chip.vector_base & 7 != 0 {
        return Err(invalid(DEVICE, "vector base", chip.vector_base.into()));
    }
    if chip.lowest > 7 {
        return Err(invalid(DEVICE, "lowest priority", chip.lowest.into()));
    }
    if chip.elcr & !elcr_writable != 0 {
        return Err(invalid(DEVICE, "elcr", chip.elcr.into()));
    }
    if chip.irr & chip.elcr != chip.lines & chip.elcr {
        return Err(invalid(DEVICE, "irr (level lines)", chip.irr.into()));
    }
    Ok(())
}

fn encode_chip(w: &mut StateWriter, c: &Pic8259) {
    for byte in [
        c.irr,
        c.isr,
        c.imr,
        c.lines,
        c.elcr,
        c.vector_base,
        c.init_step as u8,
        c.lowest,
    ] {
        w.u8(byte);
    }
    let flags = [
        c.needs_icw4,
        c.single,
        c.auto_eoi,
        c.rotate_on_auto_eoi,
        c.special_fully_nested,
        c.read_isr,
        c.poll,
        c.special_mask,
    ]
    .iter()
    .enumerate()
    .fold(0u8, |acc, (bit, set)| acc | (u8::from(*set) << bit));
    w.u8(flags);
    w.u8(c.icw3);
}

fn decode_chip(r: &mut StateReader<'_>) -> Result<Pic8259, StateError> {
    let irr = r.u8("irr")?;
    let isr = r.u8("isr")?;
    let imr = r.u8("imr")?;
    let lines = r.u8("lines")?;
    let elcr = r.u8("elcr")?;
    let vector_base = r.u8("vector base")?;
    let step = r.u8("init step")?;
    let init_step = InitStep::from_u8(step).ok_or(invalid(DEVICE, "init step", step.into()))?;
    let lowest = r.u8("lowest priority")?;
    let flags = r.u8("flags")?;
    let icw3 = r.u8("icw3")?;
    let flag = |bit: u8| flags & (1 << bit) != 0;
    Ok(Pic8259 {
        irr,
        isr,
        imr,
        lines,
        elcr,
        vector_base,
        init_step,
        needs_icw4: flag(0),
        single: flag(1),
        icw3,
        auto_eoi: flag(2),
        rotate_on_auto_eoi: flag(3),
        special_fully_nested: flag(4),
        lowest,
        read_isr: flag(5),
        poll: flag(6),
        special_mask: flag(7),
    })
}

impl DualPicState {
    /// The migration encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = StateWriter::new(MAGIC, STATE_VERSION);
        encode_chip(&mut w, &self.0.master);
        encode_chip(&mut w, &self.0.slave);
        w.finish()
    }

    /// Parses [`Self::encode`] output; invariants are checked by [`DualPic::restore`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = StateReader::new(bytes, DEVICE, MAGIC, STATE_VERSION)?;
        let master = decode_chip(&mut r)?;
        let slave = decode_chip(&mut r)?;
        r.finish()?;
        Ok(Self(DualPic { master, slave }))
    }
}
