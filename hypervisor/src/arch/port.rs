//! x86 port I/O. Thin wrappers so that callers outside `arch` never write asm; every write is
//! `unsafe` because a port write can reset the machine or reprogram a device under us.

use x86_64::instructions::port::Port;

/// Reads a byte from `port`.
///
/// # Safety
/// Reading some ports has side effects (e.g. acknowledging data); the caller owns the device.
pub unsafe fn inb(port: u16) -> u8 {
    // SAFETY: the caller guarantees the device at `port` may be read (see the function docs).
    unsafe { Port::<u8>::new(port).read() }
}

/// Writes a byte to `port`.
///
/// # Safety
/// The caller owns the device at `port` and knows the effect of the write.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: delegated to the caller (see the function docs).
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Reads a 16-bit word from `port`.
///
/// # Safety
/// As [`inb`].
pub unsafe fn inw(port: u16) -> u16 {
    // SAFETY: delegated to the caller (see the function docs).
    unsafe { Port::<u16>::new(port).read() }
}

/// Writes a 16-bit word to `port`.
///
/// # Safety
/// As [`outb`].
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: delegated to the caller (see the function docs).
    unsafe { Port::<u16>::new(port).write(value) }
}
