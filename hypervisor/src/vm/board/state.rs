//! The board's migration: seven device states, one per model, each in its own versioned
//! encoding (`*State::encode`/`decode`, refused field by field on restore).
//!
//! Why one state per model rather than one for the board: each model's format is owned
//! and versioned by the model, the device-id table in docs/migration-protocol.md names
//! them, and a later multi-vCPU tern adds `lapic1`, `events1`, ... without a new board
//! format. Time needs no translation: every model keeps guest time (guest TSC for the
//! local APIC, guest nanoseconds derived from it for the PIT and RTC), and a migrated VM's
//! guest TSC continues where it stopped, at the rate its first host showed it
//! (`tsc-rate`, sent before these states so the clock is right when they load).

use alloc::vec::Vec;

use super::Board;
use crate::vm::acpi_pm::AcpiPm;
use crate::vm::acpi_pm::state::{self as acpi_pm_state, AcpiPmState};
use crate::vm::device_state_codec::StateError;
use crate::vm::interrupts::injector::EventInjector;
use crate::vm::interrupts::injector_state::{self, EventInjectorState};
use crate::vm::ioapic::IoApic;
use crate::vm::ioapic::state::{self as ioapic_state, IoApicState};
use crate::vm::lapic::Lapic;
use crate::vm::lapic::state::{self as lapic_state, LapicState};
use crate::vm::pic::DualPic;
use crate::vm::pic::state::{self as pic_state, DualPicState};
use crate::vm::pit::Pit;
use crate::vm::pit::state::{self as pit_state, PitState};
use crate::vm::rtc::Rtc;
use crate::vm::rtc::state::{self as rtc_state, RtcState};

/// Device-state ids (docs/migration-protocol.md, device-id table).
pub mod id {
    /// vCPU 0's local APIC.
    pub const LAPIC0: &str = "lapic0";
    /// The I/O APIC.
    pub const IOAPIC: &str = "ioapic";
    /// The 8259 pair with its ELCRs.
    pub const PIC: &str = "pic";
    /// The 8254 and port 0x61.
    pub const PIT: &str = "pit";
    /// The RTC and CMOS.
    pub const RTC: &str = "rtc";
    /// vCPU 0's pending and in-flight events.
    pub const EVENTS0: &str = "events0";
    /// The ACPI PM1a blocks (`vm::acpi_pm`).
    pub const ACPI_PM: &str = "acpi-pm";
}

/// One saved model: its id, format version and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedDevice {
    /// Device-state id.
    pub id: &'static str,
    /// Its encoding version.
    pub version: u16,
    /// The encoded state.
    pub data: Vec<u8>,
}

impl Board {
    /// The six states, in the order they are sent.
    pub fn save_devices(&self) -> [SavedDevice; 7] {
        let irq = &self.irq;
        [
            SavedDevice {
                id: id::LAPIC0,
                version: lapic_state::STATE_VERSION,
                data: irq.lapic.save().encode(),
            },
            SavedDevice {
                id: id::IOAPIC,
                version: ioapic_state::STATE_VERSION,
                data: irq.ioapic.save().encode(),
            },
            SavedDevice {
                id: id::PIC,
                version: pic_state::STATE_VERSION,
                data: irq.pic.save().encode(),
            },
            SavedDevice {
                id: id::PIT,
                version: pit_state::STATE_VERSION,
                data: self.pit.save().encode(),
            },
            SavedDevice {
                id: id::RTC,
                version: rtc_state::STATE_VERSION,
                data: self.rtc.save().encode(),
            },
            SavedDevice {
                id: id::EVENTS0,
                version: injector_state::STATE_VERSION,
                data: irq.injector.save().encode(),
            },
            SavedDevice {
                id: id::ACPI_PM,
                version: acpi_pm_state::STATE_VERSION,
                data: self.acpi_pm.save().encode(),
            },
        ]
    }

    /// Whether `id` at `version` is one of the board's states.
    pub fn owns_device(id: &str, version: u32) -> bool {
        let v = |n: u16| version == u32::from(n);
        match id {
            id::LAPIC0 => v(lapic_state::STATE_VERSION),
            id::IOAPIC => v(ioapic_state::STATE_VERSION),
            id::PIC => v(pic_state::STATE_VERSION),
            id::PIT => v(pit_state::STATE_VERSION),
            id::RTC => v(rtc_state::STATE_VERSION),
            id::EVENTS0 => v(injector_state::STATE_VERSION),
            id::ACPI_PM => v(acpi_pm_state::STATE_VERSION),
            _ => false,
        }
    }

    /// Load one state (an id [`Self::owns_device`] accepts); the model is replaced only if
    /// the whole state decodes and passes the model's checks.
    pub fn load_device(&mut self, id: &str, data: &[u8]) -> Result<(), StateError> {
        let config = self.lapic_config();
        let irq = &mut self.irq;
        match id {
            id::LAPIC0 => {
                irq.lapic = Lapic::restore(config, &LapicState::decode(data)?)?;
            }
            id::IOAPIC => irq.ioapic = IoApic::restore(&IoApicState::decode(data)?)?,
            id::PIC => irq.pic = DualPic::restore(&DualPicState::decode(data)?)?,
            id::PIT => self.pit = Pit::restore(&PitState::decode(data)?)?,
            id::RTC => self.rtc = Rtc::restore(&RtcState::decode(data)?)?,
            id::EVENTS0 => {
                irq.injector = EventInjector::restore(&EventInjectorState::decode(data)?)?;
            }
            id::ACPI_PM => self.acpi_pm = AcpiPm::restore(&AcpiPmState::decode(data)?)?,
            // Callers ask `owns_device` first; an unknown id changes nothing.
            _ => {}
        }
        Ok(())
    }
}
