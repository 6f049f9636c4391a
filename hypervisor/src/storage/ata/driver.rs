//! The polled PIO driver: probe a drive, then read, write and flush whole sectors.
//!
//! Every wait is bounded (a count of status polls, not time: the driver has no clock and
//! must not hang the hypervisor on a dead controller); a drive that stays busy is reported
//! as [`AtaError::Timeout`], and one that sets ERR or DF as [`AtaError::Device`] with the
//! Error register, so an operator sees which drive failed and how.

use core::fmt;

use super::identify::{self, DriveIdentity, IdentifyError};
use super::ports::{AtaPorts, DrivePosition, DriveSlot};
use super::regs::{self, command, control, reg, status};

/// Status polls before a wait gives up. Bochs answers PIO at once; a real drive may take
/// up to seconds to spin up, which a real-server driver would handle with a timer.
pub const MAX_STATUS_POLLS: u32 = 1_000_000;

/// Bytes per ATA sector (the driver refuses drives with larger logical sectors by reading
/// only 512-byte-sector drives' IDENTIFY data: words 106/117 are not consulted).
pub const ATA_SECTOR: usize = 512;

/// Why an ATA operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtaError {
    /// Nothing answers at this slot (floating bus, or status 0 after IDENTIFY).
    NoDrive(DriveSlot),
    /// The device is ATAPI or SATA-behind-something, not a PATA/ATA disk.
    NotAtaDisk(DriveSlot),
    /// IDENTIFY data was unusable.
    Identify(DriveSlot, IdentifyError),
    /// The drive stayed busy (or never asked for data) for [`MAX_STATUS_POLLS`] polls.
    Timeout {
        /// The drive.
        slot: DriveSlot,
        /// What the driver was waiting for.
        waiting_for: &'static str,
    },
    /// The drive set ERR or DF.
    Device {
        /// The drive.
        slot: DriveSlot,
        /// Status register.
        status: u8,
        /// Error register.
        error: u8,
    },
    /// A request past the end of the drive or not a whole number of sectors.
    BadRequest {
        /// First sector.
        lba: u64,
        /// Bytes.
        len: usize,
    },
}

impl fmt::Display for AtaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDrive(s) => write!(f, "no drive at {s}"),
            Self::NotAtaDisk(s) => write!(f, "{s} is not an ATA disk (ATAPI or SATA signature)"),
            Self::Identify(s, e) => write!(f, "{s}: {e}"),
            Self::Timeout { slot, waiting_for } => {
                write!(f, "{slot} timed out waiting for {waiting_for}")
            }
            Self::Device {
                slot,
                status,
                error,
            } => write!(
                f,
                "{slot} reported an error (status {status:#04x}, error {error:#04x})"
            ),
            Self::BadRequest { lba, len } => write!(
                f,
                "{len} bytes at LBA {lba} are not whole sectors inside the disk"
            ),
        }
    }
}

/// A probed ATA disk on a channel.
pub struct AtaDisk<P: AtaPorts> {
    ports: P,
    slot: DriveSlot,
    identity: DriveIdentity,
}

impl<P: AtaPorts> fmt::Debug for AtaDisk<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtaDisk")
            .field("slot", &self.slot)
            .field("identity", &self.identity)
            .finish()
    }
}

impl<P: AtaPorts> AtaDisk<P> {
    /// Selects the drive at `slot`, disables its interrupts, sends IDENTIFY DEVICE and
    /// keeps the drive if it is an LBA48 ATA disk (ACS-2 7.16; the signature check follows
    /// ATA8-AAM "device signatures": LBA Mid/High 0x14/0xEB ATAPI, 0x3C/0xC3 SATA).
    pub fn probe(mut ports: P, slot: DriveSlot) -> Result<Self, AtaError> {
        ports.write_control(control::NIEN);
        select(&mut ports, slot);
        if ports.read_reg(reg::STATUS) == 0xff {
            return Err(AtaError::NoDrive(slot));
        }
        ports.write_reg(reg::SECTOR_COUNT, 0);
        ports.write_reg(reg::LBA_LOW, 0);
        ports.write_reg(reg::LBA_MID, 0);
        ports.write_reg(reg::LBA_HIGH, 0);
        ports.write_reg(reg::STATUS, command::IDENTIFY);
        settle(&mut ports);
        if ports.read_reg(reg::STATUS) == 0 {
            return Err(AtaError::NoDrive(slot));
        }
        wait_not_busy(&mut ports, slot, "IDENTIFY to finish")?;
        if ports.read_reg(reg::LBA_MID) != 0 || ports.read_reg(reg::LBA_HIGH) != 0 {
            return Err(AtaError::NotAtaDisk(slot));
        }
        wait_drq(&mut ports, slot, "IDENTIFY data")?;
        let mut words = [0u16; 256];
        for w in words.iter_mut() {
            *w = ports.read_data();
        }
        let identity = identify::decode(&words).map_err(|e| AtaError::Identify(slot, e))?;
        Ok(Self {
            ports,
            slot,
            identity,
        })
    }

    /// Where the drive is.
    pub fn slot(&self) -> DriveSlot {
        self.slot
    }

    /// What the drive said about itself.
    pub fn identity(&self) -> &DriveIdentity {
        &self.identity
    }

    /// The port access (host tests inspect their fake through it).
    pub fn ports_mut(&mut self) -> &mut P {
        &mut self.ports
    }

    /// Sectors on the drive.
    pub fn sectors(&self) -> u64 {
        self.identity.sectors
    }

