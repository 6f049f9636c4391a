//! Typed value parsers. Each returns the parsed value or the text of what was expected, which
//! the caller wraps with section, key and value into a
//! [`ConfigErrorKind::InvalidValue`](super::ConfigErrorKind::InvalidValue).
//!
//! All of them work on `&str` with `char`/byte iterators and checked arithmetic only, so no
//! input can make them index out of bounds, split a UTF-8 sequence or overflow.

use alloc::string::{String, ToString};
use core::net::Ipv4Addr;
use core::str::FromStr;

use super::MAX_NAME_LEN;

pub(crate) const NAME_EXPECTED: &str = "1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'";

/// A host or VM name: 1..=[`MAX_NAME_LEN`] of `[A-Za-z0-9_-]`.
pub(crate) fn name(text: &str) -> Result<String, &'static str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if text.is_empty() || text.len() > MAX_NAME_LEN || !text.chars().all(allowed) {
        return Err(NAME_EXPECTED);
    }
    Ok(text.to_string())
}

/// A plain decimal number (digits only, no sign, no separators) that fits a `u64`.
pub(crate) fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// A decimal `u32` in `min..=u32::MAX`.
pub(crate) fn u32_at_least(
    text: &str,
    min: u32,
    expected: &'static str,
) -> Result<u32, &'static str> {
    decimal(text)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n >= min)
        .ok_or(expected)
}

/// A TCP port, 1..=65535.
pub(crate) fn port(text: &str) -> Result<u16, &'static str> {
    decimal(text)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n != 0)
        .ok_or("a TCP port number from 1 to 65535")
}

/// An MTU in bytes, in [`MTU_RANGE`](super::MTU_RANGE).
pub(crate) fn mtu(text: &str) -> Result<u16, &'static str> {
    decimal(text)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| super::MTU_RANGE.contains(n))
        .ok_or("an MTU in bytes from 576 to 9000")
}

/// `yes`, `no`, `true` or `false`.
pub(crate) fn boolean(text: &str) -> Result<bool, &'static str> {
    match text {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err("yes, no, true or false"),
    }
}

const IPV4_EXPECTED: &str = "an IPv4 address like 10.0.0.254";

/// A dotted-quad IPv4 address (no leading zeros in an octet, as `core::net` requires).
pub(crate) fn ipv4(text: &str) -> Result<[u8; 4], &'static str> {
    Ipv4Addr::from_str(text)
        .map(|a| a.octets())
        .map_err(|_| IPV4_EXPECTED)
}

/// `a.b.c.d/prefix` with prefix 1..=32.
pub(crate) fn ipv4_with_prefix(text: &str) -> Result<([u8; 4], u8), &'static str> {
    const EXPECTED: &str = "an IPv4 address with prefix length 1-32, like 10.0.0.1/24";
    let (address, prefix) = text.split_once('/').ok_or(EXPECTED)?;
    let address = ipv4(address).map_err(|_| EXPECTED)?;
    let prefix = decimal(prefix)
        .and_then(|p| u8::try_from(p).ok())
        .filter(|p| (1..=32).contains(p))
        .ok_or(EXPECTED)?;
    Ok((address, prefix))
}

/// Value of one ASCII hex digit.
fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Two hex digits to a byte.
fn hex_byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [hi, lo] => Some(hex_digit(*hi)? << 4 | hex_digit(*lo)?),
        _ => None,
    }
}

/// A unicast MAC address written `52:54:00:12:34:56` (either hex case).
pub(crate) fn mac(text: &str) -> Result<[u8; 6], &'static str> {
    const EXPECTED: &str = "a unicast MAC address like 52:54:00:12:34:56 (first octet even)";
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for slot in &mut out {
        *slot = parts
            .next()
            .and_then(|p| hex_byte(p.as_bytes()))
            .ok_or(EXPECTED)?;
    }
    if parts.next().is_some() || out[0] & 1 != 0 {
        return Err(EXPECTED);
    }
    Ok(out)
}

/// A 32-byte key as exactly 64 hex digits (either case).
pub(crate) fn key256(text: &str) -> Result<[u8; 32], &'static str> {
    const EXPECTED: &str = "64 hex digits (a 32-byte key)";
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return Err(EXPECTED);
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *slot = hex_byte(pair).ok_or(EXPECTED)?;
    }
    Ok(out)
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Guest memory size: decimal bytes, or with a `K`, `M` or `G` suffix (binary units, either
/// case); a multiple of 4 KiB in 1 MiB..=64 GiB.
pub(crate) fn memory_size(text: &str) -> Result<u64, &'static str> {
    let (digits, unit) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (text.get(..at).unwrap_or(""), KIB),
        Some((at, 'm' | 'M')) => (text.get(..at).unwrap_or(""), MIB),
        Some((at, 'g' | 'G')) => (text.get(..at).unwrap_or(""), GIB),
        _ => (text, 1),
    };
    let bytes = decimal(digits)
        .and_then(|n| n.checked_mul(unit))
        .ok_or("a size like 64M: bytes, or a number with a K, M or G suffix")?;
    if !(MIB..=64 * GIB).contains(&bytes) {
        return Err("a size from 1M to 64G");
    }
    if bytes % (4 * KIB) != 0 {
        return Err("a multiple of 4K");
    }
    Ok(bytes)
}

/// A path on the ESP: components separated by `/` or `\` (one optional leading separator),
/// none empty, `.` or `..`, and no character FAT forbids (`"*:<>?|`).
pub(crate) fn image_path(text: &str) -> Result<String, &'static str> {
    const EXPECTED: &str =
        "a file path on the ESP like tern/guests/hb.elf, without '..', '.' or empty components";
    let relative = text.strip_prefix(['/', '\\']).unwrap_or(text);
    let bad_char = |c: char| matches!(c, '"' | '*' | ':' | '<' | '>' | '?' | '|');
    if relative.is_empty() || relative.contains(bad_char) {
        return Err(EXPECTED);
    }
    let bad_component = |c: &str| c.is_empty() || c == "." || c == "..";
    if relative.split(['/', '\\']).any(bad_component) {
        return Err(EXPECTED);
    }
    Ok(text.to_string())
}

/// A CPU model name (`[vm] cpu`): `host` or a baseline's name, 1-32 characters of
/// `a-z 0-9 _ -` (either case; kept lower-cased). Whether the hypervisor knows the model is
/// checked when it creates the VM, which lists the models it has.
pub(crate) fn cpu_model(text: &str) -> Result<String, &'static str> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if text.is_empty() || text.len() > 32 || !text.chars().all(ok) {
        return Err("host or a CPU model name like tigerlake (1-32 of a-z 0-9 _ -)");
    }
    Ok(text.to_ascii_lowercase())
}
