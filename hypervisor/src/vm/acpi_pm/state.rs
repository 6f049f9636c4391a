//! Migration state of the PM1a blocks: PM1_EN and PM1_CNT.SLP_TYP (device `acpi-pm`).
//! PM1_STS is always 0 and a pending sleep request is acted on (or not) by the source.

use alloc::vec::Vec;

use super::{AcpiPm, PM1_CNT_SLP_TYP, PM1_EN_IMPLEMENTED};
use crate::vm::device_state_codec::{StateError, StateReader, StateWriter, invalid};

const MAGIC: [u8; 4] = *b"PM1A";
/// Version of the `acpi-pm` encoding.
pub const STATE_VERSION: u16 = 1;
const DEVICE: &str = "ACPI PM1a blocks";

/// The saved registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiPmState {
    enable: u16,
    sleep_type: u16,
}

impl AcpiPm {
    /// The state to migrate.
    pub fn save(&self) -> AcpiPmState {
        AcpiPmState {
            enable: self.enable,
            sleep_type: self.sleep_type,
        }
    }

    /// The model with `state`; bits no register implements are refused.
    pub fn restore(state: &AcpiPmState) -> Result<Self, StateError> {
        if state.enable & !PM1_EN_IMPLEMENTED != 0 {
            return Err(invalid(DEVICE, "pm1_en", state.enable.into()));
        }
        if state.sleep_type & !PM1_CNT_SLP_TYP != 0 {
            return Err(invalid(DEVICE, "slp_typ", state.sleep_type.into()));
        }
        Ok(Self {
            enable: state.enable,
            sleep_type: state.sleep_type,
            sleep_request: None,
        })
    }
}

impl AcpiPmState {
    /// The migration encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = StateWriter::new(MAGIC, STATE_VERSION);
        w.u16(self.enable);
        w.u16(self.sleep_type);
        w.finish()
    }

    /// Parses [`Self::encode`] output; [`AcpiPm::restore`] checks the bits.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = StateReader::new(bytes, DEVICE, MAGIC, STATE_VERSION)?;
        let enable = r.u16("pm1_en")?;
        let sleep_type = r.u16("slp_typ")?;
        r.finish()?;
        Ok(Self { enable, sleep_type })
    }
}
