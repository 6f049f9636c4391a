//! Decoding of exit qualifications and interruption information (SDM Vol. 3C §28.2.1,
//! Tables 28-3 "Exit Qualification for Control-Register Accesses", 28-5 "... for I/O
//! Instructions", 28-7 "... for EPT Violations"; §25.9.2 for the interruption-information
//! format).

use crate::vmx::regs::Gpr;

/// A MOV to/from CR, CLTS or LMSW (Table 28-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrAccess {
    /// Control register number (0, 3, 4 or 8).
    pub cr: u8,
    /// What the instruction does.
    pub kind: CrAccessKind,
}

/// The access type of a [`CrAccess`] (bits 5:4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrAccessKind {
    /// MOV to CR from a general-purpose register.
    MovToCr(Gpr),
    /// MOV from CR to a general-purpose register.
    MovFromCr(Gpr),
    /// CLTS.
    Clts,
    /// LMSW with its 16-bit source (bits 31:16); `memory_operand` from bit 6.
    Lmsw {
        /// The source operand.
        source: u16,
        /// The operand was in memory (bit 6 = 1).
        memory_operand: bool,
    },
}

impl CrAccess {
    /// Decode a CR-access exit qualification.
    pub fn decode(qualification: u64) -> Self {
        // Masked to 4 bits.
        let cr = (qualification & 0xf) as u8;
        let gpr = Gpr::from_number(qualification >> 8);
        let kind = match (qualification >> 4) & 0b11 {
            0 => CrAccessKind::MovToCr(gpr),
            1 => CrAccessKind::MovFromCr(gpr),
            2 => CrAccessKind::Clts,
            _ => CrAccessKind::Lmsw {
                // Masked to 16 bits.
                source: ((qualification >> 16) & 0xffff) as u16,
                memory_operand: qualification & (1 << 6) != 0,
            },
        };
        Self { cr, kind }
    }
}

/// Direction of a port access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDirection {
    /// IN/INS: the guest reads the port.
    In,
    /// OUT/OUTS: the guest writes the port.
    Out,
}

/// An I/O instruction (Table 28-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoAccess {
    /// Port number (bits 31:16).
    pub port: u16,
    /// Access size in bytes: 1, 2 or 4 (bits 2:0 hold size - 1).
    pub size: u8,
    /// Direction (bit 3: 1 = IN).
    pub direction: IoDirection,
    /// INS/OUTS (bit 4).
    pub string: bool,
    /// REP prefixed (bit 5).
    pub rep: bool,
    /// Port given as an immediate rather than in DX (bit 6).
    pub immediate_port: bool,
}

impl IoAccess {
    /// Decode an I/O exit qualification; `None` for the size encoding 2, which the SDM
    /// leaves undefined ("not used").
    pub fn decode(qualification: u64) -> Option<Self> {
        let size = match qualification & 0b111 {
            0 => 1,
            1 => 2,
            3 => 4,
            _ => return None,
        };
        Some(Self {
            // Masked to 16 bits.
            port: ((qualification >> 16) & 0xffff) as u16,
            size,
            direction: if qualification & (1 << 3) != 0 {
                IoDirection::In
            } else {
                IoDirection::Out
            },
            string: qualification & (1 << 4) != 0,
            rep: qualification & (1 << 5) != 0,
            immediate_port: qualification & (1 << 6) != 0,
        })
    }

    /// Mask of the operand bits for this size (0xff, 0xffff, 0xffff_ffff).
    pub fn mask(&self) -> u32 {
        match self.size {
            1 => 0xff,
            2 => 0xffff,
            _ => 0xffff_ffff,
        }
    }
}

/// An EPT violation (Table 28-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EptViolation {
    /// The guest-physical address that faulted (VMCS field "guest-physical address").
    pub guest_physical: u64,
    /// Guest-linear address, if the CPU reported one (bit 7).
    pub guest_linear: Option<u64>,
    /// The access was a data read (bit 0).
    pub read: bool,
    /// The access was a data write (bit 1).
    pub write: bool,
    /// The access was an instruction fetch (bit 2).
    pub fetch: bool,
    /// The page was readable / writable / executable at the time (bits 3, 4, 5): all false
    /// means the guest-physical address is not mapped at all.
    pub was_readable: bool,
    /// See `was_readable`.
    pub was_writable: bool,
    /// See `was_readable`.
    pub was_executable: bool,
    /// The access translated a linear address (bit 8 = 1) rather than accessing a guest
    /// paging structure; meaningful only with a linear address.
    pub final_translation: bool,
    /// NMI unblocking due to IRET (bit 12): the handler must re-block NMIs before resuming.
    pub nmi_unblocking: bool,
}

impl EptViolation {
    /// Decode from the exit qualification and the two address fields.
    pub fn decode(qualification: u64, guest_physical: u64, guest_linear: u64) -> Self {
        let bit = |n: u32| qualification & (1 << n) != 0;
        Self {
            guest_physical,
            guest_linear: bit(7).then_some(guest_linear),
            read: bit(0),
            write: bit(1),
            fetch: bit(2),
            was_readable: bit(3),
            was_writable: bit(4),
            was_executable: bit(5),
            final_translation: bit(8),
            nmi_unblocking: bit(12),
        }
    }

    /// The address is not mapped at all (outside guest RAM).
    pub fn is_unmapped(&self) -> bool {
        !(self.was_readable || self.was_writable || self.was_executable)
    }

    /// A write to a mapped, write-protected page: dirty tracking.
    pub fn is_write_to_read_only(&self) -> bool {
        self.write && self.was_readable && !self.was_writable
    }
}

/// Event types of the interruption-information format (SDM §25.9.2, Table 25-19 bits 10:8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptionType {
    /// External interrupt.
    External,
    /// Non-maskable interrupt.
    Nmi,
    /// Hardware exception (#PF, #GP, ...).
    HardwareException,
    /// Software interrupt (INT n).
    SoftwareInterrupt,
    /// Privileged software exception (INT1).
    PrivilegedSoftwareException,
    /// Software exception (INT3, INTO).
    SoftwareException,
    /// Other event (e.g. MTF).
    Other,
    /// Encoding 1 (reserved).
    Reserved,
}

/// A valid interruption-information field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interruption {
    /// Vector (bits 7:0).
    pub vector: u8,
    /// Event type (bits 10:8).
    pub kind: InterruptionType,
    /// Error code, when bit 11 says one was delivered.
    pub error_code: Option<u32>,
    /// NMI unblocking due to IRET (bit 12).
    pub nmi_unblocking: bool,
}

impl Interruption {
    /// Decode an interruption-information field and its error-code field; `None` when the
    /// valid bit (31) is clear.
    pub fn decode(info: u32, error_code: u32) -> Option<Self> {
        if info & (1 << 31) == 0 {
            return None;
        }
        let kind = match (info >> 8) & 0b111 {
            0 => InterruptionType::External,
            2 => InterruptionType::Nmi,
            3 => InterruptionType::HardwareException,
            4 => InterruptionType::SoftwareInterrupt,
            5 => InterruptionType::PrivilegedSoftwareException,
            6 => InterruptionType::SoftwareException,
            7 => InterruptionType::Other,
            _ => InterruptionType::Reserved,
        };
        Some(Self {
            vector: info.to_le_bytes()[0],
            kind,
            error_code: (info & (1 << 11) != 0).then_some(error_code),
            nmi_unblocking: info & (1 << 12) != 0,
        })
    }
}
