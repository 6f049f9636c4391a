//! Raw transmit benchmark: how fast the NIC takes maximum-size frames (of its configured
//! MTU), without TCP.
//!
//! Sends broadcast frames with the IEEE "local experimental" EtherType 0x88B5 (so no host
//! stack on the segment interprets them) as fast as the transmit ring accepts them, and
//! reports frames/s and MiB/s. It is the upper bound nettest and migration can reach on a
//! given NIC/emulator. A NIC that stops accepting frames (link down, stalled ring) ends
//! the run with an error instead of spinning forever.

use core::fmt;

use super::nettest::report::{Mib, MibPerSec, Seconds};
use alloc::vec;

use super::nic::{Nic, TxError};

/// EtherType for local experiments (IEEE 802 local experimental 1).
pub const BENCH_ETHERTYPE: u16 = 0x88b5;
/// Give up when the NIC accepts nothing for this long.
pub const STALL_TIMEOUT_US: u64 = 1_000_000;

/// What the receiving side saw of a raw run: benchmark frames counted as they arrive (the
/// stack drops them afterwards; smoltcp does not know the EtherType), timed from the first to
/// the last arrival. This is the rate the emulated NIC pair actually delivers, which on a
/// lossy backend (Bochs' UDP sockets) is far below what the sender's ring accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxSink {
    /// Benchmark frames received.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Arrival time of the first one (microseconds).
    pub first_us: u64,
    /// Arrival time of the last one.
    pub last_us: u64,
}

impl RxSink {
    /// Account `frames`/`bytes` newly seen at `now_us`.
    pub fn record(&mut self, frames: u64, bytes: u64, now_us: u64) {
        if frames == 0 {
            return;
        }
        if self.frames == 0 {
            self.first_us = now_us;
        }
        self.frames += frames;
        self.bytes += bytes;
        self.last_us = now_us;
    }
}

impl fmt::Display for RxSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.last_us.saturating_sub(self.first_us);
        let per_sec = u128::from(self.frames) * 1_000_000 / u128::from(micros.max(1));
        write!(
            f,
            "bench rx: {} frames, {} in {}: {per_sec} frames/s, {}",
            self.frames,
            Mib(self.bytes),
            Seconds(micros),
            MibPerSec {
                bytes: self.bytes,
                micros
            }
        )
    }
}

/// Result of a completed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchReport {
    /// Frames sent.
    pub frames: u64,
    /// Bytes sent (frame bytes, without FCS).
    pub bytes: u64,
    /// Duration in microseconds.
    pub micros: u64,
    /// Attempts refused because the ring was full (back-pressure seen).
    pub ring_full: u64,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_sec = u128::from(self.frames) * 1_000_000 / u128::from(self.micros.max(1));
        write!(
            f,
            "bench: {} frames, {} in {}: {per_sec} frames/s, {} (ring full {} times)",
            self.frames,
            Mib(self.bytes),
            Seconds(self.micros),
            MibPerSec {
                bytes: self.bytes,
                micros: self.micros
            },
            self.ring_full
        )
    }
}

/// Why a run ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchError {
    /// The link is down.
    LinkDown,
    /// The NIC accepted nothing for [`STALL_TIMEOUT_US`] after `sent` frames.
    Stalled {
        /// Frames sent before the stall.
        sent: u64,
    },
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LinkDown => write!(f, "bench: link is down"),
            Self::Stalled { sent } => {
                write!(f, "bench: NIC stopped accepting frames after {sent} frames")
            }
        }
    }
}

/// Send `frames` maximum-size frames; `now_us` reads the monotonic clock.
pub fn raw_transmit(
    nic: &mut dyn Nic,
    frames: u64,
    now_us: &mut dyn FnMut() -> u64,
) -> Result<BenchReport, BenchError> {
    if !nic.link_up() {
        return Err(BenchError::LinkDown);
    }
    let mut frame = vec![0u8; nic.max_frame_len()];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&nic.mac());
    frame[12..14].copy_from_slice(&BENCH_ETHERTYPE.to_be_bytes());
    let start = now_us();
    let mut last_progress = start;
    let mut report = BenchReport {
        frames: 0,
        bytes: 0,
        micros: 0,
        ring_full: 0,
    };
    while report.frames < frames {
        frame[14..22].copy_from_slice(&report.frames.to_le_bytes());
        match nic.transmit(&frame) {
            Ok(()) => {
                report.frames += 1;
                report.bytes += frame.len() as u64;
                last_progress = now_us();
            }
            Err(TxError::QueueFull) => {
                report.ring_full += 1;
                if now_us().saturating_sub(last_progress) > STALL_TIMEOUT_US {
                    return Err(BenchError::Stalled {
                        sent: report.frames,
                    });
                }
            }
            Err(TxError::LinkDown) => return Err(BenchError::LinkDown),
            Err(TxError::FrameTooLarge { .. } | TxError::FrameTooShort(_)) => {
                // The frame is built to the maximum size; a NIC refusing it cannot bench.
                return Err(BenchError::Stalled {
                    sent: report.frames,
                });
            }
        }
    }
    report.micros = now_us().saturating_sub(start);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_sink_times_first_to_last_arrival() {
        let mut sink = RxSink::default();
        sink.record(0, 0, 5);
        assert_eq!(sink.frames, 0);
        sink.record(1, 1514, 1_000);
        sink.record(999, 999 * 1514, 1_001_000);
        assert_eq!(
            alloc::format!("{sink}"),
            "bench rx: 1000 frames, 1.44 MiB in 1.000 s: 1000 frames/s, 1.44 MiB/s"
        );
    }

    use crate::net::e1000::fake_device::FakeE1000;
    use crate::net::e1000::fake_dma::FakeDma;
    use crate::net::e1000::{E1000, E1000Config};
    use core::cell::Cell;

    fn nic() -> (E1000<FakeE1000, FakeDma>, FakeE1000) {
        let memory = FakeDma::new();
        let device = FakeE1000::new([2, 0, 0, 0, 0, 1], memory.clone());
        let config = E1000Config {
            rx_ring_len: 8,
            tx_ring_len: 16,
            ..E1000Config::default()
        };
        (E1000::new(device.clone(), memory, config).unwrap(), device)
    }

    #[test]
    fn sends_every_frame_and_reports() {
        let (mut nic, device) = nic();
        let clock = Cell::new(0u64);
        let mut now = || {
            clock.set(clock.get() + 10);
            clock.get()
        };
        let report = raw_transmit(&mut nic, 100, &mut now).unwrap();
        assert_eq!(report.frames, 100);
        assert_eq!(report.bytes, 100 * 1514);
        let sent = device.take_sent();
        assert_eq!(sent.len(), 100);
        assert!(
            sent.iter()
                .all(|f| f.len() == 1514 && f[12..14] == [0x88, 0xb5])
        );
        assert_eq!(u64::from_le_bytes(sent[99][14..22].try_into().unwrap()), 99);
        assert!(alloc::format!("{report}").contains("100 frames"));
    }

    #[test]
    fn a_stalled_nic_ends_the_run() {
        let (mut nic, device) = nic();
        device.with(|s| s.tx_paused = true);
        let clock = Cell::new(0u64);
        let mut now = || {
            clock.set(clock.get() + 1000);
            clock.get()
        };
        assert_eq!(
            raw_transmit(&mut nic, 100, &mut now),
            Err(BenchError::Stalled { sent: 15 })
        );
        device.with(|s| s.link_up = false);
        assert_eq!(
            raw_transmit(&mut nic, 1, &mut now),
            Err(BenchError::LinkDown)
        );
    }
}
