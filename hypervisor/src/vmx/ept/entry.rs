//! The EPT entry format (SDM Vol. 3C §29.3.2, Tables 29-1 to 29-6).

use core::fmt;

/// Bits 51:12: physical address of the next table or of the page.
pub(crate) const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
const READ: u64 = 1 << 0;
const WRITE: u64 = 1 << 1;
const EXECUTE: u64 = 1 << 2;
const MEMORY_TYPE_SHIFT: u32 = 3;
const MEMORY_TYPE_MASK: u64 = 0b111 << MEMORY_TYPE_SHIFT;
const IGNORE_PAT: u64 = 1 << 6;
const LARGE_PAGE: u64 = 1 << 7;
const ACCESSED: u64 = 1 << 8;
const DIRTY: u64 = 1 << 9;

/// Access rights of a guest page (bits 2:0 of every EPT entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// Reads allowed.
    pub read: bool,
    /// Writes allowed.
    pub write: bool,
    /// Instruction fetches allowed.
    pub execute: bool,
}

impl Permissions {
    /// Read, write, execute: ordinary guest RAM.
    pub const RWX: Self = Self {
        read: true,
        write: true,
        execute: true,
    };
    /// Read and execute: guest RAM write-protected for dirty tracking.
    pub const RX: Self = Self {
        read: true,
        write: false,
        execute: true,
    };

    pub(crate) fn bits(self) -> u64 {
        (u64::from(self.read) * READ)
            | (u64::from(self.write) * WRITE)
            | (u64::from(self.execute) * EXECUTE)
    }

    fn from_bits(bits: u64) -> Self {
        Self {
            read: bits & READ != 0,
            write: bits & WRITE != 0,
            execute: bits & EXECUTE != 0,
        }
    }

    /// An entry with no access bits is "not present" (SDM §29.3.2).
    pub fn is_none(self) -> bool {
        !(self.read || self.write || self.execute)
    }
}

/// EPT memory types (SDM §29.3.7.2; the encodings of the MTRR/PAT types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum MemoryType {
    /// Uncacheable.
    Uncacheable = 0,
    /// Write-combining.
    WriteCombining = 1,
    /// Write-through.
    WriteThrough = 4,
    /// Write-protected.
    WriteProtected = 5,
    /// Write-back: what guest RAM uses.
    WriteBack = 6,
}

impl MemoryType {
    fn from_bits(bits: u64) -> Option<Self> {
        match bits {
            0 => Some(Self::Uncacheable),
            1 => Some(Self::WriteCombining),
            4 => Some(Self::WriteThrough),
            5 => Some(Self::WriteProtected),
            6 => Some(Self::WriteBack),
            _ => None,
        }
    }
}

/// One 64-bit EPT paging-structure entry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EptEntry(pub u64);

impl EptEntry {
    /// A leaf mapping a 4 KiB page (SDM Table 29-6): address, access rights, memory type;
    /// "ignore PAT" is set so the EPT memory type alone decides (SDM §29.3.7.2).
    pub(crate) fn leaf(hpa: u64, perms: Permissions, memory_type: MemoryType) -> Self {
        Self(
            (hpa & ADDRESS_MASK)
                | perms.bits()
                | ((memory_type as u64) << MEMORY_TYPE_SHIFT)
                | IGNORE_PAT,
        )
    }

    /// A non-leaf entry referencing the next paging structure with full rights, so that the
    /// leaf alone decides access (SDM §29.3.2: rights are the AND over the walk).
    pub(crate) fn table(phys: u64) -> Self {
        Self((phys & ADDRESS_MASK) | Permissions::RWX.bits())
    }

    /// Present = any of R/W/X set.
    pub fn is_present(self) -> bool {
        !self.permissions().is_none()
    }

    /// Bit 7 in a PDE/PDPTE: the entry maps a 2 MiB / 1 GiB page.
    pub fn is_large(self) -> bool {
        self.0 & LARGE_PAGE != 0
    }

    /// The referenced physical address.
    pub fn address(self) -> u64 {
        self.0 & ADDRESS_MASK
    }

    /// Access rights.
    pub fn permissions(self) -> Permissions {
        Permissions::from_bits(self.0)
    }

    /// Replace the access rights.
    pub fn set_permissions(&mut self, perms: Permissions) {
        self.0 = (self.0 & !(READ | WRITE | EXECUTE)) | perms.bits();
    }

    /// Memory type of a leaf (`None` for the reserved encodings 2, 3, 7).
    pub fn memory_type(self) -> Option<MemoryType> {
        MemoryType::from_bits((self.0 & MEMORY_TYPE_MASK) >> MEMORY_TYPE_SHIFT)
    }

    /// Accessed flag, set by the CPU when EPTP bit 6 is set (SDM §29.3.4).
    pub fn accessed(self) -> bool {
        self.0 & ACCESSED != 0
    }

    /// Dirty flag of a leaf, set by the CPU on a write when EPTP bit 6 is set (SDM §29.3.4).
    pub fn dirty(self) -> bool {
        self.0 & DIRTY != 0
    }

    /// Clear the accessed and dirty flags.
    pub fn clear_accessed_dirty(&mut self) {
        self.0 &= !(ACCESSED | DIRTY);
    }
}

impl fmt::Debug for EptEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EptEntry({:#018x})", self.0)
    }
}
