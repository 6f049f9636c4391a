//! The Linux x86 boot protocol's setup header, parsed and checked (Linux
//! `Documentation/arch/x86/boot.rst`, "THE REAL-MODE KERNEL HEADER").
//!
//! Why it lives in `boot-proto`: both sides need it. The loader checks a configured
//! `kernel = ...` while it reads the config, so a file that is not a usable bzImage stops
//! the boot with `tern/tern.cfg:LINE: ...` before anything runs; the hypervisor parses the
//! same bytes again when it builds the VM (it trusts nothing the loader handed over, and a
//! migrated VM never went through the loader). One parser, tested once on the host.
//!
//! What tern requires of a kernel, and why:
//! - the boot sector flag 0xAA55 and the `HdrS` magic: it is a bzImage at all;
//! - protocol 2.12 or later: the 64-bit entry point and `xloadflags` (2.12), so tern can
//!   enter in long mode at load address + 0x200 without running real-mode setup code;
//! - `XLF_KERNEL_64`: the kernel has that 64-bit entry point;
//! - `LOADED_HIGH`: the protected-mode part runs at 1 MiB or above (every bzImage);
//! - `setup_sects` (0 means 4) and the payload inside the file, `init_size` at least the
//!   protected-mode part, `kernel_alignment` a power of two: the numbers tern uses to place
//!   the kernel are consistent, so a corrupt header cannot make it write out of bounds.

#[cfg(test)]
mod tests;

use core::fmt;

/// Offset of the setup header in the file (and in `boot_params`).
pub const SETUP_HEADER_OFFSET: usize = 0x1f1;
/// `boot_flag`: the boot-sector signature.
pub const BOOT_FLAG: u16 = 0xaa55;
/// `header`: "HdrS".
pub const HEADER_MAGIC: u32 = u32::from_le_bytes(*b"HdrS");
/// The oldest protocol tern boots (2.12: 64-bit entry point, `xloadflags`).
pub const MIN_PROTOCOL: u16 = 0x020c;
/// `loadflags` bit 0: protected-mode code loaded at 0x100000 or above.
pub const LOADED_HIGH: u8 = 1 << 0;
/// `xloadflags` bit 0: the kernel has the legacy 64-bit entry point at +0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// `xloadflags` bit 1: kernel, boot_params, command line and ramdisk may be above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// Offset of the 64-bit entry point from the load address.
pub const ENTRY_64_OFFSET: u64 = 0x200;

/// Bytes of the file the header needs (up to and including `init_size`, protocol 2.10).
const MIN_FILE_LEN: usize = 0x264;

/// A bzImage whose header passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BzImage {
    /// Boot protocol version (`0x020f` is 2.15).
    pub protocol: u16,
    /// Sectors of real-mode setup code after the boot sector (0 already turned into 4).
    pub setup_sects: u8,
    /// Where the protected-mode kernel starts in the file.
    pub kernel_offset: usize,
    /// Its length: the bytes to copy to the load address.
    pub kernel_len: usize,
    /// Bytes the kernel needs from its load address while it decompresses and starts.
    pub init_size: u64,
    /// Preferred load address (the link address; the only one if not relocatable).
    pub pref_address: u64,
    /// Alignment a relocated kernel needs (a power of two).
    pub kernel_alignment: u64,
    /// Whether the kernel may run at another address than `pref_address`.
    pub relocatable: bool,
    /// Highest address the initrd may occupy (its last byte).
    pub initrd_addr_max: u64,
    /// Longest command line, without the NUL.
    pub cmdline_size: u32,
    /// `xloadflags`.
    pub xloadflags: u16,
    /// End of the setup header in the file (`0x202` + the jump's offset byte): the bytes
    /// `[0x1f1, header_end)` are copied into `boot_params.hdr`.
    pub header_end: usize,
}

/// Why a file is not a kernel tern can boot. The `Display` text is the operator's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BzImageError {
    /// The file ends before the setup header does.
    TooShort {
        /// File length.
        len: usize,
    },
    /// No 0xAA55 boot flag or no `HdrS`: not a Linux bzImage.
    NotBzImage,
    /// Boot protocol older than 2.12.
    ProtocolTooOld {
        /// The kernel's protocol.
        protocol: u16,
    },
    /// `XLF_KERNEL_64` clear: a 32-bit kernel, or no 64-bit entry point.
    Not64Bit,
    /// `LOADED_HIGH` clear: a zImage whose kernel runs below 1 MiB.
    NotLoadedHigh,
    /// The setup sectors reach past the end of the file.
    SetupBeyondFile {
        /// Setup sectors.
        setup_sects: u8,
        /// File length.
        len: usize,
    },
    /// The compressed payload lies outside the protected-mode part.
    PayloadOutsideKernel {
        /// `payload_offset`.
        offset: u32,
        /// `payload_length`.
        len: u32,
    },
    /// `init_size` smaller than the protected-mode part it must hold.
    InitSizeTooSmall {
        /// `init_size`.
        init_size: u64,
        /// Protected-mode part length.
        kernel_len: usize,
    },
    /// `kernel_alignment` zero or not a power of two.
    BadAlignment(u32),
    /// The jump at 0x200 says the header ends before `init_size`, or past the sector.
    BadHeaderLength(usize),
}

