//! ATA command-block and control-block registers (ATA8-AAM 5.x; legacy ISA port
//! assignment as on every PC-compatible IDE controller in compatibility mode).

/// Command-block register offsets from the channel's base port.
pub mod reg {
    /// Data (16-bit PIO transfers).
    pub const DATA: u16 = 0;
    /// Error on read, Features on write.
    pub const ERROR: u16 = 1;
    /// Sector count (LBA48: high byte written first, then low).
    pub const SECTOR_COUNT: u16 = 2;
    /// LBA bits 7:0 (LBA48: then 31:24).
    pub const LBA_LOW: u16 = 3;
    /// LBA bits 15:8 (LBA48: then 39:32). Also the device signature after reset/IDENTIFY.
    pub const LBA_MID: u16 = 4;
    /// LBA bits 23:16 (LBA48: then 47:40). Also the device signature.
    pub const LBA_HIGH: u16 = 5;
    /// Device register: bit 6 LBA mode, bit 4 the drive (0 master, 1 slave).
    pub const DEVICE: u16 = 6;
    /// Status on read, Command on write.
    pub const STATUS: u16 = 7;
}

/// Status register bits.
pub mod status {
    /// The device is busy; no other bit is valid.
    pub const BSY: u8 = 0x80;
    /// The device is ready for commands.
    pub const DRDY: u8 = 0x40;
    /// Device fault.
    pub const DF: u8 = 0x20;
    /// Data request: the device is ready to transfer a data block.
    pub const DRQ: u8 = 0x08;
    /// The last command failed (details in the Error register).
    pub const ERR: u8 = 0x01;
}

/// Device Control register bits (written to the control block).
pub mod control {
    /// Interrupts off: we poll.
    pub const NIEN: u8 = 0x02;
}

/// Commands (ACS-2 7.x).
pub mod command {
    /// IDENTIFY DEVICE (7.16): 256 words describing the drive.
    pub const IDENTIFY: u8 = 0xec;
    /// READ SECTORS EXT (7.28), PIO, 48-bit LBA.
    pub const READ_SECTORS_EXT: u8 = 0x24;
    /// WRITE SECTORS EXT (7.58), PIO, 48-bit LBA.
    pub const WRITE_SECTORS_EXT: u8 = 0x34;
    /// FLUSH CACHE EXT (7.11).
    pub const FLUSH_CACHE_EXT: u8 = 0xea;
}

/// Device register value selecting `slave` (bit 4) in LBA mode (bit 6; bits 7 and 5 are
/// obsolete and set by convention).
pub fn device_select(slave: bool) -> u8 {
    0xe0 | if slave { 0x10 } else { 0 }
}

/// Most sectors one READ/WRITE SECTORS EXT moves: the count register pair is 16 bits, 0
/// meaning 65536; the driver uses at most 256 per command to keep each loop step short.
pub const MAX_SECTORS_PER_COMMAND: u16 = 256;

/// The values written to the LBA48 registers, in the order the standard requires
/// (ACS-2 7.28: "previous" contents first (high bytes), then "current" (low bytes)), as
/// `(register offset, value)` pairs. `count` 65536 is written as 0.
pub fn lba48_sequence(lba: u64, count: u32) -> [(u16, u8); 8] {
    let c = (count & 0xffff) as u16;
    [
        (reg::SECTOR_COUNT, (c >> 8) as u8),
        (reg::LBA_LOW, (lba >> 24) as u8),
        (reg::LBA_MID, (lba >> 32) as u8),
        (reg::LBA_HIGH, (lba >> 40) as u8),
        (reg::SECTOR_COUNT, c as u8),
        (reg::LBA_LOW, lba as u8),
        (reg::LBA_MID, (lba >> 8) as u8),
        (reg::LBA_HIGH, (lba >> 16) as u8),
    ]
}

/// Largest address 48-bit LBA can name, plus one.
pub const LBA48_LIMIT: u64 = 1 << 48;
