//! The MADT ("APIC", ACPI 6.5 §5.2.12): the interrupt controllers of a one-vCPU tern VM.

use alloc::vec::Vec;

use super::AcpiPlatform;
use super::sdt;
use crate::vm::interrupts::message::TriggerMode;

/// APIC ID of the VM's one processor.
pub const LAPIC_ID: u8 = 0;
/// APIC ID of the I/O APIC (the model's reset value).
pub const IOAPIC_ID: u8 = 0;

/// MADT flags bit 0 (§5.2.12, Table 5.19): 8259 PICs present as well.
const PCAT_COMPAT: u32 = 1;
/// Structure types (Table 5.20).
const TYPE_LOCAL_APIC: u8 = 0;
const TYPE_IO_APIC: u8 = 1;
const TYPE_SOURCE_OVERRIDE: u8 = 2;
const TYPE_LOCAL_APIC_NMI: u8 = 4;
/// Processor Local APIC flags (Table 5.23): Enabled.
const LAPIC_ENABLED: u32 = 1;
/// MPS INTI flags (Table 5.26): polarity in bits 1:0, trigger mode in bits 3:2.
const POLARITY_ACTIVE_HIGH: u16 = 0b01;
const POLARITY_ACTIVE_LOW: u16 = 0b11;
const TRIGGER_EDGE: u16 = 0b01 << 2;
const TRIGGER_LEVEL: u16 = 0b11 << 2;
/// Local APIC NMI (Table 5.28): all processors, LINT1.
const ALL_PROCESSORS: u8 = 0xff;
const LINT1: u8 = 1;

/// MPS INTI flags of one override.
pub fn inti_flags(trigger: TriggerMode, active_low: bool) -> u16 {
    let polarity = if active_low {
        POLARITY_ACTIVE_LOW
    } else {
        POLARITY_ACTIVE_HIGH
    };
    let trigger = match trigger {
        TriggerMode::Edge => TRIGGER_EDGE,
        TriggerMode::Level => TRIGGER_LEVEL,
    };
    polarity | trigger
}

/// The MADT for `platform`.
pub fn madt(platform: &AcpiPlatform) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + 10 * platform.overrides.len());
    b.extend_from_slice(&platform.lapic_address.to_le_bytes());
    b.extend_from_slice(&PCAT_COMPAT.to_le_bytes());
    // Processor Local APIC (§5.2.12.2): UID 0, APIC ID, enabled.
    b.extend_from_slice(&[TYPE_LOCAL_APIC, 8, 0, LAPIC_ID]);
    b.extend_from_slice(&LAPIC_ENABLED.to_le_bytes());
    // I/O APIC (§5.2.12.3): ID, reserved, address, GSI base 0.
    b.extend_from_slice(&[TYPE_IO_APIC, 12, IOAPIC_ID, 0]);
    b.extend_from_slice(&platform.ioapic_address.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    // Interrupt Source Overrides (§5.2.12.5): bus 0 (ISA), source IRQ, GSI, flags.
    for o in platform.overrides {
        b.extend_from_slice(&[TYPE_SOURCE_OVERRIDE, 10, 0, o.isa_irq]);
        b.extend_from_slice(&o.gsi.to_le_bytes());
        b.extend_from_slice(&inti_flags(o.trigger, o.active_low).to_le_bytes());
    }
    // The disk's ISA-range GSI: level, active-high, as its _CRS says (without the override
    // Linux would apply the ISA default, edge, to the I/O APIC pin).
    if let Some(disk) = platform.virtio_mmio.filter(|d| d.gsi < 16) {
        b.extend_from_slice(&[TYPE_SOURCE_OVERRIDE, 10, 0, disk.gsi as u8]);
        b.extend_from_slice(&disk.gsi.to_le_bytes());
        b.extend_from_slice(&inti_flags(TriggerMode::Level, false).to_le_bytes());
    }
    // Local APIC NMI (§5.2.12.7): LINT1 of every processor, flags "conforms to the bus".
    b.extend_from_slice(&[TYPE_LOCAL_APIC_NMI, 6, ALL_PROCESSORS, 0, 0, LINT1]);
    sdt::table(*b"APIC", 5, &b)
}
