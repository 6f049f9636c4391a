//! The shape of a log line on the console: `[    12.345678] INFO  message`. Uptime first so
//! that a serial capture doubles as a boot timeline.

use core::fmt::Write;

/// Writes the prefix for a log record at `uptime_ns` nanoseconds since boot.
pub fn write_prefix(out: &mut dyn Write, uptime_ns: u64, level: log::Level) -> core::fmt::Result {
    let secs = uptime_ns / 1_000_000_000;
    let micros = (uptime_ns % 1_000_000_000) / 1_000;
    let tag = match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARN ",
        log::Level::Info => "INFO ",
        log::Level::Debug => "DEBUG",
        log::Level::Trace => "TRACE",
    };
    write!(out, "[{secs:6}.{micros:06}] {tag} ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn prefix_has_uptime_and_level() {
        let mut s = String::new();
        write_prefix(&mut s, 12_345_678_901, log::Level::Warn).unwrap();
        assert_eq!(s, "[    12.345678] WARN  ");
        let mut s = String::new();
        write_prefix(&mut s, 0, log::Level::Info).unwrap();
        assert_eq!(s, "[     0.000000] INFO  ");
    }
}
