//! The vocabulary shared by every interrupt source and sink: what an I/O APIC redirection
//! entry, an MSI or an IPI says to a local APIC (SDM Vol. 3A 11.6.1, Figure 11-12 for the
//! ICR; the 82093AA data sheet 3.2.4 for the redirection entry, which uses the same codes).

/// How the target APIC handles the message (ICR / redirection entry bits 10:8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Into the IRR at `vector`.
    Fixed = 0,
    /// Like fixed, to the lowest-priority APIC among the destinations.
    LowestPriority = 1,
    /// System management interrupt.
    Smi = 2,
    /// Non-maskable interrupt (vector ignored).
    Nmi = 4,
    /// INIT.
    Init = 5,
    /// Start-up IPI (vector = start page).
    StartUp = 6,
    /// The vector comes from an external 8259A-compatible controller (INTA cycle).
    ExtInt = 7,
}

impl DeliveryMode {
    /// Decodes the 3-bit field; 0b011 is reserved and yields `None`.
    pub fn from_bits(bits: u32) -> Option<Self> {
        Some(match bits & 7 {
            0 => Self::Fixed,
            1 => Self::LowestPriority,
            2 => Self::Smi,
            4 => Self::Nmi,
            5 => Self::Init,
            6 => Self::StartUp,
            7 => Self::ExtInt,
            _ => return None,
        })
    }
}

/// Edge or level trigger (bit 15 of ICR, redirection entries and LVT LINT entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerMode {
    /// Latched once per rising edge.
    Edge,
    /// Held while the line is asserted; needs an EOI to be seen again.
    Level,
}

impl TriggerMode {
    /// Bit 15 of an ICR, LVT or redirection entry.
    pub fn from_bit15(value: u64) -> Self {
        if value & (1 << 15) != 0 {
            Self::Level
        } else {
            Self::Edge
        }
    }
}

/// How `destination` is interpreted (bit 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationMode {
    /// An APIC ID.
    Physical,
    /// A logical destination matched against LDR/DFR.
    Logical,
}

impl DestinationMode {
    /// Bit 11 of an ICR or redirection entry.
    pub fn from_bit11(value: u64) -> Self {
        if value & (1 << 11) != 0 {
            Self::Logical
        } else {
            Self::Physical
        }
    }
}

/// One interrupt message on the (virtual) APIC bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterruptMessage {
    /// The vector (ignored for NMI, INIT and ExtINT).
    pub vector: u8,
    /// Destination APIC ID or logical destination.
    pub destination: u32,
    /// How `destination` is read.
    pub destination_mode: DestinationMode,
    /// What the target does with it.
    pub delivery_mode: DeliveryMode,
    /// Edge or level.
    pub trigger: TriggerMode,
}
