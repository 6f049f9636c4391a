//! The time base: the TSC, calibrated once at boot, gives `uptime_ns()` for logs, `info`,
//! timeouts and (later) preemption-timer budgets.
//!
//! Calibration counts TSC ticks while PIT channel 2 counts down a known interval (the gate
//! method: channel 2's output is readable in port 0x61 bit 5, no interrupts needed). That
//! measures the TSC against the platform's (possibly emulated) clock, which is the clock the
//! rest of the emulated machine runs on; CPUID 0x15/0x16 claims are used only when the PIT
//! does not answer (e.g. PIT-less hardware), and a 1 GHz guess as the very last resort.

use core::sync::atomic::{AtomicU64, Ordering};

use raw_cpuid::CpuId;

use super::port::{inb, outb};
use super::tsc_clock::{TscClock, hz_from_cpuid, hz_from_pit};

static HZ: AtomicU64 = AtomicU64::new(0);
static ORIGIN: AtomicU64 = AtomicU64::new(0);

/// PIT ticks for the calibration interval (~20 ms).
const CALIBRATION_PIT_TICKS: u16 = 23_864;

/// Where the TSC frequency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscSource {
    Pit,
    Cpuid,
    Guess,
}

impl TscSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            TscSource::Pit => "measured against the PIT",
            TscSource::Cpuid => "from CPUID 0x15/0x16",
            TscSource::Guess => "GUESSED (no PIT, no CPUID leaf): times are approximate",
        }
    }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 CPU and CR4.TSD is clear at ring 0 anyway.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Starts the uptime clock at "now" (call first thing at boot).
pub fn set_origin() {
    ORIGIN.store(rdtsc(), Ordering::Relaxed);
}

/// Counts TSC ticks over [`CALIBRATION_PIT_TICKS`] of PIT channel 2; `None` if the PIT
/// output never rises (no PIT).
fn measure_with_pit() -> Option<u64> {
    // SAFETY: ports 0x61 (NMI status/control: speaker gate), 0x43 (PIT mode) and 0x42 (PIT
    // channel 2 data) belong to the legacy timer, which nothing else in tern uses; channel 2
    // only drives the PC speaker, which we keep disconnected (bit 1 clear).
    unsafe {
        let control = inb(0x61);
        // Gate on (bit 0), speaker off (bit 1).
        outb(0x61, (control & !0x02) | 0x01);
        // Channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count), binary.
        outb(0x43, 0b1011_0000);
        outb(0x42, (CALIBRATION_PIT_TICKS & 0xff) as u8);
        outb(0x42, (CALIBRATION_PIT_TICKS >> 8) as u8);
        let start = rdtsc();
        let mut done = false;
        for _ in 0..200_000_000u64 {
            if inb(0x61) & 0x20 != 0 {
                done = true;
                break;
            }
        }
        let end = rdtsc();
        outb(0x61, control);
        done.then(|| end - start)
    }
}

/// Calibrates the TSC; returns the clock and where its frequency came from.
pub fn calibrate() -> (TscClock, TscSource) {
    let (hz, source) = if let Some(hz) =
        measure_with_pit().and_then(|d| hz_from_pit(d, CALIBRATION_PIT_TICKS as u64))
    {
        (hz, TscSource::Pit)
    } else {
        let cpuid = CpuId::new();
        let leaf15 = cpuid
            .get_tsc_info()
            .map(|t| (t.denominator(), t.numerator(), t.nominal_frequency()));
        let leaf16 = cpuid
            .get_processor_frequency_info()
            .map(|f| f.processor_base_frequency() as u32);
        match hz_from_cpuid(leaf15, leaf16) {
            Some(hz) => (hz, TscSource::Cpuid),
            None => (1_000_000_000, TscSource::Guess),
        }
    };
    HZ.store(hz, Ordering::Relaxed);
    (clock(), source)
}

/// The calibrated clock (hz = 0 before calibration).
pub fn clock() -> TscClock {
    TscClock {
        hz: HZ.load(Ordering::Relaxed),
        origin: ORIGIN.load(Ordering::Relaxed),
    }
}

/// Nanoseconds since [`set_origin`] (0 until calibrated).
pub fn uptime_ns() -> u64 {
    clock().nanos_at(rdtsc())
}
