//! The byte encoding shared by the interrupt and timer device models' saved states.
//!
//! Why one codec: the LAPIC, I/O APIC, PIC, PIT, RTC and event injector all travel in the
//! migration protocol's `DeviceState` message as opaque bytes, and a peer controls those
//! bytes. Writing the header, bounds and length checks once means every model gets the same
//! guarantees: little-endian fields, a 4-byte magic naming the device, a `u16` version
//! first, an exact length (truncated and trailing bytes are both errors), and booleans that
//! must be 0 or 1 so that every accepted image re-encodes to the same bytes (canonical).
//! The layout of each model is documented in its own `state.rs`; field validation (reserved
//! bits, ranges) is the model's job and produces [`StateError::InvalidField`].

use alloc::vec::Vec;
use core::fmt;

/// Why a saved device state was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The state ends before the field `field`.
    Truncated {
        /// Which device's state.
        device: &'static str,
        /// The field that did not fit.
        field: &'static str,
    },
    /// The state has bytes after its last field.
    TrailingBytes {
        /// Which device's state.
        device: &'static str,
        /// How many extra bytes.
        extra: usize,
    },
    /// The state does not start with the device's magic.
    BadMagic {
        /// Which device's state (and so the magic expected).
        device: &'static str,
    },
    /// The state was written by an encoding version this build does not know.
    UnsupportedVersion {
        /// Which device's state.
        device: &'static str,
        /// Version found in the state.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// A field has a value the device cannot be in.
    InvalidField {
        /// Which device's state.
        device: &'static str,
        /// The field's name.
        field: &'static str,
        /// The value found.
        value: u64,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { device, field } => {
                write!(f, "{device} state truncated at field {field}")
            }
            Self::TrailingBytes { device, extra } => {
                write!(f, "{device} state has {extra} trailing bytes")
            }
            Self::BadMagic { device } => write!(f, "{device} state has a bad magic"),
            Self::UnsupportedVersion {
                device,
                found,
                supported,
            } => write!(
                f,
                "{device} state version {found} is not supported (this build reads {supported})"
            ),
            Self::InvalidField {
                device,
                field,
                value,
            } => write!(
                f,
                "{device} state field {field} has invalid value {value:#x}"
            ),
        }
    }
}

/// Shorthand for a field-validation failure.
pub(crate) fn invalid(device: &'static str, field: &'static str, value: u64) -> StateError {
    StateError::InvalidField {
        device,
        field,
        value,
    }
}

/// Appends little-endian fields after a magic and version header.
pub(crate) struct StateWriter {
    out: Vec<u8>,
}

impl StateWriter {
    pub(crate) fn new(magic: [u8; 4], version: u16) -> Self {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&magic);
        out.extend_from_slice(&version.to_le_bytes());
        Self { out }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// An optional `u64`: a presence byte, then the value (0 when absent).
    pub(crate) fn opt_u64(&mut self, v: Option<u64>) {
        self.bool(v.is_some());
        self.u64(v.unwrap_or(0));
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Reads little-endian fields after checking the magic and version; every read is bounds
/// checked and names the field it wanted.
pub(crate) struct StateReader<'a> {
    device: &'static str,
    rest: &'a [u8],
}

impl<'a> StateReader<'a> {
    pub(crate) fn new(
        bytes: &'a [u8],
        device: &'static str,
        magic: [u8; 4],
        version: u16,
    ) -> Result<Self, StateError> {
        let mut r = Self {
            device,
            rest: bytes,
        };
        let found_magic = r.take::<4>("magic")?;
        if found_magic != magic {
            return Err(StateError::BadMagic { device });
        }
        let found = r.u16("version")?;
        if found != version {
            return Err(StateError::UnsupportedVersion {
                device,
                found,
                supported: version,
            });
        }
        Ok(r)
    }

    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], StateError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(StateError::Truncated {
                device: self.device,
                field,
            })?;
        self.rest = tail;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, StateError> {
        Ok(self.take::<1>(field)?[0])
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, StateError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(invalid(self.device, field, u64::from(v))),
        }
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, StateError> {
        Ok(u16::from_le_bytes(self.take(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, StateError> {
        Ok(u32::from_le_bytes(self.take(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, StateError> {
        Ok(u64::from_le_bytes(self.take(field)?))
    }

    /// The counterpart of [`StateWriter::opt_u64`]; an absent value must be encoded as 0.
    pub(crate) fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, StateError> {
        let present = self.bool(field)?;
        let value = self.u64(field)?;
        match (present, value) {
            (true, v) => Ok(Some(v)),
            (false, 0) => Ok(None),
            (false, v) => Err(invalid(self.device, field, v)),
        }
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), StateError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(StateError::TrailingBytes {
                device: self.device,
                extra: self.rest.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = *b"TEST";

    #[test]
    fn round_trip_and_errors() {
        let mut w = StateWriter::new(MAGIC, 3);
        w.u8(7);
        w.bool(true);
        w.u16(0x1234);
        w.u32(0xdead_beef);
        w.u64(u64::MAX);
        w.opt_u64(None);
        w.opt_u64(Some(5));
        let bytes = w.finish();
        let mut r = StateReader::new(&bytes, "test", MAGIC, 3).unwrap();
        assert_eq!(r.u8("a").unwrap(), 7);
        assert!(r.bool("b").unwrap());
        assert_eq!(r.u16("c").unwrap(), 0x1234);
        assert_eq!(r.u32("d").unwrap(), 0xdead_beef);
        assert_eq!(r.u64("e").unwrap(), u64::MAX);
        assert_eq!(r.opt_u64("f").unwrap(), None);
        assert_eq!(r.opt_u64("g").unwrap(), Some(5));
        r.finish().unwrap();

        assert!(matches!(
            StateReader::new(&bytes, "test", *b"XXXX", 3),
            Err(StateError::BadMagic { .. })
        ));
        assert!(matches!(
            StateReader::new(&bytes, "test", MAGIC, 4),
            Err(StateError::UnsupportedVersion { found: 3, .. })
        ));
        assert!(matches!(
            StateReader::new(&bytes[..5], "test", MAGIC, 3),
            Err(StateError::Truncated {
                field: "version",
                ..
            })
        ));
        let mut r = StateReader::new(&bytes, "test", MAGIC, 3).unwrap();
        assert_eq!(r.bool("x"), Err(invalid("test", "x", 7)));
        let r = StateReader::new(&bytes, "test", MAGIC, 3).unwrap();
        assert!(matches!(
            r.finish(),
            Err(StateError::TrailingBytes { extra: 34, .. })
        ));
    }
}
