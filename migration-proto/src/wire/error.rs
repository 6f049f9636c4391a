//! The decode error enum: every way bytes from a peer can fail to be a valid frame or message.

use core::fmt;

/// Why a header or a message payload was rejected. Decoders return this for any input and
/// never panic; the variant says precisely which rule was broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside the named field.
    Truncated {
        /// Field being read.
        field: &'static str,
    },
    /// The message was complete but bytes were left over.
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// The frame does not start with the protocol magic.
    BadMagic {
        /// The four bytes found instead.
        found: [u8; 4],
    },
    /// The frame header names a message type this implementation does not know.
    UnknownMessageType(u16),
    /// The frame header has flag bits this implementation does not know.
    UnknownFlags(u16),
    /// The reserved header field is not zero.
    ReservedNotZero,
    /// The frame header announces a payload above the protocol maximum.
    FrameTooLarge {
        /// Announced payload length.
        len: u32,
        /// Largest accepted payload length.
        max: u32,
    },
    /// A field holds a value outside its allowed range.
    InvalidValue {
        /// Field name.
        field: &'static str,
        /// Value found (widened).
        value: u64,
    },
    /// A text field is not UTF-8.
    InvalidUtf8 {
        /// Field name.
        field: &'static str,
    },
    /// A list or byte string is longer than its limit.
    TooLong {
        /// Field name.
        field: &'static str,
        /// Length found.
        len: usize,
        /// Largest accepted length.
        max: usize,
    },
    /// The same key appears twice in a list that must not repeat (CPUID leaf, MSR index).
    Duplicate {
        /// Field name.
        field: &'static str,
        /// The repeated key.
        key: u64,
    },
    /// An LZ4-encoded page did not decompress to exactly one page.
    BadCompressedPage {
        /// Index of the page inside its run.
        index: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { field } => write!(f, "input ends inside field `{field}`"),
            DecodeError::TrailingBytes { count } => {
                write!(f, "{count} unexpected bytes after the end of the message")
            }
            DecodeError::BadMagic { found } => write!(f, "bad frame magic {found:02x?}"),
            DecodeError::UnknownMessageType(code) => write!(f, "unknown message type {code:#06x}"),
            DecodeError::UnknownFlags(flags) => write!(f, "unknown frame flags {flags:#06x}"),
            DecodeError::ReservedNotZero => write!(f, "reserved header field is not zero"),
            DecodeError::FrameTooLarge { len, max } => {
                write!(
                    f,
                    "frame payload of {len} bytes exceeds the maximum of {max}"
                )
            }
            DecodeError::InvalidValue { field, value } => {
                write!(f, "field `{field}` has invalid value {value:#x}")
            }
            DecodeError::InvalidUtf8 { field } => write!(f, "field `{field}` is not UTF-8"),
            DecodeError::TooLong { field, len, max } => {
                write!(f, "field `{field}` has length {len}, more than {max}")
            }
            DecodeError::Duplicate { field, key } => {
                write!(f, "field `{field}` repeats key {key:#x}")
            }
            DecodeError::BadCompressedPage { index } => {
                write!(
                    f,
                    "LZ4 page {index} of the run does not decompress to one page"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}
