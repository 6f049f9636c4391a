//! EPT violations on device windows: the bare-metal end of [`crate::vm::mmio`].
//!
//! Why before the scratch page: an address outside RAM that a device's MMIO window covers
//! must reach the device on every access, so it stays unmapped in EPT and each access is
//! emulated ([`emulate_mmio_access`]); only addresses no device claims fall through to
//! `outside_ram`'s scratch page. An instruction tern cannot emulate stops this VM with a
//! crash reason naming the bytes.

use core::cell::RefCell;

use super::Machine;
use super::devices::HwHost;
use crate::vm::board::{ApicWindow, IoApicWindow};
use crate::vm::console_out::LineOutput;
use crate::vm::exit_handler::CrashReason;
use crate::vm::exit_handler::HostCpu;
use crate::vm::mmio::{MmioBus, MmioRegion, emulate_mmio_access};
use crate::vm::virtio::guest_ram_memory::GuestRamMemory;
use crate::vm::virtio::mmio_window::VirtioMmioWindow;
use crate::vm::virtio_blk::placement::{DISK_WINDOW_BYTES, DISK_WINDOW_GPA};
use crate::vmx::ept::PAGE_SIZE;
use crate::vmx::error::VmxError;
use crate::vmx::frames::FrameSource;
use crate::vmx::hw::VmxOn;
use crate::vmx::hw::vcpu::HwVcpu;

/// What became of an access outside guest RAM.
pub(super) enum MmioExit {
    /// No device window covers the address.
    NotADevice,
    /// Emulated; the guest continues after the instruction.
    Done,
    /// The access could not be emulated: stop the VM.
    Crash(CrashReason),
}

impl<O: LineOutput> Machine<O> {
    /// Emulate the access at `gpa` if a device window covers it.
    pub(super) fn mmio_exit(
        &mut self,
        vmx: &mut VmxOn,
        frames: &impl FrameSource,
        vcpu: &mut HwVcpu,
        gpa: u64,
    ) -> Result<MmioExit, VmxError> {
        if gpa < self.ram.size() {
            return Ok(MmioExit::NotADevice);
        }
        // The VM's device windows: the local APIC's xAPIC page (wherever IA32_APIC_BASE
        // puts it) and the I/O APIC page. A guest that moves the APIC page onto the I/O
        // APIC's loses the APIC window (the overlap is refused), as it would on a board
        // where both decode the address.
        let now = HwHost {
            xsave: false,
            tsc_offset: self.tsc_offset,
        }
        .guest_tsc();
        let apic_base = self.board.apic_base();
        let ioapic_base = self.board.ioapic_base();
        let board = RefCell::new(&mut self.board);
        let mut apic = ApicWindow { board: &board, now };
        let mut ioapic = IoApicWindow { board: &board };
        let mut bus = MmioBus::new();
        let page = |base| MmioRegion {
            base,
            len: PAGE_SIZE,
        };
        let _ = bus.add(page(ioapic_base), &mut ioapic);
        let _ = bus.add(page(apic_base), &mut apic);
        // The disk's virtio-mmio transport (`disk.rs`), when the VM has one.
        let mut disk_window = self.disk.as_mut().map(|transport| VirtioMmioWindow {
            transport,
            mem: GuestRamMemory::new(&self.ram, frames),
        });
        if let Some(window) = disk_window.as_mut() {
            let region = MmioRegion {
                base: DISK_WINDOW_GPA,
                len: DISK_WINDOW_BYTES,
            };
            if let Err(e) = bus.add(region, window) {
                log::error!("vm {}: disk window: {e}", self.name);
            }
        }
        if !bus.covers(gpa) {
            return Ok(MmioExit::NotADevice);
        }
        let mem = GuestRamMemory::new(&self.ram, frames);
        let result = vcpu.with_vmcs(vmx, |vmcs, regs| {
            emulate_mmio_access(vmcs, regs, &mem, &mut bus, gpa)
        });
        // The disk's InterruptACK (or a notify that completed a request) changes its
        // line: the board sees it before the guest's EOI (`Board::set_disk_irq`).
        if let Some(disk) = self.disk.as_ref() {
            self.board.set_disk_irq(disk.interrupt_level());
        }
        let result = result?;
        Ok(match result {
            Ok(_) => MmioExit::Done,
            Err(e) => MmioExit::Crash(CrashReason::Mmio(e)),
        })
    }
}
