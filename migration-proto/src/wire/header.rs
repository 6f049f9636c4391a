//! The fixed 24-byte frame header.
//!
//! ```text
//!  0       4        6        8            12           16                  24
//!  +-------+--------+--------+------------+------------+-------------------+
//!  | magic | type   | flags  | payload_len| reserved=0 | sequence number   |
//!  | "TRNM"| u16 LE | u16 LE | u32 LE     | u32        | u64 LE            |
//!  +-------+--------+--------+------------+------------+-------------------+
//!  followed by payload_len bytes of payload, then a 16-byte tag if flags has TAGGED
//! ```
//!
//! The raw layout is a `zerocopy` struct (no unsafe, no alignment requirement); `FrameHeader`
//! is the checked representation the rest of the crate uses.

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{DecodeError, MAX_PAYLOAD_LEN, MessageType};

/// The four bytes every frame starts with.
pub const FRAME_MAGIC: [u8; 4] = *b"TRNM";

/// Length of the frame header on the wire.
pub const FRAME_HEADER_LEN: usize = 24;

/// The header exactly as it is on the wire.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FrameHeaderRaw {
    /// `FRAME_MAGIC`.
    pub magic: [u8; 4],
    /// `MessageType` code.
    pub msg_type: U16,
    /// `FrameFlags` bits.
    pub flags: U16,
    /// Payload length in bytes, tag excluded.
    pub payload_len: U32,
    /// Must be zero.
    pub reserved: U32,
    /// Per-direction frame counter, starting at 0 with the first frame.
    pub seq: U64,
}

const _: () = assert!(core::mem::size_of::<FrameHeaderRaw>() == FRAME_HEADER_LEN);

/// Frame flag bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FrameFlags(u16);

impl FrameFlags {
    /// No flags: a handshake frame, not authenticated by a tag.
    pub const NONE: FrameFlags = FrameFlags(0);
    /// A 16-byte tag follows the payload.
    pub const TAGGED: FrameFlags = FrameFlags(1);
    /// The payload is ChaCha20-Poly1305 ciphertext (always together with `TAGGED`).
    pub const ENCRYPTED: FrameFlags = FrameFlags(2);
    const KNOWN: u16 = 3;

    /// Raw bits.
    pub fn bits(self) -> u16 {
        self.0
    }

    /// Union of two flag sets.
    pub fn with(self, other: FrameFlags) -> FrameFlags {
        FrameFlags(self.0 | other.0)
    }

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: FrameFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Parses flag bits, rejecting unknown ones and ENCRYPTED without TAGGED.
    pub fn from_bits(bits: u16) -> Result<Self, DecodeError> {
        let flags = FrameFlags(bits);
        if bits & !Self::KNOWN != 0
            || (flags.contains(Self::ENCRYPTED) && !flags.contains(Self::TAGGED))
        {
            return Err(DecodeError::UnknownFlags(bits));
        }
        Ok(flags)
    }
}

/// A checked frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Message carried by the frame.
    pub msg_type: MessageType,
    /// Tagged / encrypted.
    pub flags: FrameFlags,
    /// Payload length (tag excluded), at most `MAX_PAYLOAD_LEN`.
    pub payload_len: u32,
    /// Sequence number.
    pub seq: u64,
}

impl FrameHeader {
    /// Parses and checks the header at the start of `bytes`.
    ///
    /// Returns `Ok(None)` when fewer than `FRAME_HEADER_LEN` bytes are available. The length
    /// limit is checked here, before any payload is buffered.
    pub fn parse(bytes: &[u8]) -> Result<Option<FrameHeader>, DecodeError> {
        let Ok((raw, _)) = FrameHeaderRaw::ref_from_prefix(bytes) else {
            // Even a partial header must start with (a prefix of) the magic: fail fast on
            // garbage instead of waiting for 24 bytes that will never make sense.
            let n = bytes.len().min(4);
            if bytes[..n] != FRAME_MAGIC[..n] {
                let mut found = [0u8; 4];
                found[..n].copy_from_slice(&bytes[..n]);
                return Err(DecodeError::BadMagic { found });
            }
            return Ok(None);
        };
        if raw.magic != FRAME_MAGIC {
            return Err(DecodeError::BadMagic { found: raw.magic });
        }
        let msg_type = MessageType::from_code(raw.msg_type.get())?;
        let flags = FrameFlags::from_bits(raw.flags.get())?;
        if raw.reserved.get() != 0 {
            return Err(DecodeError::ReservedNotZero);
        }
        let payload_len = raw.payload_len.get();
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(DecodeError::FrameTooLarge {
                len: payload_len,
                max: MAX_PAYLOAD_LEN,
            });
        }
        Ok(Some(FrameHeader {
            msg_type,
            flags,
            payload_len,
            seq: raw.seq.get(),
        }))
    }

    /// The wire bytes of this header.
    pub fn to_bytes(&self) -> [u8; FRAME_HEADER_LEN] {
        let raw = FrameHeaderRaw {
            magic: FRAME_MAGIC,
            msg_type: U16::new(self.msg_type.code()),
            flags: U16::new(self.flags.bits()),
            payload_len: U32::new(self.payload_len),
            reserved: U32::new(0),
            seq: U64::new(self.seq),
        };
        let mut out = [0u8; FRAME_HEADER_LEN];
        out.copy_from_slice(raw.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_bad_fields() {
        let h = FrameHeader {
            msg_type: MessageType::Pages,
            flags: FrameFlags::TAGGED,
            payload_len: 77,
            seq: 9,
        };
        let bytes = h.to_bytes();
        assert_eq!(FrameHeader::parse(&bytes), Ok(Some(h)));
        assert_eq!(FrameHeader::parse(&bytes[..10]), Ok(None));
        let mut bad = bytes;
        bad[0] = b'X';
        assert!(matches!(
            FrameHeader::parse(&bad[..2]),
            Err(DecodeError::BadMagic { .. })
        ));
        let mut big = bytes;
        big[8..12].copy_from_slice(&(MAX_PAYLOAD_LEN + 1).to_le_bytes());
        assert!(matches!(
            FrameHeader::parse(&big),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        let mut flags = bytes;
        flags[6] = 2; // ENCRYPTED without TAGGED
        assert_eq!(
            FrameHeader::parse(&flags),
            Err(DecodeError::UnknownFlags(2))
        );
        let mut res = bytes;
        res[13] = 1;
        assert_eq!(FrameHeader::parse(&res), Err(DecodeError::ReservedNotZero));
    }
}
