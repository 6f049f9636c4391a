//! Last-resort machine resets (the ACPI reset register is tried first, in `acpi::power`).

use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

use super::port::{inb, outb};

/// Pulses the CPU reset line through the 8042 keyboard controller (command 0xFE on port
/// 0x64), after waiting (bounded) for its input buffer to drain. Returns if nothing happened.
pub fn keyboard_controller_reset() {
    for _ in 0..100_000 {
        // SAFETY: port 0x64 is the 8042 status register; reading it has no side effects.
        if unsafe { inb(0x64) } & 0x02 == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: 0xFE to the 8042 command port pulses the reset line: resetting the machine is
    // exactly what the caller asked for.
    unsafe { outb(0x64, 0xfe) };
}

/// Resets by triple fault: load an empty IDT and raise an exception, which cannot be
/// delivered, nor can the resulting #DF (SDM Vol. 3A §6.15, "Interrupt 8").
pub fn triple_fault() -> ! {
    let empty = DescriptorTablePointer {
        limit: 0,
        base: VirtAddr::new(0),
    };
    // SAFETY: the point is to make every exception undeliverable so the CPU shuts down and
    // the chipset resets; nothing runs after this.
    unsafe {
        lidt(&empty);
        core::arch::asm!("int3", options(noreturn));
    }
}
