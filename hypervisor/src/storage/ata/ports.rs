//! What the ATA driver needs from the platform: byte access to a channel's registers and
//! 16-bit access to its data port. The bare-metal implementation is `arch::ata_ports`
//! (the only place with `in`/`out`); host tests use `fake_device`.

use core::fmt;

/// A legacy ATA channel (ISA compatibility ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Command block 0x1f0, control 0x3f6 (IRQ 14).
    Primary,
    /// Command block 0x170, control 0x376 (IRQ 15).
    Secondary,
}

impl Channel {
    /// Base port of the command block.
    pub fn command_base(self) -> u16 {
        match self {
            Self::Primary => 0x1f0,
            Self::Secondary => 0x170,
        }
    }

    /// The control block's Device Control / Alternate Status port.
    pub fn control_port(self) -> u16 {
        match self {
            Self::Primary => 0x3f6,
            Self::Secondary => 0x376,
        }
    }
}

/// Master or slave on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrivePosition {
    /// Device 0.
    Master,
    /// Device 1.
    Slave,
}

/// One drive: channel and position, named like Bochs does (`ata1-master`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriveSlot {
    /// The channel.
    pub channel: Channel,
    /// The position.
    pub position: DrivePosition,
}

/// Why a drive name is not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDriveName;

impl fmt::Display for BadDriveName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected an ATA drive: ata0-master, ata0-slave, ata1-master or ata1-slave"
        )
    }
}

impl DriveSlot {
    /// Parses `ata0-master` .. `ata1-slave`.
    pub fn parse(name: &str) -> Result<Self, BadDriveName> {
        let (chan, pos) = name.split_once('-').ok_or(BadDriveName)?;
        let channel = match chan {
            "ata0" => Channel::Primary,
            "ata1" => Channel::Secondary,
            _ => return Err(BadDriveName),
        };
        let position = match pos {
            "master" => DrivePosition::Master,
            "slave" => DrivePosition::Slave,
            _ => return Err(BadDriveName),
        };
        Ok(Self { channel, position })
    }
}

impl fmt::Display for DriveSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chan = match self.channel {
            Channel::Primary => 0,
            Channel::Secondary => 1,
        };
        let pos = match self.position {
            DrivePosition::Master => "master",
            DrivePosition::Slave => "slave",
        };
        write!(f, "ata{chan}-{pos}")
    }
}

/// Register access to one channel. Reads can have side effects (reading Status
/// acknowledges an interrupt; reading Data advances the transfer), hence `&mut self`.
pub trait AtaPorts {
    /// Reads the command-block register at `offset` (1..=7; see `regs::reg`).
    fn read_reg(&mut self, offset: u16) -> u8;
    /// Writes the command-block register at `offset`.
    fn write_reg(&mut self, offset: u16, value: u8);
    /// Reads one word from the Data register.
    fn read_data(&mut self) -> u16;
    /// Writes one word to the Data register.
    fn write_data(&mut self, value: u16);
    /// Reads Alternate Status (no side effects; used for the 400 ns settle delay).
    fn read_alt_status(&mut self) -> u8;
    /// Writes Device Control.
    fn write_control(&mut self, value: u8);
}
