//! The DSDT's description of a virtio-mmio device: hand-written AML for
//!
//! ```text
//! Device (\_SB.VDA0) {
//!     Name (_HID, "LNRO0005")
//!     Name (_UID, 0)
//!     Name (_CRS, ResourceTemplate () {
//!         Memory32Fixed (ReadWrite, base, length)
//!         Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) { gsi }
//!     })
//! }
//! ```
//!
//! Why the DSDT: Debian's cloud kernel has no `VIRTIO_MMIO_CMDLINE_DEVICES`, so the
//! `virtio_mmio.device=` parameter tern appends does nothing there; Linux's virtio_mmio
//! driver also binds by ACPI to `LNRO0005` (its `acpi_match_table`), taking the window
//! and the interrupt from `_CRS`. The interrupt is level-triggered and active-high, as the
//! transport drives it (VIRTIO 1.2 §4.2.3.4); the MADT carries a matching Interrupt Source
//! Override for an ISA-range GSI so that Linux does not replace the trigger mode with the
//! ISA default (edge).
//!
//! Encodings (ACPI 6.5): DeviceOp §20.2.5.2, NameOp/NameString/PkgLength §20.2.2-§20.2.4,
//! BufferOp §20.2.5.4, Memory32Fixed §6.4.3.4, Extended Interrupt §6.4.3.6, End Tag
//! §6.4.2.9.

use alloc::vec::Vec;

/// A virtio-mmio device to describe: its register window and its GSI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmioDevice {
    /// Guest-physical base of the window (below 4 GiB: Memory32Fixed).
    pub base: u32,
    /// Length of the window in bytes.
    pub len: u32,
    /// The GSI of its level, active-high interrupt.
    pub gsi: u32,
}

/// The `_HID` Linux's virtio_mmio driver matches.
pub const VIRTIO_MMIO_HID: &[u8; 8] = b"LNRO0005";

const NAME_OP: u8 = 0x08;
const ZERO_OP: u8 = 0x00;
const STRING_PREFIX: u8 = 0x0d;
const BYTE_PREFIX: u8 = 0x0a;
const BUFFER_OP: u8 = 0x11;
const EXT_OP_PREFIX: u8 = 0x5b;
const DEVICE_OP: u8 = 0x82;
const ROOT_CHAR: u8 = b'\\';
const DUAL_NAME_PREFIX: u8 = 0x2e;

/// Large resource item 0x06, Memory32Fixed: 9 bytes of data, read-write.
const MEMORY32_FIXED: [u8; 4] = [0x86, 0x09, 0x00, 0x01];
/// Large resource item 0x09, Extended Interrupt: 6 bytes of data.
const EXTENDED_INTERRUPT: [u8; 3] = [0x89, 0x06, 0x00];
/// Extended Interrupt flags: bit 0 consumer, bit 1 = 0 level, bit 2 = 0 active-high,
/// bit 3 = 0 exclusive.
const INTERRUPT_CONSUMER_LEVEL_HIGH: u8 = 0x01;
/// End Tag, checksum 0 ("treated as if the checksum is correct").
const END_TAG: [u8; 2] = [0x79, 0x00];

/// PkgLength (§20.2.4) for a package whose contents after the PkgLength are `body`
/// bytes: the encoded length counts its own bytes. Up to 2^28 - 1.
pub fn pkg_length(body: usize) -> Vec<u8> {
    for extra in 0..4usize {
        let total = body + 1 + extra;
        let fits = match extra {
            0 => total < 1 << 6,
            n => total < 1 << (4 + 8 * n),
        };
        if fits {
            if extra == 0 {
                return alloc::vec![total as u8];
            }
            let mut out = alloc::vec![((extra as u8) << 6) | (total & 0xf) as u8];
            for i in 0..extra {
                out.push((total >> (4 + 8 * i)) as u8);
            }
            return out;
        }
    }
    // Nothing tern describes comes near 256 MiB of AML.
    alloc::vec![0]
}

/// The `_CRS` resource template of `device`.
pub fn resources(device: &VirtioMmioDevice) -> Vec<u8> {
    let mut r = Vec::with_capacity(32);
    r.extend_from_slice(&MEMORY32_FIXED);
    r.extend_from_slice(&device.base.to_le_bytes());
    r.extend_from_slice(&device.len.to_le_bytes());
    r.extend_from_slice(&EXTENDED_INTERRUPT);
    r.push(INTERRUPT_CONSUMER_LEVEL_HIGH);
    r.push(1); // one interrupt in the table
    r.extend_from_slice(&device.gsi.to_le_bytes());
    r.extend_from_slice(&END_TAG);
    r
}

/// The AML of `Device (\_SB.<name>)` for `device`.
pub fn device_aml(name: &[u8; 4], device: &VirtioMmioDevice) -> Vec<u8> {
    let mut body = Vec::with_capacity(80);
    body.extend_from_slice(&[ROOT_CHAR, DUAL_NAME_PREFIX]);
    body.extend_from_slice(b"_SB_");
    body.extend_from_slice(name);
    body.push(NAME_OP);
    body.extend_from_slice(b"_HID");
    body.push(STRING_PREFIX);
    body.extend_from_slice(VIRTIO_MMIO_HID);
    body.push(0);
    body.push(NAME_OP);
    body.extend_from_slice(b"_UID");
    body.push(ZERO_OP);
    let crs = resources(device);
    // Buffer: BufferSize as a ByteConst, then the bytes (the template is < 256 bytes).
    let mut buffer = alloc::vec![BYTE_PREFIX, crs.len() as u8];
    buffer.extend_from_slice(&crs);
    body.push(NAME_OP);
    body.extend_from_slice(b"_CRS");
    body.push(BUFFER_OP);
    body.extend_from_slice(&pkg_length(buffer.len()));
    body.extend_from_slice(&buffer);
    let mut aml = alloc::vec![EXT_OP_PREFIX, DEVICE_OP];
    aml.extend_from_slice(&pkg_length(body.len()));
    aml.extend_from_slice(&body);
    aml
}
