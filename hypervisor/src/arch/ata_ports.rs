//! The legacy ATA channels' I/O ports behind `storage::ata::AtaPorts`: the only place the
//! host-disk driver's `in`/`out` instructions live.

use crate::storage::ata::ports::{AtaPorts, Channel};

use super::port;

/// Port access to one legacy ATA channel (ISA compatibility ports, ATA8-AAM).
#[derive(Debug)]
pub struct LegacyAtaPorts {
    base: u16,
    control: u16,
}

impl LegacyAtaPorts {
    /// Access to `channel`.
    ///
    /// # Safety
    /// The caller owns the channel: no other code (firmware included: UEFI boot services
    /// have been exited) drives its ports while this value lives, and there is exactly one
    /// value per channel.
    pub unsafe fn new(channel: Channel) -> Self {
        Self {
            base: channel.command_base(),
            control: channel.control_port(),
        }
    }
}

impl AtaPorts for LegacyAtaPorts {
    fn read_reg(&mut self, offset: u16) -> u8 {
        // SAFETY: this value owns the channel (constructor contract); reading a command-block
        // register only acknowledges the drive's interrupt, which is disabled (nIEN).
        unsafe { port::inb(self.base + offset) }
    }

    fn write_reg(&mut self, offset: u16, value: u8) {
        // SAFETY: this value owns the channel; the driver writes only command-block registers.
        unsafe { port::outb(self.base + offset, value) }
    }

    fn read_data(&mut self) -> u16 {
        // SAFETY: this value owns the channel; the driver reads data only while DRQ is set.
        unsafe { port::inw(self.base) }
    }

    fn write_data(&mut self, value: u16) {
        // SAFETY: this value owns the channel; the driver writes data only while DRQ is set.
        unsafe { port::outw(self.base, value) }
    }

    fn read_alt_status(&mut self) -> u8 {
        // SAFETY: Alternate Status has no side effects (ATA8-AAM); this value owns the channel.
        unsafe { port::inb(self.control) }
    }

    fn write_control(&mut self, value: u8) {
        // SAFETY: this value owns the channel; the driver only sets nIEN (never SRST).
        unsafe { port::outb(self.control, value) }
    }
}
