//! FADT ("FACP", ACPI 6.5 §5.2.9), FACS (§5.2.10) and the DSDT (§5.2.11.1) of a tern VM.

use alloc::vec;
use alloc::vec::Vec;

use super::sdt;

/// Length of a revision 6 FADT (Table 5.9, through the hypervisor vendor identity).
pub const FADT_LEN: usize = 276;
/// The SCI's ISA IRQ (the PC convention).
pub const SCI_IRQ: u16 = 9;
/// PM1a event block: PM1_STS and PM1_EN, 2 bytes each (§4.8.3.1).
pub const PM1A_EVT_PORT: u16 = 0x600;
/// PM1a control block: PM1_CNT, 2 bytes (§4.8.3.2).
pub const PM1A_CNT_PORT: u16 = 0x604;
/// The SLP_TYP value `\_S5_` announces for power-off.
pub const S5_SLEEP_TYPE: u8 = 5;

/// IAPC_BOOT_ARCH (Table 5.11): LEGACY_DEVICES set; 8042 clear (none), VGA Not Present,
/// MSI Not Supported (no PCI bus).
const IAPC_BOOT_ARCH: u16 = (1 << 0) | (1 << 2) | (1 << 3);
/// FADT flags (Table 5.10): WBINVD, PROC_C1, PWR_BUTTON and SLP_BUTTON (no fixed-feature
/// buttons). HW_REDUCED_ACPI (bit 20) is clear.
const FADT_FLAGS: u32 = (1 << 0) | (1 << 2) | (1 << 4) | (1 << 5);

/// The FADT pointing at the FACS and DSDT (both below 4 GiB).
pub fn fadt(facs_gpa: u32, dsdt_gpa: u32) -> Vec<u8> {
    let mut b = vec![0u8; FADT_LEN - sdt::HEADER_LEN];
    // Offsets below are the table's (Table 5.9); the body starts after the header.
    let mut put = |offset: usize, bytes: &[u8]| {
        let at = offset - sdt::HEADER_LEN;
        b[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(36, &facs_gpa.to_le_bytes()); // FIRMWARE_CTRL
    put(40, &dsdt_gpa.to_le_bytes()); // DSDT
    put(46, &SCI_IRQ.to_le_bytes()); // SCI_INT
    // SMI_CMD (48) = 0: no SMM, the platform is always in ACPI mode.
    put(56, &u32::from(PM1A_EVT_PORT).to_le_bytes()); // PM1a_EVT_BLK
    put(64, &u32::from(PM1A_CNT_PORT).to_le_bytes()); // PM1a_CNT_BLK
    put(88, &[4]); // PM1_EVT_LEN
    put(89, &[2]); // PM1_CNT_LEN
    // PM_TMR_BLK (76) and PM_TMR_LEN (91) = 0: no PM timer.
    put(96, &101u16.to_le_bytes()); // P_LVL2_LAT > 100: C2 not supported
    put(98, &1001u16.to_le_bytes()); // P_LVL3_LAT > 1000: C3 not supported
    put(109, &IAPC_BOOT_ARCH.to_le_bytes());
    put(112, &FADT_FLAGS.to_le_bytes());
    put(131, &[5]); // FADT minor version (6.5)
    // X_FIRMWARE_CTRL (132) stays 0: one FACS pointer, the 32-bit one (§5.2.9: when both
    // are set the 64-bit one wins, and Linux lists the FACS twice).
    put(140, &u64::from(dsdt_gpa).to_le_bytes()); // X_DSDT
    put(268, b"TERNTERN"); // hypervisor vendor identity
    sdt::table(*b"FACP", 6, &b)
}

/// The FACS: no waking vector, no global lock owner (it has no checksum, §5.2.10).
pub fn facs() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"FACS");
    f[4..8].copy_from_slice(&64u32.to_le_bytes());
    f[32] = 2; // version
    f
}

/// The DSDT: `Name (_S5, Package () { 5, 5, 0, 0 })` (AML, §19.6.101 and §20.2.5), and
/// the disk's device when the VM has one.
pub fn dsdt(disk: Option<&super::VirtioMmioDevice>) -> Vec<u8> {
    let mut aml = alloc::vec![
        0x08,
        b'_',
        b'S',
        b'5',
        b'_', // NameOp "_S5_"
        0x12,
        0x08,
        0x04, // PackageOp, PkgLength 8 (from itself), NumElements 4
        0x0a,
        S5_SLEEP_TYPE, // BytePrefix SLP_TYPa
        0x0a,
        S5_SLEEP_TYPE, // BytePrefix SLP_TYPb
        0x00,
        0x00, // ZeroOp, ZeroOp (reserved)
    ];
    if let Some(disk) = disk {
        aml.extend_from_slice(&super::virtio_mmio_aml::device_aml(b"VDA0", disk));
    }
    sdt::table(*b"DSDT", 2, &aml)
}
