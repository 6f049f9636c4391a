//! Guest linear -> guest physical through the guest's own page tables, and the fetch of
//! the instruction bytes at RIP.
//!
//! Why: an EPT violation reports the guest-physical address of the data access but not
//! the instruction that made it (SDM Vol. 3C §29.3.3.2; the VM-exit instruction-length
//! field is not defined for EPT violations, §28.2.5). To emulate the access tern reads
//! the instruction itself, which lives at a guest *linear* address, so it walks the
//! guest's paging structures the way the CPU did a moment earlier (SDM Vol. 3A §4.3
//! 32-bit paging, §4.4 PAE paging, §4.5 4-level paging). Only translation is needed:
//! the CPU already checked permissions and set accessed bits while fetching, so the walk
//! checks presence and page sizes, nothing else. Guest RAM is read through
//! [`GuestMemory`]: a table outside RAM is an error, never a wild read.

use core::fmt;

use crate::vm::virtio::guest_memory::GuestMemory;

/// Longest x86 instruction (SDM Vol. 2A §2.3.11).
pub const MAX_INSTRUCTION_LEN: usize = 15;

const PAGE_4K: u64 = 4096;
const PRESENT: u64 = 1;
const PAGE_SIZE_BIT: u64 = 1 << 7;
/// Physical-address bits 51:12 of a PAE/4-level entry.
const ADDR_MASK_PAE: u64 = 0x000f_ffff_ffff_f000;

/// How the guest translates linear addresses (from CR0.PG, CR4.PAE, EFER.LMA, CR4.LA57).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingMode {
    /// CR0.PG = 0: linear = physical.
    None,
    /// 32-bit paging (CR4.PAE = 0), with 4 MiB pages when CR4.PSE = 1 (SDM §4.3).
    Bits32 {
        /// CR4.PSE.
        pse: bool,
    },
    /// PAE paging (SDM §4.4).
    Pae,
    /// 4-level paging (EFER.LMA = 1, SDM §4.5).
    Level4,
    /// 5-level paging (CR4.LA57): not walked by tern.
    Level5,
}

impl PagingMode {
    /// The mode selected by the guest's real CR0, CR4 and EFER (SDM Vol. 3A §4.1.1,
    /// Table 4-1).
    pub fn from_registers(cr0: u64, cr4: u64, efer: u64) -> Self {
        const CR0_PG: u64 = 1 << 31;
        const CR4_PSE: u64 = 1 << 4;
        const CR4_PAE: u64 = 1 << 5;
        const CR4_LA57: u64 = 1 << 12;
        const EFER_LMA: u64 = 1 << 10;
        if cr0 & CR0_PG == 0 {
            Self::None
        } else if cr4 & CR4_PAE == 0 {
            Self::Bits32 {
                pse: cr4 & CR4_PSE != 0,
            }
        } else if efer & EFER_LMA == 0 {
            Self::Pae
        } else if cr4 & CR4_LA57 != 0 {
            Self::Level5
        } else {
            Self::Level4
        }
    }
}

/// Why a linear address could not be translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageWalkError {
    /// A paging-structure entry on the way is not present.
    NotPresent {
        /// The linear address being translated.
        linear: u64,
        /// The level whose entry is not present (4 = PML4 ... 1 = page table).
        level: u8,
    },
    /// A paging structure (or the final page) lies outside guest RAM.
    OutsideRam {
        /// The linear address being translated.
        linear: u64,
        /// The guest-physical address that is not RAM.
        gpa: u64,
    },
    /// The guest uses 5-level paging, which tern does not walk.
    FiveLevelPaging,
}

impl fmt::Display for PageWalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPresent { linear, level } => write!(
                f,
                "guest linear {linear:#x} is not mapped (level-{level} entry not present)"
            ),
            Self::OutsideRam { linear, gpa } => write!(
                f,
                "guest linear {linear:#x}: paging structure or page at {gpa:#x} is outside RAM"
            ),
            Self::FiveLevelPaging => write!(f, "5-level paging is not supported"),
        }
    }
}

/// The guest's paging state: the mode and CR3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestPaging {
    /// The translation mode.
    pub mode: PagingMode,
    /// Guest CR3.
    pub cr3: u64,
}

impl GuestPaging {
    /// Translate `linear` to a guest-physical address.
    ///
    /// PAE paging reads the four PDPTEs from memory at CR3 rather than from the VMCS
    /// copies the CPU loaded at the last MOV to CR3 (SDM §4.4.1): they differ only if the
    /// guest rewrote its PDPT without reloading CR3, which the CPU would not see either
    /// until the next reload; tern accepts that imprecision.
    pub fn translate(&self, mem: &impl GuestMemory, linear: u64) -> Result<u64, PageWalkError> {
        match self.mode {
            PagingMode::None => Ok(linear & 0xffff_ffff),
            PagingMode::Bits32 { pse } => self.walk_32bit(mem, linear & 0xffff_ffff, pse),
            PagingMode::Pae => {
                let linear = linear & 0xffff_ffff;
                let pdpt = self.cr3 & 0xffff_ffe0;
                let index = (linear >> 30) & 0x3;
                let pdpte = read_entry(mem, linear, pdpt + index * 8)?;
                if pdpte & PRESENT == 0 {
                    return Err(PageWalkError::NotPresent { linear, level: 3 });
                }
                walk_long(mem, linear, pdpte & ADDR_MASK_PAE, 2)
            }
            PagingMode::Level4 => walk_long(mem, linear, self.cr3 & ADDR_MASK_PAE, 4),
            PagingMode::Level5 => Err(PageWalkError::FiveLevelPaging),
        }
    }

