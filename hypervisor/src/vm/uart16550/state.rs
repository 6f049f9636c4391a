//! Save and restore of the UART state for migration: a small versioned byte encoding that
//! is validated field by field before anything is applied.
//!
//! Layout (little-endian), version 1:
//!
//! ```text
//! 0  4  magic "U550"
//! 4  2  version (1)
//! 6  2  divisor latch
//! 8  1  IER        9 LCR       10 MCR      11 SCR
//! 12 1  flags: bit 0 FIFO enabled, bit 1 THR-empty interrupt pending
//! 13 1  MSR delta bits (low nibble)
//! 14 1  number of bytes in the receive FIFO (n)
//! 15 n  receive FIFO contents, oldest first
//! ```
//!
//! A peer controls these bytes during migration, so every field is checked (reserved bits
//! zero, FIFO contents fit the FIFO mode, exact length) and a bad image is an error value,
//! never a panic or a half-restored device.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

use super::{
    IER_IMPLEMENTED, InterruptLine, MCR_IMPLEMENTED, MSR_DELTA_MASK, Registers, SerialSink,
    Uart16550, rx_capacity,
};

const MAGIC: [u8; 4] = *b"U550";
/// Current encoding version.
pub const STATE_VERSION: u16 = 1;
const HEADER_LEN: usize = 15;
/// Longest valid encoding: header plus a full 16-byte FIFO.
pub const MAX_STATE_LEN: usize = HEADER_LEN + super::FIFO_DEPTH;

const FLAG_FIFO_ENABLED: u8 = 0x01;
const FLAG_THR_EMPTY_PENDING: u8 = 0x02;
const FLAGS_KNOWN: u8 = FLAG_FIFO_ENABLED | FLAG_THR_EMPTY_PENDING;

/// Why a saved UART state was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// The state is shorter than its header or than the FIFO length it announces.
    Truncated,
    /// The state is longer than the FIFO length it announces.
    TrailingBytes,
    /// The state does not start with "U550".
    BadMagic,
    /// The state was written by an encoding version this build does not know.
    UnsupportedVersion(u16),
    /// IER has bits set that a 16550A does not implement.
    ReservedIerBits(u8),
    /// MCR has bits set that a 16550A does not implement.
    ReservedMcrBits(u8),
    /// The flags byte has unknown bits set.
    UnknownFlags(u8),
    /// MSR delta bits outside the low nibble.
    ReservedMsrBits(u8),
    /// More received bytes than the FIFO mode holds.
    FifoOverfull {
        /// Bytes in the saved FIFO.
        len: usize,
        /// Capacity in the saved FIFO mode.
        capacity: usize,
    },
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "UART state truncated"),
            Self::TrailingBytes => write!(f, "UART state has trailing bytes"),
            Self::BadMagic => write!(f, "UART state has a bad magic (expected \"U550\")"),
            Self::UnsupportedVersion(v) => write!(f, "UART state version {v} is not supported"),
            Self::ReservedIerBits(v) => write!(f, "UART state IER {v:#04x} has reserved bits"),
            Self::ReservedMcrBits(v) => write!(f, "UART state MCR {v:#04x} has reserved bits"),
            Self::UnknownFlags(v) => write!(f, "UART state flags {v:#04x} has unknown bits"),
            Self::ReservedMsrBits(v) => {
                write!(f, "UART state MSR delta {v:#04x} has reserved bits")
            }
            Self::FifoOverfull { len, capacity } => write!(
                f,
                "UART state receive FIFO holds {len} bytes, more than its capacity {capacity}"
            ),
        }
    }
}

impl<I: InterruptLine, S: SerialSink> Uart16550<I, S> {
    /// Encode the device state (not the sink or the interrupt line) for migration.
    pub fn save_state(&self) -> Vec<u8> {
        encode(self.registers())
    }

    /// Rebuild a UART from [`Self::save_state`] output, wired to `irq` and `sink`. The
    /// interrupt line is driven to the restored level at once.
    pub fn restore_state(bytes: &[u8], irq: I, sink: S) -> Result<Self, RestoreError> {
        Ok(Self::with_registers(decode(bytes)?, irq, sink))
    }
}

fn encode(regs: &Registers) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + regs.rx.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&STATE_VERSION.to_le_bytes());
    out.extend_from_slice(&regs.divisor.to_le_bytes());
    out.extend_from_slice(&[regs.ier, regs.lcr, regs.mcr, regs.scr]);
    let mut flags = 0;
    if regs.fifo_enabled {
        flags |= FLAG_FIFO_ENABLED;
    }
    if regs.thr_empty_pending {
        flags |= FLAG_THR_EMPTY_PENDING;
    }
    out.push(flags);
    out.push(regs.msr_delta);
    // The FIFO never holds more than 16 bytes, so the length fits a byte.
    out.push(u8::try_from(regs.rx.len()).unwrap_or(u8::MAX));
    out.extend(regs.rx.iter());
    out
}

fn decode(bytes: &[u8]) -> Result<Registers, RestoreError> {
    let header = bytes.get(..HEADER_LEN).ok_or(RestoreError::Truncated)?;
    if header[0..4] != MAGIC {
        return Err(RestoreError::BadMagic);
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != STATE_VERSION {
        return Err(RestoreError::UnsupportedVersion(version));
    }
    let divisor = u16::from_le_bytes([header[6], header[7]]);
    let (ier, lcr, mcr, scr) = (header[8], header[9], header[10], header[11]);
    let (flags, msr_delta, rx_len) = (header[12], header[13], usize::from(header[14]));
    if ier & !IER_IMPLEMENTED != 0 {
        return Err(RestoreError::ReservedIerBits(ier));
    }
    if mcr & !MCR_IMPLEMENTED != 0 {
        return Err(RestoreError::ReservedMcrBits(mcr));
    }
    if flags & !FLAGS_KNOWN != 0 {
        return Err(RestoreError::UnknownFlags(flags));
    }
    if msr_delta & !MSR_DELTA_MASK != 0 {
        return Err(RestoreError::ReservedMsrBits(msr_delta));
    }
    let fifo_enabled = flags & FLAG_FIFO_ENABLED != 0;
    let capacity = rx_capacity(fifo_enabled);
    if rx_len > capacity {
        return Err(RestoreError::FifoOverfull {
            len: rx_len,
            capacity,
        });
    }
    let body = &bytes[HEADER_LEN..];
    if body.len() < rx_len {
        return Err(RestoreError::Truncated);
    }
    if body.len() > rx_len {
        return Err(RestoreError::TrailingBytes);
    }
    Ok(Registers {
        divisor,
        ier,
        lcr,
        mcr,
        scr,
        fifo_enabled,
        msr_delta,
        thr_empty_pending: flags & FLAG_THR_EMPTY_PENDING != 0,
        rx: body.iter().copied().collect::<VecDeque<u8>>(),
    })
}