impl fmt::Display for BzImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(
                f,
                "not a Linux kernel: {len} bytes is too short for a bzImage setup header"
            ),
            Self::NotBzImage => write!(
                f,
                "not a Linux bzImage (no 0xAA55 boot flag and `HdrS` header; give the \
                 vmlinuz/bzImage file, not vmlinux or a compressed archive)"
            ),
            Self::ProtocolTooOld { protocol } => write!(
                f,
                "Linux boot protocol {}.{:02} is too old: tern needs 2.12 or later (Linux 3.8+)",
                protocol >> 8,
                protocol & 0xff
            ),
            Self::Not64Bit => write!(
                f,
                "not a 64-bit kernel (XLF_KERNEL_64 clear): tern boots x86_64 kernels only"
            ),
            Self::NotLoadedHigh => {
                write!(f, "a zImage that runs below 1 MiB: tern needs a bzImage")
            }
            Self::SetupBeyondFile { setup_sects, len } => write!(
                f,
                "corrupt bzImage: {setup_sects} setup sectors reach past the end of the {len}-byte file"
            ),
            Self::PayloadOutsideKernel { offset, len } => write!(
                f,
                "corrupt bzImage: payload at {offset:#x} (+{len:#x}) lies outside the kernel"
            ),
            Self::InitSizeTooSmall {
                init_size,
                kernel_len,
            } => write!(
                f,
                "corrupt bzImage: init_size {init_size:#x} is smaller than the {kernel_len:#x}-byte kernel"
            ),
            Self::BadAlignment(a) => write!(
                f,
                "corrupt bzImage: kernel_alignment {a:#x} is not a power of two"
            ),
            Self::BadHeaderLength(end) => write!(
                f,
                "corrupt bzImage: setup header ends at {end:#x}, outside 0x264..=0x400"
            ),
        }
    }
}

fn u8_at(b: &[u8], o: usize) -> u8 {
    b[o]
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from(u32_at(b, o)) | (u64::from(u32_at(b, o + 4)) << 32)
}

impl BzImage {
    /// Parse and check the header of the kernel file `file`.
    pub fn parse(file: &[u8]) -> Result<BzImage, BzImageError> {
        if file.len() < MIN_FILE_LEN {
            return Err(BzImageError::TooShort { len: file.len() });
        }
        // Every offset below is < MIN_FILE_LEN, so the accessors cannot go out of bounds.
        if u16_at(file, 0x1fe) != BOOT_FLAG || u32_at(file, 0x202) != HEADER_MAGIC {
            return Err(BzImageError::NotBzImage);
        }
        let protocol = u16_at(file, 0x206);
        if protocol < MIN_PROTOCOL {
            return Err(BzImageError::ProtocolTooOld { protocol });
        }
        let xloadflags = u16_at(file, 0x236);
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(BzImageError::Not64Bit);
        }
        if u8_at(file, 0x211) & LOADED_HIGH == 0 {
            return Err(BzImageError::NotLoadedHigh);
        }
        let header_end = 0x202 + usize::from(u8_at(file, 0x201));
        if !(MIN_FILE_LEN..=0x400).contains(&header_end) || header_end > file.len() {
            return Err(BzImageError::BadHeaderLength(header_end));
        }
        let setup_sects = match u8_at(file, 0x1f1) {
            0 => 4,
            n => n,
        };
        let kernel_offset = (usize::from(setup_sects) + 1) * 512;
        if kernel_offset >= file.len() {
            return Err(BzImageError::SetupBeyondFile {
                setup_sects,
                len: file.len(),
            });
        }
        let kernel_len = file.len() - kernel_offset;
        let (payload_offset, payload_len) = (u32_at(file, 0x248), u32_at(file, 0x24c));
        let payload_end = u64::from(payload_offset) + u64::from(payload_len);
        if payload_len == 0 || payload_end > kernel_len as u64 {
            return Err(BzImageError::PayloadOutsideKernel {
                offset: payload_offset,
                len: payload_len,
            });
        }
        let init_size = u64::from(u32_at(file, 0x260));
        if init_size < kernel_len as u64 {
            return Err(BzImageError::InitSizeTooSmall {
                init_size,
                kernel_len,
            });
        }
        let alignment = u32_at(file, 0x230);
        if !alignment.is_power_of_two() {
            return Err(BzImageError::BadAlignment(alignment));
        }
        Ok(BzImage {
            protocol,
            setup_sects,
            kernel_offset,
            kernel_len,
            init_size,
            pref_address: u64_at(file, 0x258),
            kernel_alignment: u64::from(alignment),
            relocatable: u8_at(file, 0x234) != 0,
            initrd_addr_max: u64::from(u32_at(file, 0x22c)),
            cmdline_size: u32_at(file, 0x238),
            xloadflags,
            header_end,
        })
    }

    /// The least guest RAM (from guest-physical 0) that holds this kernel at its preferred
    /// address with its `init_size`, and an initrd of `initrd_len` bytes above it (both
    /// page-rounded): what the hypervisor's Linux layout needs, so that the loader can
    /// refuse a VM whose memory is too small before anything boots.
    pub fn memory_needed(&self, initrd_len: u64) -> u64 {
        let page_up = |n: u64| n.saturating_add(0xfff) & !0xfff;
        let kernel_end = page_up(self.pref_address.saturating_add(self.init_size));
        match initrd_len {
            0 => kernel_end,
            len => kernel_end.saturating_add(page_up(len)),
        }
    }

    /// The protected-mode kernel: what is copied to the load address.
    pub fn kernel<'a>(&self, file: &'a [u8]) -> Option<&'a [u8]> {
        file.get(self.kernel_offset..)
    }

    /// The setup header bytes `[0x1f1, header_end)`, copied into `boot_params.hdr`.
    pub fn setup_header<'a>(&self, file: &'a [u8]) -> Option<&'a [u8]> {
        file.get(SETUP_HEADER_OFFSET..self.header_end)
    }
}
