//! The migration key as tern hosts are configured with it: 64 hex digits (`[migration] key`
//! in tern.cfg), here in a file of its own so it never appears on a command line.

use std::fmt;
use std::path::Path;

use migration_proto::crypto::PreSharedKey;

/// Why a key file was refused.
#[derive(Debug)]
pub enum KeyFileError {
    /// The file could not be read.
    Io(std::io::Error),
    /// The contents are not exactly 64 hex digits (surrounding whitespace is allowed).
    NotAKey,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Io(e) => write!(f, "cannot read the key file: {e}"),
            KeyFileError::NotAKey => write!(
                f,
                "the key file must hold 64 hex digits (the hosts' [migration] key)"
            ),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// Parses the key text: 64 hex digits, whitespace around them ignored.
pub fn parse_key(text: &str) -> Result<PreSharedKey, KeyFileError> {
    let digits = text.trim().as_bytes();
    if digits.len() != 64 {
        return Err(KeyFileError::NotAKey);
    }
    let mut key = [0u8; 32];
    for (slot, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| KeyFileError::NotAKey)?;
        if !pair.iter().all(u8::is_ascii_hexdigit) {
            return Err(KeyFileError::NotAKey);
        }
        *slot = u8::from_str_radix(text, 16).map_err(|_| KeyFileError::NotAKey)?;
    }
    Ok(PreSharedKey::new(key))
}

/// Reads and parses a key file.
pub fn read_key_file(path: &Path) -> Result<PreSharedKey, KeyFileError> {
    parse_key(&std::fs::read_to_string(path).map_err(KeyFileError::Io)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_64_hex_digits_with_a_newline() {
        let text = format!("{}\n", "0a".repeat(32));
        assert!(parse_key(&text).is_ok());
    }

    #[test]
    fn refuses_short_long_and_non_hex_keys() {
        for text in [
            "0a".repeat(31),
            "0a".repeat(33),
            format!("{}zz", "0a".repeat(31)),
        ] {
            assert!(
                matches!(parse_key(&text), Err(KeyFileError::NotAKey)),
                "{text}"
            );
        }
        // A sign is not a hex digit even though from_str_radix would take it.
        assert!(parse_key(&format!("+a{}", "0a".repeat(31))).is_err());
    }
}
