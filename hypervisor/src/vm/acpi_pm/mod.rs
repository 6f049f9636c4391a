//! The ACPI PM1a event and control blocks the guest FADT announces (`guest_acpi::fadt`,
//! ports 0x600-0x603 and 0x604-0x605), the minimum a non-hardware-reduced ACPI platform has.
//!
//! Why they exist at all: the FADT is a full (not hardware-reduced) one because the PC legacy
//! devices (8259, 8254, RTC) are there, and such a FADT must name PM1a blocks (ACPI 6.5
//! §4.8.3). Linux's ACPI core then reads and writes them: it clears PM1_STS, disables every
//! fixed event in PM1_EN and reads the enables back (`Could not disable RealTimeClock
//! events` when ports read as all ones and ignore writes), and takes PM1_CNT.SCI_EN as "the
//! platform is in ACPI mode". tern has no fixed-event source (no power or sleep button, no
//! PM timer, no RTC alarm wired to ACPI), so no status bit is ever set and the SCI (ISA IRQ
//! 9, level, through the I/O APIC) is never asserted: the blocks only have to keep what
//! the guest writes, as hardware would:
//!
//! - PM1_STS (2 bytes at +0): write-one-to-clear status bits (§4.8.3.1.1, Table 4.16); reads
//!   as 0, since no event is ever raised.
//! - PM1_EN (2 bytes at +2): the enables of the fixed events of Table 4.17 that exist in
//!   the register (TMR, GBL, PWRBTN, SLPBTN, RTC, PCIEXP_WAKE_DIS) are kept; others read 0.
//! - PM1_CNT (2 bytes at 0x604): SCI_EN (bit 0) reads 1 (the FADT has no SMI command port, so
//!   the platform is always in ACPI mode, §4.8.2.1); SLP_TYP (bits 12:10) is kept; SLP_EN
//!   (bit 13) is write-only and reads 0 (§4.8.3.2.1, Table 4.18). A sleep request (SLP_EN with
//!   a SLP_TYP) is recorded for the VM to act on ([`SleepAction`]): the `\_S5_` type powers
//!   the VM off (it stops, as `vm stop` would; `vm start` boots it afresh); S1-S4 are not
//!   implemented (the DSDT does not announce them), so the write is ignored with a console
//!   line and the guest carries on as on hardware whose sleep failed.
//!
//! The state (enables, SLP_TYP) is migrated as device state `acpi-pm`.

pub mod state;
#[cfg(test)]
mod tests;

use crate::vm::guest_acpi::{PM1A_CNT_PORT, PM1A_EVT_PORT, S5_SLEEP_TYPE};

/// PM1_EN bits that exist (Table 4.17): TMR_EN 0, GBL_EN 5, PWRBTN_EN 8, SLPBTN_EN 9, RTC_EN
/// 10, PCIEXP_WAKE_DIS 14.
pub const PM1_EN_IMPLEMENTED: u16 =
    (1 << 0) | (1 << 5) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 14);
/// PM1_CNT.SCI_EN (Table 4.18).
pub const PM1_CNT_SCI_EN: u16 = 1 << 0;
/// PM1_CNT.SLP_TYP, bits 12:10.
pub const PM1_CNT_SLP_TYP: u16 = 0b111 << 10;
/// PM1_CNT.SLP_EN (write-only).
pub const PM1_CNT_SLP_EN: u16 = 1 << 13;

/// What the VM does with a guest's sleep request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepAction {
    /// `\_S5_` (soft off): the VM stops.
    PowerOff,
    /// A sleep type tern does not implement (the DSDT names only `\_S5_`): ignored.
    Unsupported(u8),
}

impl SleepAction {
    /// The action for a request of sleep type `slp_typ` (PM1_CNT.SLP_TYP, 0-7).
    pub fn for_sleep_type(slp_typ: u8) -> Self {
        if slp_typ == S5_SLEEP_TYPE {
            Self::PowerOff
        } else {
            Self::Unsupported(slp_typ)
        }
    }
}

/// The PM1a event and control registers of one VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcpiPm {
    /// PM1_EN as the guest left it (only [`PM1_EN_IMPLEMENTED`] bits).
    enable: u16,
    /// PM1_CNT.SLP_TYP as the guest left it (the bits in place, [`PM1_CNT_SLP_TYP`]).
    sleep_type: u16,
    /// The SLP_TYP of the last write with SLP_EN set, until taken.
    sleep_request: Option<u8>,
}

impl AcpiPm {
    /// Whether `port` is one of the PM1a blocks' bytes.
    pub fn handles_port(port: u16) -> bool {
        (PM1A_EVT_PORT..PM1A_EVT_PORT + 4).contains(&port)
            || (PM1A_CNT_PORT..PM1A_CNT_PORT + 2).contains(&port)
    }

    /// Reads one byte; `None` for a port that is not the PM1a blocks'.
    pub fn read(&self, port: u16) -> Option<u8> {
        let (word, high) = self.register(port)?;
        Some(word.to_le_bytes()[usize::from(high)])
    }

    /// Writes one byte; false for a port that is not the PM1a blocks'.
    pub fn write(&mut self, port: u16, byte: u8) -> bool {
        let Some(offset) = port.checked_sub(PM1A_EVT_PORT) else {
            return false;
        };
        let shift = if offset % 2 == 1 { 8 } else { 0 };
        let value = u16::from(byte) << shift;
        let lane = 0xffu16 << shift;
        match port {
            // PM1_STS: write-one-to-clear of bits that are never set.
            p if p == PM1A_EVT_PORT || p == PM1A_EVT_PORT + 1 => {}
            p if p == PM1A_EVT_PORT + 2 || p == PM1A_EVT_PORT + 3 => {
                self.enable = (self.enable & !lane) | (value & PM1_EN_IMPLEMENTED);
            }
            p if p == PM1A_CNT_PORT || p == PM1A_CNT_PORT + 1 => {
                self.sleep_type = (self.sleep_type & !lane) | (value & PM1_CNT_SLP_TYP);
                if value & PM1_CNT_SLP_EN != 0 {
                    self.sleep_request = Some((self.sleep_type >> 10) as u8);
                }
            }
            _ => return false,
        }
        true
    }

    /// The SLP_TYP of a sleep the guest requested since the last call (`\_S5_` is power-off).
    pub fn take_sleep_request(&mut self) -> Option<u8> {
        self.sleep_request.take()
    }

    /// The action for a sleep the guest requested since the last call.
    pub fn take_sleep_action(&mut self) -> Option<SleepAction> {
        self.take_sleep_request().map(SleepAction::for_sleep_type)
    }

    /// The 16-bit register holding `port` and whether `port` is its high byte.
    fn register(&self, port: u16) -> Option<(u16, bool)> {
        let high = port % 2 == 1;
        let word = match port & !1 {
            p if p == PM1A_EVT_PORT => 0,
            p if p == PM1A_EVT_PORT + 2 => self.enable,
            p if p == PM1A_CNT_PORT => self.sleep_type | PM1_CNT_SCI_EN,
            _ => return None,
        };
        Some((word, high))
    }
}
