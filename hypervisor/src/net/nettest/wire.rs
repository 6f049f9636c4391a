//! nettest wire format: a header, the payload, a trailer; the receiver answers with a result.
//!
//! ```text
//! sender                                   receiver
//!   | "TNT1" version:u32 length:u64 seed:u64  |   header, 24 bytes, little endian
//!   | payload (length bytes, PayloadStream)   |
//!   | "TEND" crc32:u32                        |   trailer, 8 bytes
//!   |<---------------- "TRES" status:u32 -----|   result, 8 bytes (0 ok, 1 mismatch)
//!   | close                            close |
//! ```

/// Header length in bytes.
pub const HEADER_LEN: usize = 24;
/// Trailer length in bytes.
pub const TRAILER_LEN: usize = 8;
/// Result length in bytes.
pub const RESULT_LEN: usize = 8;

const HEADER_MAGIC: [u8; 4] = *b"TNT1";
const TRAILER_MAGIC: [u8; 4] = *b"TEND";
const RESULT_MAGIC: [u8; 4] = *b"TRES";
const VERSION: u32 = 1;

/// Largest transfer a receiver accepts (a sanity bound against a garbage header).
pub const MAX_TRANSFER: u64 = 1 << 40;

/// The transfer announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload bytes that follow.
    pub length: u64,
    /// Seed of the payload stream.
    pub seed: u64,
}

/// Why a received header, trailer or result was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Magic bytes did not match (not a nettest peer, or a corrupted stream).
    BadMagic,
    /// A version we do not speak.
    UnsupportedVersion(u32),
    /// Announced length above [`MAX_TRANSFER`].
    TooLong(u64),
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic => write!(f, "not a nettest stream (bad magic)"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported nettest version {v}"),
            Self::TooLong(len) => write!(f, "announced length {len} is too large"),
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

impl Header {
    /// Encode.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&HEADER_MAGIC);
        out[4..8].copy_from_slice(&VERSION.to_le_bytes());
        out[8..16].copy_from_slice(&self.length.to_le_bytes());
        out[16..24].copy_from_slice(&self.seed.to_le_bytes());
        out
    }

    /// Decode and validate.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Self, WireError> {
        if bytes[..4] != HEADER_MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = u32_at(bytes, 4);
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let length = u64_at(bytes, 8);
        if length > MAX_TRANSFER {
            return Err(WireError::TooLong(length));
        }
        Ok(Self {
            length,
            seed: u64_at(bytes, 16),
        })
    }
}

/// Encode the trailer carrying the sender's CRC-32 of the payload.
pub fn emit_trailer(crc: u32) -> [u8; TRAILER_LEN] {
    let mut out = [0u8; TRAILER_LEN];
    out[..4].copy_from_slice(&TRAILER_MAGIC);
    out[4..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decode the trailer.
pub fn parse_trailer(bytes: &[u8; TRAILER_LEN]) -> Result<u32, WireError> {
    if bytes[..4] != TRAILER_MAGIC {
        return Err(WireError::BadMagic);
    }
    Ok(u32_at(bytes, 4))
}

/// Encode the receiver's verdict.
pub fn emit_result(checksum_ok: bool) -> [u8; RESULT_LEN] {
    let mut out = [0u8; RESULT_LEN];
    out[..4].copy_from_slice(&RESULT_MAGIC);
    out[4..].copy_from_slice(&u32::from(!checksum_ok).to_le_bytes());
    out
}

/// Decode the receiver's verdict: `true` when the checksum matched.
pub fn parse_result(bytes: &[u8; RESULT_LEN]) -> Result<bool, WireError> {
    if bytes[..4] != RESULT_MAGIC {
        return Err(WireError::BadMagic);
    }
    Ok(u32_at(bytes, 4) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let header = Header {
            length: 5 << 20,
            seed: 42,
        };
        assert_eq!(Header::parse(&header.emit()), Ok(header));
        let mut bad = header.emit();
        bad[0] = b'X';
        assert_eq!(Header::parse(&bad), Err(WireError::BadMagic));
        let mut future = header.emit();
        future[4] = 2;
        assert_eq!(
            Header::parse(&future),
            Err(WireError::UnsupportedVersion(2))
        );
        let huge = Header {
            length: MAX_TRANSFER + 1,
            seed: 0,
        }
        .emit();
        assert_eq!(
            Header::parse(&huge),
            Err(WireError::TooLong(MAX_TRANSFER + 1))
        );
        assert_eq!(parse_trailer(&emit_trailer(0xdead_beef)), Ok(0xdead_beef));
        assert_eq!(parse_result(&emit_result(true)), Ok(true));
        assert_eq!(parse_result(&emit_result(false)), Ok(false));
        assert_eq!(parse_result(&emit_trailer(0)), Err(WireError::BadMagic));
    }
}
