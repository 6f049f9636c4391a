//! Loading the hypervisor ELF: every PT_LOAD segment is copied into one physically contiguous
//! block of [`boot_proto::memory_type::HYPERVISOR_IMAGE`] pages, bss zeroed; the page-table
//! builder then maps each 4 KiB page at its link address with the segment's permissions.

use crate::boot::allocate_zeroed;
use crate::error::LoaderError;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use xmas_elf::ElfFile;
use xmas_elf::program::{ProgramHeader, Type};

const PAGE: u64 = 4096;

/// Permissions of one mapped page of the image.
#[derive(Clone, Copy, Debug, Default)]
pub struct PagePerms {
    pub write: bool,
    pub execute: bool,
}

/// The loaded image: `virt_base` (page aligned) maps to `phys_base`, `pages` long.
pub struct LoadedImage {
    pub entry: u64,
    pub virt_base: u64,
    pub phys_base: u64,
    /// Permissions per 4 KiB page from `virt_base`.
    pub pages: Vec<PagePerms>,
}

impl LoadedImage {
    pub fn len_bytes(&self) -> u64 {
        self.pages.len() as u64 * PAGE
    }
}

fn bad(path: &str, reason: impl Into<String>) -> LoaderError {
    LoaderError::HypervisorElf {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Parses and loads the image. Checks: 64-bit x86-64 executable, at least one PT_LOAD,
/// segments inside the file and inside the higher half, entry inside an executable segment.
pub fn load(path: &str, bytes: &[u8]) -> Result<LoadedImage, LoaderError> {
    let elf = ElfFile::new(bytes).map_err(|e| bad(path, e))?;
    if elf.header.pt1.class() != xmas_elf::header::Class::SixtyFour {
        return Err(bad(path, "not a 64-bit ELF"));
    }
    if elf.header.pt2.machine().as_machine() != xmas_elf::header::Machine::X86_64 {
        return Err(bad(path, "not an x86-64 ELF"));
    }
    let mut segments: Vec<(u64, u64, u64, u64, PagePerms)> = Vec::new();
    for ph in elf.program_iter() {
        let ProgramHeader::Ph64(ph) = ph else {
            return Err(bad(path, "32-bit program header"));
        };
        if ph.get_type() != Ok(Type::Load) || ph.mem_size == 0 {
            continue;
        }
        if ph.file_size > ph.mem_size {
            return Err(bad(path, "segment file size exceeds its memory size"));
        }
        let file_end = ph.offset.checked_add(ph.file_size);
        if file_end.is_none_or(|end| end > bytes.len() as u64) {
            return Err(bad(path, "segment extends past the end of the file"));
        }
        if ph.virtual_addr < boot_proto::HYPERVISOR_VIRT_BASE
            || ph.virtual_addr.checked_add(ph.mem_size).is_none()
        {
            return Err(bad(
                path,
                "segment outside the top 2 GiB (wrong linker script?)",
            ));
        }
        let perms = PagePerms {
            write: ph.flags.is_write(),
            execute: ph.flags.is_execute(),
        };
        segments.push((ph.virtual_addr, ph.mem_size, ph.offset, ph.file_size, perms));
    }
    if segments.is_empty() {
        return Err(bad(path, "no PT_LOAD segments"));
    }
    let virt_base = segments.iter().map(|s| s.0).min().unwrap_or(0) & !(PAGE - 1);
    let virt_end = segments
        .iter()
        .map(|s| s.0 + s.1)
        .max()
        .unwrap_or(0)
        .div_ceil(PAGE)
        * PAGE;
    let page_count = ((virt_end - virt_base) / PAGE) as usize;
    if page_count > 64 * 1024 {
        return Err(bad(path, "image larger than 256 MiB"));
    }
    let entry = elf.header.pt2.entry_point();
    let entry_ok = segments
        .iter()
        .any(|s| s.4.execute && entry >= s.0 && entry < s.0 + s.1);
    if !entry_ok {
        return Err(bad(path, "entry point is not inside an executable segment"));
    }

    let block = allocate_zeroed(
        boot_proto::memory_type::HYPERVISOR_IMAGE,
        page_count * PAGE as usize,
        "the hypervisor image",
    )?;
    let mut pages = alloc::vec![PagePerms::default(); page_count];
    for (vaddr, mem_size, offset, file_size, perms) in segments {
        let start = (vaddr - virt_base) as usize;
        let src = &bytes[offset as usize..(offset + file_size) as usize];
        block[start..start + src.len()].copy_from_slice(src);
        let first = ((vaddr - virt_base) / PAGE) as usize;
        let last = ((vaddr + mem_size - virt_base).div_ceil(PAGE)) as usize;
        for p in &mut pages[first..last] {
            p.write |= perms.write;
            p.execute |= perms.execute;
        }
    }
    Ok(LoadedImage {
        entry,
        virt_base,
        phys_base: block.as_ptr() as u64,
        pages,
    })
}
