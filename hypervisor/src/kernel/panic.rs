//! The panic handler: a panic in the hypervisor is a bug report, so print everything useful on
//! the console and halt.

use core::fmt::Write;
use core::panic::PanicInfo;

use crate::arch::cpu::{control_registers, halt_forever, stack_registers};
use crate::arch::serial::emergency_writer;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    let mut w = emergency_writer();
    let _ = writeln!(w, "\n*** PANIC: {}", info.message());
    if let Some(loc) = info.location() {
        let _ = writeln!(w, "at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    let (rsp, rbp) = stack_registers();
    let cr = control_registers();
    let _ = writeln!(
        w,
        "rsp {rsp:#018x} rbp {rbp:#018x}\ncr0 {:#018x} cr2 {:#018x} cr3 {:#018x} cr4 {:#018x}",
        cr.cr0, cr.cr2, cr.cr3, cr.cr4
    );
    let _ = writeln!(
        w,
        "*** halted: this is a hypervisor bug; please report the lines above"
    );
    halt_forever()
}
