//! The contract between the tern loader (UEFI application) and the hypervisor.
//!
//! Two things cross that boundary and both live here so that neither side can drift:
//!
//! * [`BootInfo`]: a versioned, `repr(C)` structure the loader fills in before it jumps to the
//!   hypervisor. It only holds physical addresses and plain integers, so it means the same thing
//!   in both address spaces (the loader's page tables identity-map all of physical memory, see
//!   `docs/ARCHITECTURE.md`).
//! * [`config`]: the parser of the plain-text host configuration file (`docs/config.md`). The
//!   loader parses it to learn which images to load and refuses to boot on any error; the
//!   hypervisor parses the very same bytes again (handed over in [`BootInfo::config`]) to get
//!   host, network, migration and VM settings, so there is one parser and one format.
//!
//! Everything here is `no_std` and portable: it is unit-tested on the host.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod bzimage;
pub mod config;

/// `"TERNBOOT"` in little-endian ASCII: the first field of a [`BootInfo`].
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"TERNBOOT");

/// Layout version of [`BootInfo`]. Bump on any change of this file's `repr(C)` types; the
/// hypervisor refuses a boot info whose version it does not know.
pub const BOOT_INFO_VERSION: u32 = 1;

/// Virtual address at which the hypervisor image is linked (the top 2 GiB, code-model kernel).
pub const HYPERVISOR_VIRT_BASE: u64 = 0xffff_ffff_8000_0000;

/// Most memory-map entries the loader hands over; more is reported as a boot error.
pub const MAX_MEMORY_REGIONS: usize = 512;

/// Most images (hypervisor excluded) the loader hands over: one per configured VM.
pub const MAX_MODULES: usize = 16;

/// Length of a module's name field, in bytes (UTF-8, zero-padded).
pub const MODULE_NAME_LEN: usize = 48;

/// UEFI `EfiMemoryType` values from the OS-reserved range (0x8000_0000..) that the loader uses
/// for its own allocations, so that the firmware's memory map itself says who owns what.
pub mod memory_type {
    /// The hypervisor's loaded ELF segments (code, data, bss).
    pub const HYPERVISOR_IMAGE: u32 = 0x8000_7e00;
    /// Page tables, [`BootInfo`](super::BootInfo), the memory-map copy and the config text.
    pub const BOOT_DATA: u32 = 0x8000_7e01;
    /// Guest images as read from the ESP.
    pub const MODULE: u32 = 0x8000_7e02;
}

/// What a physical memory range is, from the hypervisor's point of view.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Free RAM the hypervisor may allocate (conventional memory and, after
    /// ExitBootServices, boot-services code and data).
    Usable = 1,
    /// The hypervisor image (never handed to a guest or the allocator).
    HypervisorImage = 2,
    /// Loader allocations that stay alive: page tables, boot info, config text.
    BootData = 3,
    /// A module (guest image) loaded by the loader.
    Module = 4,
    /// ACPI tables; reclaimable once the hypervisor has read them, but we keep them.
    AcpiReclaimable = 5,
    /// ACPI NVS, firmware runtime code/data, MMIO and anything else: never touched.
    Reserved = 6,
    /// Memory the firmware reported as faulty.
    Unusable = 7,
    /// The loader's own code and pool data (including the UEFI memory map the loader read).
    LoaderUsed = 8,
}

/// One range of physical memory; `start` and `len` are multiples of 4 KiB.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub start: u64,
    pub len: u64,
    pub kind: MemoryKind,
    pub _reserved: u32,
}

impl MemoryRegion {
    pub const EMPTY: MemoryRegion = MemoryRegion {
        start: 0,
        len: 0,
        kind: MemoryKind::Reserved,
        _reserved: 0,
    };

    /// One past the last byte of the region (saturating, so a malformed entry cannot wrap).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// A file the loader read into memory for the hypervisor (a guest image).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    /// The VM name from the config this image belongs to, UTF-8, zero-padded.
    pub name: [u8; MODULE_NAME_LEN],
    /// Physical address of the first byte (4 KiB aligned).
    pub phys: u64,
    /// Length of the file in bytes.
    pub len: u64,
}

impl Module {
    pub const EMPTY: Module = Module {
        name: [0; MODULE_NAME_LEN],
        phys: 0,
        len: 0,
    };

    /// The name as a string (up to the first zero byte); `None` if it is not UTF-8.
    pub fn name(&self) -> Option<&str> {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MODULE_NAME_LEN);
        core::str::from_utf8(&self.name[..end]).ok()
    }

    /// A module entry with `name` truncated to fit the fixed field.
    pub fn new(name: &str, phys: u64, len: u64) -> Module {
        let mut m = Module {
            name: [0; MODULE_NAME_LEN],
            phys,
            len,
        };
        let n = name.len().min(MODULE_NAME_LEN);
        m.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        m
    }
}

/// A physical (address, length) pair.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PhysSlice {
    pub phys: u64,
    pub len: u64,
}

