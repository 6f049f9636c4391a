//! Building, querying and editing a 4-level EPT hierarchy with 4 KiB leaves.

use super::entry::{EptEntry, MemoryType, Permissions};
use super::{EptError, GUEST_PHYS_LIMIT, HOST_PHYS_LIMIT, PAGE_SIZE, TableMemory};

/// Levels below the PML4: PML4 (3) -> PDPT (2) -> PD (1) -> PT (0).
const TOP_LEVEL: u32 = 3;

/// What a guest-physical address maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// Host-physical address (page address plus the offset within the page).
    pub host_phys: u64,
    /// Access rights of the leaf.
    pub permissions: Permissions,
    /// Memory type of the leaf (`None` for a reserved encoding).
    pub memory_type: Option<MemoryType>,
    /// Leaf accessed flag.
    pub accessed: bool,
    /// Leaf dirty flag.
    pub dirty: bool,
}

/// A VM's EPT hierarchy, identified by its PML4 frame. The frames themselves live in the
/// [`TableMemory`] passed to every operation.
#[derive(Debug)]
pub struct EptTables {
    pml4: u64,
}

/// Bytes covered by one entry at `level` (0 = PT entry = 4 KiB).
fn span(level: u32) -> u64 {
    PAGE_SIZE << (9 * level)
}

fn index(gpa: u64, level: u32) -> usize {
    // Masked to 9 bits, so the cast cannot truncate.
    ((gpa >> (12 + 9 * level)) & 0x1ff) as usize
}

fn check_guest_range(gpa: u64, len: u64) -> Result<u64, EptError> {
    if !gpa.is_multiple_of(PAGE_SIZE) {
        return Err(EptError::Unaligned(gpa));
    }
    if !len.is_multiple_of(PAGE_SIZE) {
        return Err(EptError::Unaligned(len));
    }
    match gpa.checked_add(len) {
        Some(end) if end <= GUEST_PHYS_LIMIT => Ok(end),
        _ => Err(EptError::GuestAddressTooHigh(gpa)),
    }
}

impl EptTables {
    /// An empty hierarchy: one zeroed PML4.
    pub fn new<M: TableMemory>(mem: &mut M) -> Result<Self, EptError> {
        let pml4 = mem.allocate_table().ok_or(EptError::OutOfMemory)?;
        Ok(Self { pml4 })
    }

    /// Physical address of the PML4.
    pub fn pml4(&self) -> u64 {
        self.pml4
    }

    /// The EPTP for this hierarchy (see [`super::eptp`]).
    pub fn eptp(&self, accessed_dirty: bool) -> u64 {
        super::eptp(self.pml4, accessed_dirty)
    }

    /// The page table (level 0) covering `gpa`, creating missing levels when `create`.
    fn page_table<M: TableMemory>(
        &self,
        mem: &mut M,
        gpa: u64,
        create: bool,
    ) -> Result<Option<u64>, EptError> {
        let mut table = self.pml4;
        for level in (1..=TOP_LEVEL).rev() {
            let i = index(gpa, level);
            let entry = EptEntry(mem.table(table)[i]);
            table = if !entry.is_present() {
                if !create {
                    return Ok(None);
                }
                let next = mem.allocate_table().ok_or(EptError::OutOfMemory)?;
                mem.table_mut(table)[i] = EptEntry::table(next).0;
                next
            } else if entry.is_large() {
                return Err(EptError::UnexpectedLargePage(gpa));
            } else {
                entry.address()
            };
        }
        Ok(Some(table))
    }

    /// Map `len` bytes of guest-physical space at `gpa` to host-physical `hpa` with 4 KiB
    /// leaves. Refuses to replace an existing leaf; on any error nothing of this call stays
    /// mapped (intermediate tables it allocated stay, empty).
    pub fn map<M: TableMemory>(
        &mut self,
        mem: &mut M,
        gpa: u64,
        hpa: u64,
        len: u64,
        perms: Permissions,
        memory_type: MemoryType,
    ) -> Result<(), EptError> {
        let end = check_guest_range(gpa, len)?;
        if !hpa.is_multiple_of(PAGE_SIZE) {
            return Err(EptError::Unaligned(hpa));
        }
        if hpa
            .checked_add(len)
            .is_none_or(|host_end| host_end > HOST_PHYS_LIMIT)
        {
            return Err(EptError::HostAddressTooHigh(hpa));
        }
        if perms.write && !perms.read {
            return Err(EptError::WriteWithoutRead);
        }
        let mut already = None;
        self.for_each_leaf(mem, gpa, len, |page, _| {
            already.get_or_insert(page);
        })?;
        if let Some(page) = already {
            return Err(EptError::AlreadyMapped(page));
        }
        let mut page = gpa;
        while page < end {
            let result = self.page_table(mem, page, true);
            let table = match result {
                Ok(Some(table)) => table,
                Ok(None) => return Err(EptError::OutOfMemory),
                Err(e) => {
                    self.unmap(mem, gpa, page - gpa)?;
                    return Err(e);
                }
            };
            let leaf = EptEntry::leaf(hpa + (page - gpa), perms, memory_type);
            mem.table_mut(table)[index(page, 0)] = leaf.0;
            page += PAGE_SIZE;
        }
        Ok(())
    }

    /// Remove every leaf in `[gpa, gpa + len)`; returns how many were mapped. The caller must
    /// INVEPT before the frames are reused (SDM §29.4.3.1).
    pub fn unmap<M: TableMemory>(
        &mut self,
        mem: &mut M,
        gpa: u64,
        len: u64,
    ) -> Result<u64, EptError> {
        let mut removed = 0;
        self.for_each_leaf(mem, gpa, len, |_, entry| {
            *entry = EptEntry(0);
            removed += 1;
        })?;
        Ok(removed)
    }

