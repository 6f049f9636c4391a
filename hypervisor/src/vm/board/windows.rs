//! The board's MMIO windows as [`MmioHandler`]s for the VM's MMIO bus: the local APIC's
//! xAPIC page and the I/O APIC page.
//!
//! Both are 32-bit register files (SDM Vol. 3A 11.4.1: xAPIC registers are 128-bit
//! aligned and accessed as 32 bits; 82093AA data sheet 3.0: IOREGSEL/IOWIN are 32-bit).
//! Narrower or misaligned accesses are merged into / taken from the aligned 32-bit
//! register, and an 8-byte access touches the register and the next 4 bytes; that is
//! more lenient than hardware (whose behaviour there is undefined) but never harmful.
//!
//! Both windows reach the whole board (an APIC EOI may re-deliver from the I/O APIC, an
//! I/O APIC write may deliver to the APIC), so they share it through a `RefCell`: the bus
//! calls one handler at a time, so the borrow is never contended.

use core::cell::RefCell;

use super::Board;
use crate::vm::mmio::MmioHandler;

/// The xAPIC page at the local APIC's base; `now` is the guest TSC of the access.
pub struct ApicWindow<'a, 'b> {
    /// The board.
    pub board: &'a RefCell<&'b mut Board>,
    /// Guest TSC.
    pub now: u64,
}

/// The I/O APIC page.
pub struct IoApicWindow<'a, 'b> {
    /// The board.
    pub board: &'a RefCell<&'b mut Board>,
}

fn narrow(dword: u32, offset: u64, size: u8) -> u64 {
    let shift = 8 * (offset & 3) as u32;
    let value = u64::from(dword >> shift);
    if size >= 4 {
        value
    } else {
        value & ((1 << (8 * u32::from(size))) - 1)
    }
}

impl MmioHandler for ApicWindow<'_, '_> {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        // The page is 4 KiB: offsets fit in 32 bits.
        let dword = self
            .board
            .borrow_mut()
            .irq
            .lapic
            .mmio_read((offset & !3) as u32, self.now);
        narrow(dword, offset, size)
    }

    fn write(&mut self, offset: u64, _size: u8, value: u64) {
        // A write of the low bytes is taken as the whole register (Linux and the test
        // guest only write 32 bits; hardware leaves other sizes undefined).
        let reg = (offset & !3) as u32;
        self.board
            .borrow_mut()
            .irq
            .lapic_mmio_write(reg, value as u32, self.now);
    }
}

impl MmioHandler for IoApicWindow<'_, '_> {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        let dword = self
            .board
            .borrow_mut()
            .irq
            .ioapic
            .mmio_read((offset & !3) as u32);
        narrow(dword, offset, size)
    }

    fn write(&mut self, offset: u64, _size: u8, value: u64) {
        self.board
            .borrow_mut()
            .irq
            .ioapic_mmio_write((offset & !3) as u32, value as u32);
    }
}
