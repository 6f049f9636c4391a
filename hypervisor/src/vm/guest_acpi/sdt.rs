//! The RSDP and the system description table header shared by every other table
//! (ACPI 6.5 §5.2.5 and §5.2.6), with their checksums.

use alloc::vec::Vec;

/// Length of an ACPI 2.0+ RSDP.
pub const RSDP_LEN: usize = 36;
/// Length of the common table header.
pub const HEADER_LEN: usize = 36;
/// OEM ID of every table.
pub const OEM_ID: [u8; 6] = *b"TERN  ";
/// OEM table ID of every table.
pub const OEM_TABLE_ID: [u8; 8] = *b"TERNVM  ";

/// The byte that makes `bytes` sum to zero (mod 256) when stored in it.
pub fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b)))
}

/// A table: header with `signature` and `revision`, then `body`, checksummed.
pub fn table(signature: [u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let len = HEADER_LEN + body.len();
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(&signature);
    t.extend_from_slice(&(len as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum, below
    t.extend_from_slice(&OEM_ID);
    t.extend_from_slice(&OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(b"TERN"); // creator ID
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

/// An ACPI 2.0 RSDP pointing at the XSDT (and at no RSDT: every consumer of revision 2
/// uses the XSDT).
pub fn rsdp(xsdt_gpa: u64) -> [u8; RSDP_LEN] {
    let mut r = [0u8; RSDP_LEN];
    r[..8].copy_from_slice(b"RSD PTR ");
    r[9..15].copy_from_slice(&OEM_ID);
    r[15] = 2; // revision: ACPI 2.0+
    r[20..24].copy_from_slice(&(RSDP_LEN as u32).to_le_bytes());
    r[24..32].copy_from_slice(&xsdt_gpa.to_le_bytes());
    r[8] = checksum(&r[..20]); // over the ACPI 1.0 part
    r[32] = checksum(&r); // extended checksum over all 36 bytes
    r
}