    /// Translate one guest-physical address.
    pub fn translate<M: TableMemory>(&self, mem: &M, gpa: u64) -> Option<Translation> {
        if gpa >= GUEST_PHYS_LIMIT {
            return None;
        }
        let mut table = self.pml4;
        for level in (0..=TOP_LEVEL).rev() {
            let entry = EptEntry(mem.table(table)[index(gpa, level)]);
            if !entry.is_present() {
                return None;
            }
            if level == 0 || entry.is_large() {
                let offset = gpa & (span(level) - 1);
                return Some(Translation {
                    host_phys: (entry.address() & !(span(level) - 1)) | offset,
                    permissions: entry.permissions(),
                    memory_type: entry.memory_type(),
                    accessed: entry.accessed(),
                    dirty: entry.dirty(),
                });
            }
            table = entry.address();
        }
        None
    }

    /// Call `f(gpa, leaf)` for every present 4 KiB leaf in `[gpa, gpa + len)`, in address
    /// order; changes `f` makes to the entry are written back. Absent subtrees are skipped
    /// whole, so sparse walks are cheap. After changing rights or clearing A/D flags the
    /// caller must INVEPT (SDM §29.4.3.1) before relying on the change.
    pub fn for_each_leaf<M: TableMemory>(
        &self,
        mem: &mut M,
        gpa: u64,
        len: u64,
        mut f: impl FnMut(u64, &mut EptEntry),
    ) -> Result<(), EptError> {
        let end = check_guest_range(gpa, len)?;
        if len == 0 {
            return Ok(());
        }
        walk(mem, self.pml4, TOP_LEVEL, 0, gpa, end, &mut f)
    }

    /// Set the rights of every mapped page in the range; returns how many leaves changed.
    pub fn set_permissions<M: TableMemory>(
        &self,
        mem: &mut M,
        gpa: u64,
        len: u64,
        perms: Permissions,
    ) -> Result<u64, EptError> {
        if perms.write && !perms.read {
            return Err(EptError::WriteWithoutRead);
        }
        let mut changed = 0;
        self.for_each_leaf(mem, gpa, len, |_, entry| {
            if entry.permissions() != perms {
                entry.set_permissions(perms);
                changed += 1;
            }
        })?;
        Ok(changed)
    }

    /// Remove write access from every mapped page in the range (dirty tracking by
    /// write-protection: the next guest write causes an EPT violation). Returns how many
    /// leaves changed.
    pub fn write_protect<M: TableMemory>(
        &self,
        mem: &mut M,
        gpa: u64,
        len: u64,
    ) -> Result<u64, EptError> {
        let mut changed = 0;
        self.for_each_leaf(mem, gpa, len, |_, entry| {
            let mut perms = entry.permissions();
            if perms.write {
                perms.write = false;
                entry.set_permissions(perms);
                changed += 1;
            }
        })?;
        Ok(changed)
    }

    /// Report every page whose dirty flag is set (EPT A/D enabled, SDM §29.3.4) to
    /// `on_dirty`, clearing accessed and dirty flags of all leaves in the range. Returns the
    /// number of dirty pages.
    pub fn harvest_dirty<M: TableMemory>(
        &self,
        mem: &mut M,
        gpa: u64,
        len: u64,
        mut on_dirty: impl FnMut(u64),
    ) -> Result<u64, EptError> {
        let mut dirty = 0;
        self.for_each_leaf(mem, gpa, len, |page, entry| {
            if entry.dirty() {
                on_dirty(page);
                dirty += 1;
            }
            entry.clear_accessed_dirty();
        })?;
        Ok(dirty)
    }

    /// Free every paging structure (not the guest frames the leaves point to). The VM must
    /// not run on this hierarchy any more, and the caller must INVEPT it first.
    pub fn destroy<M: TableMemory>(self, mem: &mut M) {
        free_subtree(mem, self.pml4, TOP_LEVEL);
    }
}

fn walk<M: TableMemory>(
    mem: &mut M,
    table: u64,
    level: u32,
    base: u64,
    start: u64,
    end: u64,
    f: &mut impl FnMut(u64, &mut EptEntry),
) -> Result<(), EptError> {
    let span = span(level);
    let first = index(start, level);
    let last = index(end - 1, level);
    for i in first..=last {
        let entry_base = base + i as u64 * span;
        let entry = EptEntry(mem.table(table)[i]);
        if !entry.is_present() {
            continue;
        }
        if level == 0 {
            let mut edited = entry;
            f(entry_base, &mut edited);
            if edited != entry {
                mem.table_mut(table)[i] = edited.0;
            }
        } else if entry.is_large() {
            return Err(EptError::UnexpectedLargePage(entry_base));
        } else {
            let sub_start = start.max(entry_base);
            let sub_end = end.min(entry_base + span);
            walk(
                mem,
                entry.address(),
                level - 1,
                entry_base,
                sub_start,
                sub_end,
                f,
            )?;
        }
    }
    Ok(())
}

fn free_subtree<M: TableMemory>(mem: &mut M, table: u64, level: u32) {
    if level > 0 {
        for i in 0..super::ENTRIES {
            let entry = EptEntry(mem.table(table)[i]);
            if entry.is_present() && !entry.is_large() {
                free_subtree(mem, entry.address(), level - 1);
            }
        }
    }
    mem.free_table(table);
}