    fn check(&self, lba: u64, len: usize) -> Result<u64, AtaError> {
        let bad = AtaError::BadRequest { lba, len };
        if len == 0 || !len.is_multiple_of(ATA_SECTOR) {
            return Err(bad);
        }
        let count = (len / ATA_SECTOR) as u64;
        let end = lba.checked_add(count).ok_or(bad.clone())?;
        if end > self.identity.sectors || end > regs::LBA48_LIMIT {
            return Err(bad);
        }
        Ok(count)
    }

    fn issue(&mut self, lba: u64, count: u32, cmd: u8) -> Result<(), AtaError> {
        wait_not_busy(&mut self.ports, self.slot, "the drive to be idle")?;
        select(&mut self.ports, self.slot);
        for (offset, value) in regs::lba48_sequence(lba, count) {
            self.ports.write_reg(offset, value);
        }
        self.ports.write_reg(reg::STATUS, cmd);
        settle(&mut self.ports);
        Ok(())
    }

    /// Reads `buf.len()` bytes (whole sectors) from `lba`.
    pub fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), AtaError> {
        self.check(lba, buf.len())?;
        let per_cmd = usize::from(regs::MAX_SECTORS_PER_COMMAND) * ATA_SECTOR;
        for (i, chunk) in buf.chunks_mut(per_cmd).enumerate() {
            let at = lba + (i * usize::from(regs::MAX_SECTORS_PER_COMMAND)) as u64;
            let count = (chunk.len() / ATA_SECTOR) as u32;
            self.issue(at, count, command::READ_SECTORS_EXT)?;
            for sector in chunk.chunks_mut(ATA_SECTOR) {
                wait_drq(&mut self.ports, self.slot, "read data")?;
                for pair in sector.chunks_mut(2) {
                    let w = self.ports.read_data();
                    pair.copy_from_slice(&w.to_le_bytes());
                }
            }
            self.finish("the read to complete")?;
        }
        Ok(())
    }

    /// Writes `data` (whole sectors) at `lba`.
    pub fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), AtaError> {
        self.check(lba, data.len())?;
        let per_cmd = usize::from(regs::MAX_SECTORS_PER_COMMAND) * ATA_SECTOR;
        for (i, chunk) in data.chunks(per_cmd).enumerate() {
            let at = lba + (i * usize::from(regs::MAX_SECTORS_PER_COMMAND)) as u64;
            let count = (chunk.len() / ATA_SECTOR) as u32;
            self.issue(at, count, command::WRITE_SECTORS_EXT)?;
            for sector in chunk.chunks(ATA_SECTOR) {
                wait_drq(&mut self.ports, self.slot, "the drive to accept data")?;
                for pair in sector.chunks(2) {
                    self.ports
                        .write_data(u16::from_le_bytes([pair[0], pair[1]]));
                }
            }
            self.finish("the write to complete")?;
        }
        Ok(())
    }

    /// Makes every written sector durable (FLUSH CACHE EXT, ACS-2 7.11).
    pub fn flush(&mut self) -> Result<(), AtaError> {
        wait_not_busy(&mut self.ports, self.slot, "the drive to be idle")?;
        select(&mut self.ports, self.slot);
        self.ports.write_reg(reg::STATUS, command::FLUSH_CACHE_EXT);
        settle(&mut self.ports);
        self.finish("the flush to complete")
    }

    fn finish(&mut self, what: &'static str) -> Result<(), AtaError> {
        wait_not_busy(&mut self.ports, self.slot, what)?;
        let s = self.ports.read_reg(reg::STATUS);
        if s & (status::ERR | status::DF) != 0 {
            return Err(device_error(&mut self.ports, self.slot, s));
        }
        Ok(())
    }
}

fn select<P: AtaPorts>(ports: &mut P, slot: DriveSlot) {
    ports.write_reg(
        reg::DEVICE,
        regs::device_select(slot.position == DrivePosition::Slave),
    );
    settle(ports);
}

/// The 400 ns a drive may take to post a valid status after a command or selection
/// (ATA8-AAM): four Alternate Status reads of ~100 ns each on ISA timing.
fn settle<P: AtaPorts>(ports: &mut P) {
    for _ in 0..4 {
        ports.read_alt_status();
    }
}

fn device_error<P: AtaPorts>(ports: &mut P, slot: DriveSlot, status: u8) -> AtaError {
    AtaError::Device {
        slot,
        status,
        error: ports.read_reg(reg::ERROR),
    }
}

fn wait_not_busy<P: AtaPorts>(
    ports: &mut P,
    slot: DriveSlot,
    waiting_for: &'static str,
) -> Result<u8, AtaError> {
    for _ in 0..MAX_STATUS_POLLS {
        let s = ports.read_alt_status();
        if s & status::BSY == 0 {
            return Ok(s);
        }
    }
    Err(AtaError::Timeout { slot, waiting_for })
}

fn wait_drq<P: AtaPorts>(
    ports: &mut P,
    slot: DriveSlot,
    waiting_for: &'static str,
) -> Result<(), AtaError> {
    for _ in 0..MAX_STATUS_POLLS {
        let s = ports.read_reg(reg::STATUS);
        if s & status::BSY != 0 {
            continue;
        }
        if s & (status::ERR | status::DF) != 0 {
            return Err(device_error(ports, slot, s));
        }
        if s & status::DRQ != 0 {
            return Ok(());
        }
    }
    Err(AtaError::Timeout { slot, waiting_for })
}
