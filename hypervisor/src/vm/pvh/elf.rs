//! A small, checked ELF reader: just the program headers and the PVH entry note.

use alloc::vec::Vec;

use super::PvhError;
use super::start_info::{BOOT_PARAMS_LEN, START_INFO_GPA};

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const ET_EXEC: u16 = 2;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
/// `XEN_ELFNOTE_PHYS32_ENTRY` (Xen `public/elfnote.h`).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// We never walk more program headers than this.
const MAX_PHDRS: u16 = 64;

/// A PT_LOAD segment, checked against the file and guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// Offset of the segment's bytes in the file.
    pub file_offset: u64,
    /// Bytes to copy from the file.
    pub file_size: u64,
    /// Guest-physical load address (`p_paddr`).
    pub guest_phys: u64,
    /// Bytes the segment occupies in guest memory; `file_size..mem_size` is zeroed.
    pub mem_size: u64,
}

/// A parsed and validated PVH guest image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvhImage {
    /// 32-bit protected-mode entry point from the PVH note.
    pub entry: u32,
    /// The PT_LOAD segments, sorted by guest address, non-overlapping, inside guest RAM.
    pub segments: Vec<LoadSegment>,
}

fn bytes<const N: usize>(data: &[u8], at: u64, what: &'static str) -> Result<[u8; N], PvhError> {
    let start = usize::try_from(at).map_err(|_| PvhError::Truncated(what))?;
    let end = start.checked_add(N).ok_or(PvhError::Truncated(what))?;
    data.get(start..end)
        .and_then(|s| s.try_into().ok())
        .ok_or(PvhError::Truncated(what))
}

fn u16_at(data: &[u8], at: u64, what: &'static str) -> Result<u16, PvhError> {
    bytes::<2>(data, at, what).map(u16::from_le_bytes)
}

fn u32_at(data: &[u8], at: u64, what: &'static str) -> Result<u32, PvhError> {
    bytes::<4>(data, at, what).map(u32::from_le_bytes)
}

fn u64_at(data: &[u8], at: u64, what: &'static str) -> Result<u64, PvhError> {
    bytes::<8>(data, at, what).map(u64::from_le_bytes)
}