/// Everything the hypervisor learns from the loader. Passed by physical address in `rdi` on
/// entry; the loader's page tables identity-map all RAM, so the address is also valid virtually.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    /// [`BOOT_INFO_MAGIC`].
    pub magic: u64,
    /// [`BOOT_INFO_VERSION`].
    pub version: u32,
    /// `size_of::<BootInfo>()` as the loader saw it.
    pub size: u32,
    /// Physical memory map, sorted by start, non-overlapping.
    pub memory_regions: [MemoryRegion; MAX_MEMORY_REGIONS],
    pub memory_region_count: u32,
    pub module_count: u32,
    pub modules: [Module; MAX_MODULES],
    /// The config file text exactly as read (UTF-8 checked by the loader).
    pub config: PhysSlice,
    /// Name of the config file on the ESP (for messages), UTF-8.
    pub config_path: PhysSlice,
    /// Physical address of the ACPI RSDP (2.0 if the firmware has it, else 1.0); 0 if none.
    pub acpi_rsdp: u64,
    /// Physical address of the UEFI runtime services table (still usable in physical mode:
    /// the loader never calls SetVirtualAddressMap); 0 if none.
    pub uefi_runtime_services: u64,
    /// The hypervisor image's physical extent, for self-checks and the memory report.
    pub hypervisor_image: PhysSlice,
    /// Physical address of the PML4 the loader built and loaded into CR3.
    pub page_table_root: u64,
    /// Bytes of physical address space identity-mapped by the loader (from 0).
    pub identity_mapped_bytes: u64,
    /// TSC value read just before the jump (boot-time accounting).
    pub tsc_at_handover: u64,
}

/// Why a [`BootInfo`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// The magic number is wrong: not a tern boot info at all.
    BadMagic(u64),
    /// A loader from another release: rebuild both with `cargo xtask build`.
    VersionMismatch { found: u32, expected: u32 },
    /// The structure size differs from this build's.
    SizeMismatch { found: u32, expected: u32 },
    /// A count field is larger than its array.
    CountOutOfRange,
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootInfoError::BadMagic(m) => write!(f, "boot info magic {m:#x} is not TERNBOOT"),
            BootInfoError::VersionMismatch { found, expected } => write!(
                f,
                "boot info version {found}, this hypervisor speaks {expected}: loader and hypervisor are from different builds"
            ),
            BootInfoError::SizeMismatch { found, expected } => {
                write!(f, "boot info is {found} bytes, expected {expected}")
            }
            BootInfoError::CountOutOfRange => write!(f, "boot info count field out of range"),
        }
    }
}

impl BootInfo {
    /// An empty boot info with the header filled in.
    pub const fn new() -> BootInfo {
        BootInfo {
            magic: BOOT_INFO_MAGIC,
            version: BOOT_INFO_VERSION,
            size: core::mem::size_of::<BootInfo>() as u32,
            memory_regions: [MemoryRegion::EMPTY; MAX_MEMORY_REGIONS],
            memory_region_count: 0,
            module_count: 0,
            modules: [Module::EMPTY; MAX_MODULES],
            config: PhysSlice { phys: 0, len: 0 },
            config_path: PhysSlice { phys: 0, len: 0 },
            acpi_rsdp: 0,
            uefi_runtime_services: 0,
            hypervisor_image: PhysSlice { phys: 0, len: 0 },
            page_table_root: 0,
            identity_mapped_bytes: 0,
            tsc_at_handover: 0,
        }
    }

    /// Checks the header and counts; the hypervisor calls this before trusting anything else.
    pub fn validate(&self) -> Result<(), BootInfoError> {
        if self.magic != BOOT_INFO_MAGIC {
            return Err(BootInfoError::BadMagic(self.magic));
        }
        if self.version != BOOT_INFO_VERSION {
            return Err(BootInfoError::VersionMismatch {
                found: self.version,
                expected: BOOT_INFO_VERSION,
            });
        }
        let expected = core::mem::size_of::<BootInfo>() as u32;
        if self.size != expected {
            return Err(BootInfoError::SizeMismatch {
                found: self.size,
                expected,
            });
        }
        if self.memory_region_count as usize > MAX_MEMORY_REGIONS
            || self.module_count as usize > MAX_MODULES
        {
            return Err(BootInfoError::CountOutOfRange);
        }
        Ok(())
    }

    /// The valid part of the memory map.
    pub fn memory_regions(&self) -> &[MemoryRegion] {
        let n = (self.memory_region_count as usize).min(MAX_MEMORY_REGIONS);
        &self.memory_regions[..n]
    }

    /// The valid part of the module list.
    pub fn modules(&self) -> &[Module] {
        let n = (self.module_count as usize).min(MAX_MODULES);
        &self.modules[..n]
    }
}

impl Default for BootInfo {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_boot_info_validates() {
        assert_eq!(BootInfo::new().validate(), Ok(()));
    }

    #[test]
    fn wrong_magic_version_size_and_counts_are_refused() {
        let mut b = BootInfo::new();
        b.magic = 1;
        assert_eq!(b.validate(), Err(BootInfoError::BadMagic(1)));
        let mut b = BootInfo::new();
        b.version = 99;
        assert!(matches!(
            b.validate(),
            Err(BootInfoError::VersionMismatch { found: 99, .. })
        ));
        let mut b = BootInfo::new();
        b.size -= 8;
        assert!(matches!(
            b.validate(),
            Err(BootInfoError::SizeMismatch { .. })
        ));
        let mut b = BootInfo::new();
        b.module_count = MAX_MODULES as u32 + 1;
        assert_eq!(b.validate(), Err(BootInfoError::CountOutOfRange));
    }

    #[test]
    fn module_names_round_trip_and_truncate() {
        assert_eq!(Module::new("hb", 0, 0).name(), Some("hb"));
        let long = "x".repeat(100);
        assert_eq!(
            Module::new(&long, 0, 0).name().map(str::len),
            Some(MODULE_NAME_LEN)
        );
    }
}
