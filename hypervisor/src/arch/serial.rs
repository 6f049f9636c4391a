//! COM1 (I/O port 0x3f8), the operator's console: 115200 8N1, polled, no interrupts.
//!
//! One lock guards the UART so log lines and shell output never interleave within a write.
//! The panic and exception paths use [`emergency_writer`], which takes the lock even if the
//! code that crashed was holding it (the crashed code will never run again).

use core::fmt;

use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::LSR;
use uart_16550::{BaudRate, Config, Uart16550};

/// I/O base of COM1.
pub const COM1_PORT: u16 = 0x3f8;

struct Com1 {
    uart: Option<Uart16550<PioBackend>>,
    /// Last byte sent, to turn a lone `\n` into `\r\n` without doubling an explicit `\r\n`.
    last: u8,
}

static COM1: Mutex<Com1> = Mutex::new(Com1 {
    uart: None,
    last: 0,
});

/// Initialises COM1. Without a UART the hypervisor still runs, silently.
pub fn init() -> Result<(), uart_16550::InitError> {
    // SAFETY: 0x3f8 is the architectural COM1 base and nothing else in tern drives it; the
    // constructor only validates the address, it does not touch the device.
    let mut uart = unsafe { Uart16550::new_port(COM1_PORT) }
        .map_err(|_| uart_16550::InitError::DeviceNotPresent)?;
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    uart.init(config)?;
    COM1.lock().uart = Some(uart);
    Ok(())
}

impl Com1 {
    fn send(&mut self, bytes: &[u8]) {
        let Some(uart) = self.uart.as_mut() else {
            return;
        };
        for &b in bytes {
            if b == b'\n' && self.last != b'\r' {
                uart.send_bytes_exact(b"\r");
            }
            uart.send_bytes_exact(&[b]);
            self.last = b;
        }
    }
}

/// Sends bytes as they are (apart from `\n` → `\r\n`).
pub fn write_bytes(bytes: &[u8]) {
    COM1.lock().send(bytes);
}

/// One received byte, if any is waiting (never blocks).
pub fn try_read_byte() -> Option<u8> {
    COM1.lock()
        .uart
        .as_mut()
        .and_then(|u| u.try_receive_byte().ok())
}

/// Waits until every byte written so far has left the transmitter (before power-off).
pub fn flush() {
    let mut com1 = COM1.lock();
    if let Some(uart) = com1.uart.as_mut() {
        for _ in 0..10_000_000 {
            if uart.lsr().contains(LSR::TRANSMITTER_EMPTY) {
                break;
            }
            core::hint::spin_loop();
        }
    }
}

/// `core::fmt::Write` onto COM1; each `write_str` takes the lock once.
pub struct SerialWriter;

impl fmt::Write for SerialWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Writer for the panic and exception paths: works even if the crashed code held the lock.
pub struct EmergencyWriter;

impl fmt::Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(mut com1) = COM1.try_lock() {
            com1.send(s.as_bytes());
            return Ok(());
        }
        // SAFETY: we only get here on the crash path, with interrupts disabled and a single
        // CPU: the lock holder was interrupted by the fault and will never resume, so no one
        // else can be inside the critical section.
        unsafe { COM1.force_unlock() };
        COM1.lock().send(s.as_bytes());
        Ok(())
    }
}

/// See [`EmergencyWriter`].
pub fn emergency_writer() -> EmergencyWriter {
    EmergencyWriter
}
