//! Finding the S5 (soft-off) sleep type in AML without an AML interpreter.
//!
//! Powering off through ACPI needs the `SLP_TYPa`/`SLP_TYPb` values of the `\_S5_` object,
//! which firmware defines in the DSDT as `Name (_S5, Package () { a, b, ... })`. A full AML
//! interpreter is a large piece of code to trust for one constant, so we decode just that
//! construct (ACPI 6.5 §20.2 "AML Grammar Definition"):
//!
//! ```text
//! NameOp(0x08) ['\'] '_S5_' PackageOp(0x12) PkgLength NumElements(byte) element element ...
//! element := ZeroOp(0x00) | OneOp(0x01) | BytePrefix(0x0A) byte
//!          | WordPrefix(0x0B) u16 | DWordPrefix(0x0C) u32
//! ```
//!
//! Firmware that computes `_S5` in a method is not supported; the caller then falls back to
//! UEFI `ResetSystem`.

/// `SLP_TYPa` and `SLP_TYPb` for a sleep state (3-bit fields of PM1x_CNT, ACPI 6.5 §4.8.3.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SleepType {
    pub a: u8,
    pub b: u8,
}

/// Why `\_S5_` could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S5Error {
    /// No `NameOp _S5_` in the table.
    NotFound,
    /// `_S5_` is not a package of integer constants we can decode.
    Malformed,
}

impl core::fmt::Display for S5Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            S5Error::NotFound => write!(f, "no \\_S5_ object in the DSDT"),
            S5Error::Malformed => write!(f, "\\_S5_ in the DSDT is not a package of constants"),
        }
    }
}

const NAME_OP: u8 = 0x08;
const ROOT_PREFIX: u8 = b'\\';
const PACKAGE_OP: u8 = 0x12;

/// Decodes an AML integer constant at the start of `aml`: (value, bytes used).
fn integer(aml: &[u8]) -> Option<(u64, usize)> {
    match *aml.first()? {
        0x00 => Some((0, 1)),
        0x01 => Some((1, 1)),
        0x0a => Some((*aml.get(1)? as u64, 2)),
        0x0b => Some((
            u16::from_le_bytes(aml.get(1..3)?.try_into().ok()?) as u64,
            3,
        )),
        0x0c => Some((
            u32::from_le_bytes(aml.get(1..5)?.try_into().ok()?) as u64,
            5,
        )),
        _ => None,
    }
}

/// Decodes the package that follows a `_S5_` name at `aml` (which starts at PackageOp).
fn package(aml: &[u8]) -> Option<SleepType> {
    if *aml.first()? != PACKAGE_OP {
        return None;
    }
    // PkgLength: bits 7:6 of the lead byte count the bytes that follow it.
    let lead = *aml.get(1)?;
    let mut at = 2 + (lead >> 6) as usize;
    let elements = *aml.get(at)?;
    at += 1;
    if elements == 0 {
        return None;
    }
    let (a, used) = integer(aml.get(at..)?)?;
    at += used;
    let b = if elements >= 2 {
        integer(aml.get(at..)?)?.0
    } else {
        0
    };
    Some(SleepType {
        a: (a & 7) as u8,
        b: (b & 7) as u8,
    })
}

/// Finds `Name(_S5, Package(){...})` in an AML byte stream (a DSDT or SSDT body).
pub fn find_s5(aml: &[u8]) -> Result<SleepType, S5Error> {
    let mut found_name = false;
    for i in 0..aml.len().saturating_sub(3) {
        if &aml[i..i + 4] != b"_S5_" {
            continue;
        }
        let named = match i {
            0 => false,
            1 => aml[0] == NAME_OP,
            _ => aml[i - 1] == NAME_OP || (aml[i - 1] == ROOT_PREFIX && aml[i - 2] == NAME_OP),
        };
        if !named {
            continue;
        }
        found_name = true;
        if let Some(t) = package(&aml[i + 4..]) {
            return Ok(t);
        }
    }
    Err(if found_name {
        S5Error::Malformed
    } else {
        S5Error::NotFound
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_common_encodings() {
        // QEMU: Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero })
        let qemu = [
            0x10, 0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0, 0, 0, 0,
        ];
        assert_eq!(find_s5(&qemu), Ok(SleepType { a: 0, b: 0 }));
        // Byte-prefixed values, root prefix: Name (\_S5, Package () { 0x05, 0x05 })
        let bp = [
            0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x08, 0x02, 0x0a, 0x05, 0x0a, 0x05,
        ];
        assert_eq!(find_s5(&bp), Ok(SleepType { a: 5, b: 5 }));
        // Two-byte PkgLength, word and One encodings.
        let wide = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x40, 0x01, 0x02, 0x0b, 0x07, 0x00, 0x01,
        ];
        assert_eq!(find_s5(&wide), Ok(SleepType { a: 7, b: 1 }));
        // Single element: b defaults to 0.
        let one = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x04, 0x01, 0x0c, 6, 0, 0, 0,
        ];
        assert_eq!(find_s5(&one), Ok(SleepType { a: 6, b: 0 }));
    }

    #[test]
    fn references_are_skipped_and_bad_packages_reported() {
        // A bare reference to _S5_ (no NameOp) before the real definition is skipped.
        let aml = [
            0x70, b'_', b'S', b'5', b'_', 0x08, b'_', b'S', b'5', b'_', 0x12, 0x05, 0x02, 0x0a, 3,
            0x00,
        ];
        assert_eq!(find_s5(&aml), Ok(SleepType { a: 3, b: 0 }));
        assert_eq!(find_s5(b"\x70_S5_\x00"), Err(S5Error::NotFound));
        assert_eq!(find_s5(b""), Err(S5Error::NotFound));
        // A method, not a package.
        assert_eq!(find_s5(b"\x08_S5_\x14\x05"), Err(S5Error::Malformed));
        // Truncated package.
        assert_eq!(
            find_s5(b"\x08_S5_\x12\x05\x02\x0a"),
            Err(S5Error::Malformed)
        );
        assert_eq!(find_s5(b"\x08_S5_\x12\x05\x00"), Err(S5Error::Malformed));
        assert_eq!(find_s5(b"_S5_"), Err(S5Error::NotFound));
    }
}
