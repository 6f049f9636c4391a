//! Guest accesses outside RAM. Nothing but guest RAM is mapped in a VM's EPT, so such an
//! access is an EPT violation; without device models behind those addresses (LAPIC,
//! IOAPIC, HPET are not modelled yet) tern backs the page with the VM's single scratch
//! frame, so the guest continues and anything it writes stays in memory it owns. After
//! [`MAX_UNMAPPED_PAGES`] distinct pages the VM is stopped as crashed.

use alloc::format;

use super::Machine;
use crate::vm::console_out::LineOutput;
use crate::vm::exit_handler::CrashReason;
use crate::vmx::ept::{MemoryType, PAGE_SIZE, Permissions};
use crate::vmx::frames::{FrameSource, FrameTables};
use crate::vmx::hw::VmxOn;

/// Most distinct pages outside RAM a guest may touch before it is stopped.
pub const MAX_UNMAPPED_PAGES: u32 = 64;

impl<O: LineOutput> Machine<O> {
    /// An access outside guest RAM: back that page with this VM's single "void" frame
    /// (so the guest continues, and whatever it writes there stays inside its own
    /// allocation), up to [`MAX_UNMAPPED_PAGES`] distinct pages.
    pub(super) fn map_void_page(
        &mut self,
        vmx: &mut VmxOn,
        frames: &mut impl FrameSource,
        gpa: u64,
        write: bool,
    ) -> Result<(), CrashReason> {
        let page = gpa & !(PAGE_SIZE - 1);
        let crash = CrashReason::Unhandled {
            reason: crate::vmx::exit::reason::EPT_VIOLATION,
            qualification: gpa,
        };
        self.unmapped_pages += 1;
        if self.unmapped_pages > MAX_UNMAPPED_PAGES {
            return Err(crash);
        }
        self.say(&format!(
            "[tern] {} outside guest RAM at {gpa:#x}: backed by a scratch page ({} of {})",
            if write { "write" } else { "read" },
            self.unmapped_pages,
            MAX_UNMAPPED_PAGES
        ));
        let void = match self.void_frame {
            Some(f) => f,
            None => {
                let f = frames.allocate_zeroed().ok_or(crash)?;
                self.void_frame = Some(f);
                f
            }
        };
        let mut tables = FrameTables(frames);
        let rw = Permissions {
            read: true,
            write: true,
            execute: false,
        };
        self.ept
            .map(
                &mut tables,
                page,
                void,
                PAGE_SIZE,
                rw,
                MemoryType::WriteBack,
            )
            .map_err(|_| crash)?;
        vmx.invept(self.eptp).map_err(|_| crash)
    }

    /// Zero a frame (the scratch page, so no data of a previous boot survives).
    pub(super) fn ram_fill_frame(&self, frames: &impl FrameSource, frame: u64) {
        // SAFETY: the scratch frame belongs to this VM (allocated in `map_void_page`) and
        // is reachable through `phys_to_virt` (FrameSource contract).
        unsafe { core::ptr::write_bytes(frames.phys_to_virt(frame), 0, PAGE_SIZE as usize) };
    }
}
