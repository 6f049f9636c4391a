//! COM1 output, polled: wait for LSR.THRE, write THR. Works on any 16550 model.

use crate::cpu::{inb, outb};

const COM1: u16 = 0x3f8;

/// Program 115200 8N1, FIFOs on, interrupts off.
pub fn init() {
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0xc7);
    outb(COM1 + 4, 0x03);
}

fn write_byte(byte: u8) {
    // A missing UART reads 0xff (THRE set), so this never spins forever.
    while inb(COM1 + 5) & 0x20 == 0 {
        core::hint::spin_loop();
    }
    outb(COM1, byte);
}

/// `core::fmt` writer for COM1, translating `\n` to `\r\n`.
pub struct Com1;

impl core::fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                write_byte(b'\r');
            }
            write_byte(b);
        }
        Ok(())
    }
}

/// `println!`-like output to COM1.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::serial::Com1, $($arg)*);
    }};
}
