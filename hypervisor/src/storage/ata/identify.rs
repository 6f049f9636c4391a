//! Decoding IDENTIFY DEVICE data (ACS-2 7.16.7): what the driver needs to trust a drive.

use alloc::string::String;
use core::fmt;

/// What the driver takes from IDENTIFY DEVICE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveIdentity {
    /// Model number (words 27-46, two ASCII characters per word, high byte first), trimmed.
    pub model: String,
    /// Addressable sectors with 48-bit commands (words 100-103).
    pub sectors: u64,
}

/// Why IDENTIFY data is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifyError {
    /// Word 0 bit 15 set: not an ATA device (ACS-2 7.16.7.2).
    NotAta,
    /// Word 83 bit 10 clear: no 48-bit address feature set, which the driver requires.
    NoLba48,
    /// The drive reports no addressable sectors.
    NoSectors,
}

impl fmt::Display for IdentifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAta => write!(f, "the device says it is not an ATA disk"),
            Self::NoLba48 => write!(f, "the disk lacks 48-bit addressing (LBA48)"),
            Self::NoSectors => write!(f, "the disk reports 0 sectors"),
        }
    }
}

/// Decodes the 256 words of IDENTIFY DEVICE.
pub fn decode(words: &[u16; 256]) -> Result<DriveIdentity, IdentifyError> {
    if words[0] & 0x8000 != 0 {
        return Err(IdentifyError::NotAta);
    }
    if words[83] & (1 << 10) == 0 {
        return Err(IdentifyError::NoLba48);
    }
    let sectors = (0..4).fold(0u64, |acc, i| acc | (u64::from(words[100 + i]) << (16 * i)));
    if sectors == 0 {
        return Err(IdentifyError::NoSectors);
    }
    let mut model = String::new();
    for w in &words[27..47] {
        for b in [(w >> 8) as u8, *w as u8] {
            model.push(if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            });
        }
    }
    let model = String::from(model.trim());
    Ok(DriveIdentity { model, sectors })
}
