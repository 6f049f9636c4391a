//! Checked little-endian cursor over a message payload, and its writing counterpart.
//!
//! Every read is bounds-checked and names the field it was reading, so a truncated message
//! produces `DecodeError::Truncated { field }` instead of a panic or a silent zero.

use alloc::string::String;
use alloc::vec::Vec;

use super::DecodeError;

/// Reads fields from a payload, front to back.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `payload`.
    pub fn new(payload: &'a [u8]) -> Self {
        Reader { rest: payload }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Takes the next `len` bytes.
    pub fn bytes(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < len {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    /// Takes the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, field)?);
        Ok(out)
    }

    /// Reads a byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Reads a little-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    /// Reads a little-endian u64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// Reads a boolean byte that must be 0 or 1.
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::InvalidValue {
                field,
                value: v.into(),
            }),
        }
    }

    /// Reads a list length (u16) and checks it against `max`.
    pub fn count16(&mut self, field: &'static str, max: usize) -> Result<usize, DecodeError> {
        let len = usize::from(self.u16(field)?);
        check_len(field, len, max)
    }

    /// Reads a byte string with a u32 length prefix of at most `max` bytes.
    pub fn blob32(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.u32(field)?).unwrap_or(usize::MAX);
        let len = check_len(field, len, max)?;
        self.bytes(len, field)
    }

    /// Reads UTF-8 text with a u16 length prefix of at most `max` bytes.
    pub fn text16(&mut self, field: &'static str, max: usize) -> Result<String, DecodeError> {
        let len = self.count16(field, max)?;
        let raw = self.bytes(len, field)?;
        core::str::from_utf8(raw)
            .map(String::from)
            .map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    /// Checks that the whole payload was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                count: self.rest.len(),
            })
        }
    }
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<usize, DecodeError> {
    if len > max {
        Err(DecodeError::TooLong { field, len, max })
    } else {
        Ok(len)
    }
}

/// Appends fields to a payload buffer, little-endian.
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// Appends to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Appends a byte.
    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    /// Appends a little-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    /// Appends a little-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    /// Appends a little-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// Appends a boolean byte.
    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    /// Appends a u16 list length. Callers validate lengths against the same limits the
    /// decoder enforces; a longer list is clamped here and the decoder will reject it.
    pub fn count16(&mut self, len: usize) {
        self.u16(u16::try_from(len).unwrap_or(u16::MAX));
    }

    /// Appends a byte string with a u32 length prefix.
    pub fn blob32(&mut self, bytes: &[u8]) {
        self.u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        self.bytes(bytes);
    }

    /// Appends text with a u16 length prefix.
    pub fn text16(&mut self, text: &str) {
        self.count16(text.len());
        self.bytes(text.as_bytes());
    }
}