/// A program header, widened to 64 bits.
struct Phdr {
    kind: u32,
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

fn read_phdr(data: &[u8], at: u64, is64: bool) -> Result<Phdr, PvhError> {
    const W: &str = "program header";
    Ok(if is64 {
        Phdr {
            kind: u32_at(data, at, W)?,
            offset: u64_at(data, at + 8, W)?,
            paddr: u64_at(data, at + 24, W)?,
            filesz: u64_at(data, at + 32, W)?,
            memsz: u64_at(data, at + 40, W)?,
        }
    } else {
        Phdr {
            kind: u32_at(data, at, W)?,
            offset: u32_at(data, at + 4, W)?.into(),
            paddr: u32_at(data, at + 12, W)?.into(),
            filesz: u32_at(data, at + 16, W)?.into(),
            memsz: u32_at(data, at + 20, W)?.into(),
        }
    })
}

/// Find the PVH entry in one PT_NOTE segment's bytes.
fn find_pvh_entry(notes: &[u8]) -> Result<Option<u64>, PvhError> {
    let mut at = 0u64;
    let len = notes.len() as u64;
    while at + 12 <= len {
        let namesz = u64::from(u32_at(notes, at, "note")?);
        let descsz_raw = u32_at(notes, at + 4, "note")?;
        let descsz = u64::from(descsz_raw);
        let kind = u32_at(notes, at + 8, "note")?;
        let name_at = at + 12;
        let desc_at = name_at
            .checked_add(namesz.next_multiple_of(4))
            .ok_or(PvhError::MalformedNote)?;
        let next = desc_at
            .checked_add(descsz.next_multiple_of(4))
            .ok_or(PvhError::MalformedNote)?;
        if desc_at + descsz > len || name_at + namesz > len {
            return Err(PvhError::MalformedNote);
        }
        // Name "Xen" with its NUL (namesz 4), as Xen's ELFNOTE macro emits it.
        let name = &notes[name_at as usize..(name_at + namesz) as usize];
        if kind == XEN_ELFNOTE_PHYS32_ENTRY && name == b"Xen\0" {
            return match descsz {
                4 => Ok(Some(u32_at(notes, desc_at, "note")?.into())),
                8 => Ok(Some(u64_at(notes, desc_at, "note")?)),
                _ => Err(PvhError::BadEntryNoteSize(descsz_raw)),
            };
        }
        at = next;
    }
    Ok(None)
}

/// Parse `data` as a PVH guest for `ram_size` bytes of guest RAM starting at guest-physical
/// 0. Segments must fit in RAM, must not overlap each other or the boot parameter page at
/// [`START_INFO_GPA`], and the entry point must lie in a segment.
pub fn parse_elf(data: &[u8], ram_size: u64) -> Result<PvhImage, PvhError> {
    let ident = bytes::<16>(data, 0, "ELF header")?;
    if ident[0..4] != *b"\x7fELF" {
        return Err(PvhError::NotElf);
    }
    let is64 = match ident[4] {
        1 => false,
        2 => true,
        c => return Err(PvhError::BadClass(c)),
    };
    if ident[5] != 1 {
        return Err(PvhError::NotLittleEndian);
    }
    let e_type = u16_at(data, 16, "ELF header")?;
    if e_type != ET_EXEC {
        return Err(PvhError::NotExecutable(e_type));
    }
    let machine = u16_at(data, 18, "ELF header")?;
    if machine != EM_386 && machine != EM_X86_64 {
        return Err(PvhError::BadMachine(machine));
    }
    let (phoff, phentsize, phnum, expected) = if is64 {
        (
            u64_at(data, 32, "ELF header")?,
            u16_at(data, 54, "ELF header")?,
            u16_at(data, 56, "ELF header")?,
            56,
        )
    } else {
        (
            u32_at(data, 28, "ELF header")?.into(),
            u16_at(data, 42, "ELF header")?,
            u16_at(data, 44, "ELF header")?,
            32,
        )
    };
    if phentsize != expected {
        return Err(PvhError::BadPhentsize(phentsize));
    }
    if phnum > MAX_PHDRS {
        return Err(PvhError::TooManyPhdrs(phnum));
    }
    let mut segments = Vec::new();
    let mut entry = None;
    for i in 0..u64::from(phnum) {
        let at = phoff
            .checked_add(i * u64::from(phentsize))
            .ok_or(PvhError::Truncated("program header"))?;
        let ph = read_phdr(data, at, is64)?;
        let file_end = ph.offset.checked_add(ph.filesz);
        if file_end.is_none_or(|end| end > data.len() as u64) {
            return Err(PvhError::SegmentOutsideFile { paddr: ph.paddr });
        }
        match ph.kind {
            PT_LOAD if ph.memsz > 0 => {
                if ph.filesz > ph.memsz {
                    return Err(PvhError::FileSizeExceedsMemSize { paddr: ph.paddr });
                }
                if ph
                    .paddr
                    .checked_add(ph.memsz)
                    .is_none_or(|end| end > ram_size)
                {
                    return Err(PvhError::SegmentOutsideRam {
                        paddr: ph.paddr,
                        size: ph.memsz,
                    });
                }
                if ph.paddr < START_INFO_GPA + BOOT_PARAMS_LEN
                    && START_INFO_GPA < ph.paddr + ph.memsz
                {
                    return Err(PvhError::SegmentOverlapsBootParams { paddr: ph.paddr });
                }
                segments.push(LoadSegment {
                    file_offset: ph.offset,
                    file_size: ph.filesz,
                    guest_phys: ph.paddr,
                    mem_size: ph.memsz,
                });
            }
            PT_NOTE if entry.is_none() => {
                // Bounds were checked above, so the slice is in range.
                let notes = &data[ph.offset as usize..(ph.offset + ph.filesz) as usize];
                entry = find_pvh_entry(notes)?;
            }
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(PvhError::NoLoadSegments);
    }
    segments.sort_by_key(|s| s.guest_phys);
    for pair in segments.windows(2) {
        if pair[0].guest_phys + pair[0].mem_size > pair[1].guest_phys {
            return Err(PvhError::SegmentsOverlap {
                a: pair[0].guest_phys,
                b: pair[1].guest_phys,
            });
        }
    }
    let entry = entry.ok_or(PvhError::NoPvhNote)?;
    let inside = segments
        .iter()
        .any(|s| (s.guest_phys..s.guest_phys + s.mem_size).contains(&entry));
    let entry32 = u32::try_from(entry).map_err(|_| PvhError::EntryOutsideImage(entry))?;
    if !inside {
        return Err(PvhError::EntryOutsideImage(entry));
    }
    Ok(PvhImage {
        entry: entry32,
        segments,
    })
}

impl PvhImage {
    /// Copy the segments of `data` (the same bytes given to [`parse_elf`]) into guest memory
    /// through `write(gpa, bytes)`, and zero each segment's tail (`.bss`) through
    /// `zero(gpa, len)`. Guest RAM is expected to be zeroed already, but a restarted VM
    /// reuses its frames, so the tail is cleared explicitly.
    pub fn load<E>(
        &self,
        data: &[u8],
        mut write: impl FnMut(u64, &[u8]) -> Result<(), E>,
        mut zero: impl FnMut(u64, u64) -> Result<(), E>,
    ) -> Result<(), PvhError> {
        for s in &self.segments {
            // Checked against the file length in `parse_elf`.
            let from = s.file_offset as usize;
            let bytes = data.get(from..from + s.file_size as usize).ok_or(
                PvhError::SegmentOutsideFile {
                    paddr: s.guest_phys,
                },
            )?;
            write(s.guest_phys, bytes).map_err(|_| PvhError::GuestMemory(s.guest_phys))?;
            let tail = s.mem_size - s.file_size;
            if tail > 0 {
                let at = s.guest_phys + s.file_size;
                zero(at, tail).map_err(|_| PvhError::GuestMemory(at))?;
            }
        }
        Ok(())
    }
}