    /// 32-bit paging (SDM §4.3, Figures 4-2/4-3): a 4 KiB page directory of 4-byte entries.
    fn walk_32bit(
        &self,
        mem: &impl GuestMemory,
        linear: u64,
        pse: bool,
    ) -> Result<u64, PageWalkError> {
        let pd = self.cr3 & 0xffff_f000;
        let pde = read_entry32(mem, linear, pd + ((linear >> 22) & 0x3ff) * 4)?;
        if pde & PRESENT == 0 {
            return Err(PageWalkError::NotPresent { linear, level: 2 });
        }
        if pse && pde & PAGE_SIZE_BIT != 0 {
            // 4 MiB page: bits 31:22 from the PDE, bits 39:32 from PDE bits 20:13.
            let high = ((pde >> 13) & 0xff) << 32;
            return Ok(high | (pde & 0xffc0_0000) | (linear & 0x3f_ffff));
        }
        let pt = pde & 0xffff_f000;
        let pte = read_entry32(mem, linear, pt + ((linear >> 12) & 0x3ff) * 4)?;
        if pte & PRESENT == 0 {
            return Err(PageWalkError::NotPresent { linear, level: 1 });
        }
        Ok((pte & 0xffff_f000) | (linear & 0xfff))
    }
}

/// PAE / 4-level walk from the table at `table` for `level` (4 = PML4, 2 = page
/// directory), with 1 GiB pages at level 3 and 2 MiB pages at level 2 (SDM §4.5.4).
fn walk_long(
    mem: &impl GuestMemory,
    linear: u64,
    mut table: u64,
    mut level: u8,
) -> Result<u64, PageWalkError> {
    loop {
        let shift = 12 + 9 * u32::from(level - 1);
        let index = (linear >> shift) & 0x1ff;
        let entry = read_entry(mem, linear, table + index * 8)?;
        if entry & PRESENT == 0 {
            return Err(PageWalkError::NotPresent { linear, level });
        }
        let frame = entry & ADDR_MASK_PAE;
        if level == 1 || ((level == 2 || level == 3) && entry & PAGE_SIZE_BIT != 0) {
            let offset_mask = (1u64 << shift) - 1;
            return Ok((frame & !offset_mask) | (linear & offset_mask));
        }
        table = frame;
        level -= 1;
    }
}

fn read_entry(mem: &impl GuestMemory, linear: u64, gpa: u64) -> Result<u64, PageWalkError> {
    mem.read_u64(gpa)
        .map_err(|_| PageWalkError::OutsideRam { linear, gpa })
}

fn read_entry32(mem: &impl GuestMemory, linear: u64, gpa: u64) -> Result<u64, PageWalkError> {
    mem.read_u32(gpa)
        .map(u64::from)
        .map_err(|_| PageWalkError::OutsideRam { linear, gpa })
}

/// The instruction bytes at a guest linear address: up to [`MAX_INSTRUCTION_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstructionBytes {
    /// The bytes; only `len` of them are valid.
    pub bytes: [u8; MAX_INSTRUCTION_LEN],
    /// How many could be fetched (at least 1).
    pub len: usize,
}

impl InstructionBytes {
    /// The fetched bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Fetch up to 15 bytes at `linear`, page by page (an instruction may cross a page). The
/// first page must translate; a later page that does not only shortens the fetch (the
/// instruction may end before it, and the decoder reports a truncated instruction if not).
pub fn fetch_instruction(
    mem: &impl GuestMemory,
    paging: &GuestPaging,
    linear: u64,
) -> Result<InstructionBytes, PageWalkError> {
    let mut out = InstructionBytes {
        bytes: [0; MAX_INSTRUCTION_LEN],
        len: 0,
    };
    while out.len < MAX_INSTRUCTION_LEN {
        let at = linear.wrapping_add(out.len as u64);
        let gpa = match paging.translate(mem, at) {
            Ok(gpa) => gpa,
            Err(e) if out.len == 0 => return Err(e),
            Err(_) => break,
        };
        let in_page = (PAGE_4K - (gpa % PAGE_4K)) as usize;
        let chunk = in_page.min(MAX_INSTRUCTION_LEN - out.len);
        let end = out.len + chunk;
        if mem.read(gpa, &mut out.bytes[out.len..end]).is_err() {
            if out.len == 0 {
                return Err(PageWalkError::OutsideRam { linear: at, gpa });
            }
            break;
        }
        out.len = end;
    }
    Ok(out)
}
