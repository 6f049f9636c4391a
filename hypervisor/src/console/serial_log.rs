//! The `log` backend: every record goes to COM1 as `[uptime] LEVEL message`.

use core::fmt::Write;

use log::{LevelFilter, Log, Metadata, Record};

use super::log_format::write_prefix;
use crate::arch::serial::SerialWriter;
use crate::arch::tsc::uptime_ns;

struct SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        // Format into a buffer first so one record is one locked write and never interleaves.
        let mut line = alloc_free_line::Line::new();
        let _ = write_prefix(&mut line, uptime_ns(), record.level());
        let _ = writeln!(line, "{}", record.args());
        crate::arch::serial::write_bytes(line.as_bytes());
        if line.truncated() {
            let _ = SerialWriter.write_str(" [log line truncated]\n");
        }
    }

    fn flush(&self) {}
}

/// A fixed buffer, because logging must work before the heap exists.
mod alloc_free_line {
    const CAPACITY: usize = 512;

    pub struct Line {
        buf: [u8; CAPACITY],
        len: usize,
        truncated: bool,
    }

    impl Line {
        pub fn new() -> Line {
            Line {
                buf: [0; CAPACITY],
                len: 0,
                truncated: false,
            }
        }

        pub fn as_bytes(&self) -> &[u8] {
            &self.buf[..self.len]
        }

        pub fn truncated(&self) -> bool {
            self.truncated
        }
    }

    impl core::fmt::Write for Line {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let room = CAPACITY - self.len;
            let n = s.len().min(room);
            self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            if n < s.len() {
                self.truncated = true;
            }
            Ok(())
        }
    }
}

static LOGGER: SerialLogger = SerialLogger;

/// Installs the serial logger (all levels up to `Info`; `Debug` and `Trace` are compiled in but
/// filtered).
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}
