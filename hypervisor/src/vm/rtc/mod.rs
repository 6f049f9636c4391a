//! The CMOS real-time clock (MC146818A-compatible, ports 0x70/0x71) and its 128 bytes of
//! CMOS memory.
//!
//! Why this shape: wall-clock time is an input. The clock is a reference pair (wall time
//! in ns since the Unix epoch at guest time `ref_ns`) and every access takes the current
//! guest time `now` in ns, so the time registers, the update-in-progress bit and the
//! interrupt flags are computed, never ticked. Interrupt sources (periodic, alarm,
//! update-ended; MC146818A data sheet, "Interrupts") are brought up to date lazily on each
//! access and by [`Rtc::advance`]; [`Rtc::irq_asserted`] is the IRQ8 line (register C
//! IRQF) and [`Rtc::next_deadline`] bounds the vCPU's sleep when one is enabled.
//!
//! Registers (data sheet, "Register A-D"): A bit 7 UIP (set for the 244 us before each
//! update), bits 6:4 divider (stored; only the SET bit stops the clock here), bits 3:0 the
//! periodic rate; B: SET, PIE, AIE, UIE, SQWE, DM (binary), 24/12, DSE (stored, not
//! applied); C: IRQF, PF, AF, UF, cleared by reading; D: VRT (always 1). Writing port 0x70
//! selects the register in bits 6:0 and sets the chipset's NMI-disable bit 7.
//!
//! CMOS bytes firmware and Linux read for memory sizing are filled from [`CmosMemory`]:
//! 0x15/0x16 base memory (KiB), 0x17/0x18 and 0x30/0x31 extended memory above 1 MiB (KiB,
//! capped at 0xFFFF), 0x34/0x35 memory between 16 MiB and 4 GiB (64 KiB units), 0x5B-0x5D
//! memory above 4 GiB (64 KiB units), with the standard checksum at 0x2E/0x2F over
//! 0x10-0x2D. The century is at 0x32 (the FADT's `century` field should point there).

pub mod calendar;
pub mod state;

use calendar::{DateTime, decode_hour, encode_hour, from_bcd, to_bcd};

/// Index port (write-only; bit 7 = NMI disable).
pub const INDEX_PORT: u16 = 0x70;
/// Data port.
pub const DATA_PORT: u16 = 0x71;
/// CMOS size in bytes (the index is 7 bits).
pub const CMOS_SIZE: usize = 128;

pub(crate) const REG_SECONDS: u8 = 0x00;
pub(crate) const REG_SECONDS_ALARM: u8 = 0x01;
pub(crate) const REG_MINUTES: u8 = 0x02;
pub(crate) const REG_MINUTES_ALARM: u8 = 0x03;
pub(crate) const REG_HOURS: u8 = 0x04;
pub(crate) const REG_HOURS_ALARM: u8 = 0x05;
pub(crate) const REG_WEEKDAY: u8 = 0x06;
pub(crate) const REG_DAY: u8 = 0x07;
pub(crate) const REG_MONTH: u8 = 0x08;
pub(crate) const REG_YEAR: u8 = 0x09;
pub(crate) const REG_A: u8 = 0x0a;
pub(crate) const REG_B: u8 = 0x0b;
pub(crate) const REG_C: u8 = 0x0c;
pub(crate) const REG_D: u8 = 0x0d;
pub(crate) const REG_CENTURY: u8 = 0x32;

pub(crate) const A_UIP: u8 = 0x80;
pub(crate) const B_SET: u8 = 0x80;
pub(crate) const B_PIE: u8 = 0x40;
pub(crate) const B_AIE: u8 = 0x20;
pub(crate) const B_UIE: u8 = 0x10;
pub(crate) const B_BINARY: u8 = 0x04;
pub(crate) const B_24H: u8 = 0x02;
pub(crate) const C_IRQF: u8 = 0x80;
pub(crate) const C_PF: u8 = 0x40;
pub(crate) const C_AF: u8 = 0x20;
pub(crate) const C_UF: u8 = 0x10;
pub(crate) const D_VRT: u8 = 0x80;

const NS_PER_S: u64 = 1_000_000_000;
/// UIP is set this long before each update (data sheet: tBUC = 244 us).
const UIP_NS: u64 = 244_000;
/// Alarm fields with both top bits set match any value ("don't care").
const ALARM_DONT_CARE: u8 = 0xc0;
/// At most this many crossed seconds are checked for an alarm match in one catch-up
/// (a day covers every possible match).
const MAX_ALARM_SECONDS: u64 = 86_400;

/// The guest memory layout the CMOS memory-size bytes describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmosMemory {
    /// RAM below 4 GiB, in bytes (including the low 1 MiB).
    pub below_4g: u64,
    /// RAM above 4 GiB, in bytes.
    pub above_4g: u64,
}

/// The RTC and CMOS memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtc {
    /// Selected register (bits 6:0 of the last port 0x70 write).
    pub(crate) index: u8,
    pub(crate) nmi_disabled: bool,
    /// CMOS bytes; 0x0A-0x0D hold registers A-D (A without UIP); the time bytes hold the
    /// guest-written values while SET is on and are unused otherwise.
    pub(crate) cmos: [u8; CMOS_SIZE],
    /// Wall-clock ns since the epoch at guest time `ref_ns`.
    pub(crate) wall_at_ref: u64,
    pub(crate) ref_ns: u64,
    /// Wall-clock ns up to which interrupt events have been processed.
    pub(crate) events_through: u64,
}

impl Rtc {
    /// An RTC showing `wall_ns` (ns since the Unix epoch) at guest time `now`, 24-hour BCD
    /// format, 1024 Hz periodic rate selected but disabled, with memory bytes for `memory`.
    pub fn new(wall_ns: u64, now: u64, memory: CmosMemory) -> Self {
        let mut cmos = [0u8; CMOS_SIZE];
        cmos[usize::from(REG_A)] = 0x26;
        cmos[usize::from(REG_B)] = B_24H;
        cmos[usize::from(REG_D)] = D_VRT;
        fill_memory_bytes(&mut cmos, memory);
        Self {
            index: 0,
            nmi_disabled: false,
            cmos,
            wall_at_ref: wall_ns,
            ref_ns: now,
            events_through: wall_ns,
        }
    }

    fn reg(&self, index: u8) -> u8 {
        self.cmos[usize::from(index & 0x7f)]
    }

    fn set_reg(&mut self, index: u8, value: u8) {
        self.cmos[usize::from(index & 0x7f)] = value;
    }

    fn frozen(&self) -> bool {
        self.reg(REG_B) & B_SET != 0
    }

    /// Wall-clock ns at guest time `now`.
    fn wall_ns(&self, now: u64) -> u64 {
        self.wall_at_ref
            .saturating_add(now.saturating_sub(self.ref_ns))
    }

    /// Whether the guest disabled NMIs through port 0x70 bit 7.
    pub fn nmi_disabled(&self) -> bool {
        self.nmi_disabled
    }

    /// The IRQ8 line: register C's IRQF.
    pub fn irq_asserted(&self) -> bool {
        self.reg(REG_C) & C_IRQF != 0
    }

    /// A guest byte read at guest time `now` (ns). Port 0x70 is write-only on PC chipsets
    /// and reads as 0xff.
    pub fn read(&mut self, port: u16, now: u64) -> u8 {
        if port != DATA_PORT {
            return 0xff;
        }
        self.advance(now);
        let index = self.index;
        match index {
            REG_A => {
                let uip = !self.frozen() && self.wall_ns(now) % NS_PER_S >= NS_PER_S - UIP_NS;
                self.reg(REG_A) | if uip { A_UIP } else { 0 }
            }
            REG_C => {
                let value = self.reg(REG_C);
                self.set_reg(REG_C, 0);
                value
            }
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_WEEKDAY | REG_DAY | REG_MONTH
            | REG_YEAR | REG_CENTURY
                if !self.frozen() =>
            {
                self.time_register(index, DateTime::from_unix(self.wall_ns(now) / NS_PER_S))
            }
            _ => self.reg(index),
        }
    }

    /// A time register of `t` in the format register B selects.
    fn time_register(&self, index: u8, t: DateTime) -> u8 {
        let b = self.reg(REG_B);
        let binary = b & B_BINARY != 0;
        let enc = |v: u8| if binary { v } else { to_bcd(v) };
        match index {
            REG_SECONDS => enc(t.second),
            REG_MINUTES => enc(t.minute),
            REG_HOURS => encode_hour(t.hour, binary, b & B_24H != 0),
            REG_WEEKDAY => enc(t.weekday),
            REG_DAY => enc(t.day),
            REG_MONTH => enc(t.month),
            REG_YEAR => enc((t.year % 100) as u8),
            _ => enc((t.year / 100) as u8),
        }
    }

    /// The time the (frozen) time bytes hold, clamped into range.
    fn parse_time_bytes(&self) -> DateTime {
        let b = self.reg(REG_B);
        let binary = b & B_BINARY != 0;
        let dec = |index: u8| {
            let raw = self.reg(index);
            if binary { raw } else { from_bcd(raw) }
        };
        let century = match dec(REG_CENTURY) {
            c @ 19..=99 => u16::from(c),
            _ => 20,
        };
        DateTime {
            second: dec(REG_SECONDS).min(59),
            minute: dec(REG_MINUTES).min(59),
            hour: decode_hour(self.reg(REG_HOURS), binary, b & B_24H != 0),
            weekday: 1,
            day: dec(REG_DAY).clamp(1, 31),
            month: dec(REG_MONTH).clamp(1, 12),
            year: century * 100 + u16::from(dec(REG_YEAR).min(99)),
        }
    }

    /// Copies the running time into the time bytes (on SET, or to edit one field).
    fn freeze_time_bytes(&mut self, now: u64) {
        let t = DateTime::from_unix(self.wall_ns(now) / NS_PER_S);
        for index in [
            REG_SECONDS,
            REG_MINUTES,
            REG_HOURS,
            REG_WEEKDAY,
            REG_DAY,
            REG_MONTH,
            REG_YEAR,
            REG_CENTURY,
        ] {
            let value = self.time_register(index, t);
            self.set_reg(index, value);
        }
    }

    /// Restarts the clock from the time bytes at `now` (end of SET, or a field write).
    fn rebase_from_time_bytes(&mut self, now: u64) {
        let seconds = self.parse_time_bytes().to_unix();
        self.wall_at_ref = seconds.saturating_mul(NS_PER_S);
        self.ref_ns = now;
        // A time change is not an update cycle: no events for the jump.
        self.events_through = self.wall_at_ref;
    }

    /// A guest byte write at guest time `now` (ns).
    pub fn write(&mut self, port: u16, value: u8, now: u64) {
        match port {
            INDEX_PORT => {
                self.index = value & 0x7f;
                self.nmi_disabled = value & 0x80 != 0;
                return;
            }
            DATA_PORT => {}
            _ => return,
        }
        self.advance(now);
        let index = self.index;
        match index {
            REG_A => self.set_reg(REG_A, value & !A_UIP),
            REG_B => self.write_b(value, now),
            REG_C | REG_D => {}
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_WEEKDAY | REG_DAY | REG_MONTH
            | REG_YEAR | REG_CENTURY => {
                if self.frozen() {
                    self.set_reg(index, value);
                } else {
                    self.freeze_time_bytes(now);
                    self.set_reg(index, value);
                    self.rebase_from_time_bytes(now);
                }
            }
            _ => self.set_reg(index, value),
        }
        self.update_irqf();
    }

    fn write_b(&mut self, value: u8, now: u64) {
        let was_set = self.frozen();
        let mut value = value;
        if value & B_SET != 0 {
            // Data sheet: SET = 1 clears UIE.
            value &= !B_UIE;
            if !was_set {
                self.freeze_time_bytes(now);
            }
        }
        self.set_reg(REG_B, value);
        if was_set && value & B_SET == 0 {
            self.rebase_from_time_bytes(now);
        }
    }

    fn update_irqf(&mut self) {
        let b = self.reg(REG_B);
        let mut c = self.reg(REG_C) & (C_PF | C_AF | C_UF);
        let enabled = (c & C_PF != 0 && b & B_PIE != 0)
            || (c & C_AF != 0 && b & B_AIE != 0)
            || (c & C_UF != 0 && b & B_UIE != 0);
        if enabled {
            c |= C_IRQF;
        }
        self.set_reg(REG_C, c);
    }

    /// Periodic interrupt period in 32.768 kHz clocks, if enabled by the rate bits.
    fn periodic_clocks(&self) -> Option<u64> {
        match self.reg(REG_A) & 0xf {
            0 => None,
            // Rates 1 and 2 repeat rates 8 and 9 (256 Hz, 128 Hz).
            1 => Some(128),
            2 => Some(256),
            r => Some(1 << (r - 1)),
        }
    }

    /// Brings the interrupt flags up to guest time `now`: PF for every periodic boundary,
    /// UF and the alarm check for every second boundary crossed since the last call.
    pub fn advance(&mut self, now: u64) {
        if self.frozen() {
            // No update cycles while SET; the periodic divider is not modelled apart.
            self.events_through = self.wall_ns(now);
            return;
        }
        let from = self.events_through;
        let to = self.wall_ns(now);
        if to <= from {
            return;
        }
        let mut flags = 0;
        if let Some(period) = self.periodic_clocks() {
            let clocks = |ns: u64| (u128::from(ns) * 32_768 / u128::from(NS_PER_S)) as u64;
            if clocks(to) / period > clocks(from) / period {
                flags |= C_PF;
            }
        }
        let (first, last) = (from / NS_PER_S, to / NS_PER_S);
        if last > first {
            flags |= C_UF;
            let start = (first + 1).max(last.saturating_sub(MAX_ALARM_SECONDS - 1));
            if (start..=last).any(|s| self.alarm_matches(DateTime::from_unix(s))) {
                flags |= C_AF;
            }
        }
        self.events_through = to;
        let c = self.reg(REG_C) | flags;
        self.set_reg(REG_C, c);
        self.update_irqf();
    }

    fn alarm_matches(&self, t: DateTime) -> bool {
        let field = |alarm: u8, current: u8| {
            let raw = self.reg(alarm);
            raw & ALARM_DONT_CARE == ALARM_DONT_CARE || raw == current
        };
        field(REG_SECONDS_ALARM, self.time_register(REG_SECONDS, t))
            && field(REG_MINUTES_ALARM, self.time_register(REG_MINUTES, t))
            && field(REG_HOURS_ALARM, self.time_register(REG_HOURS, t))
    }

    /// Guest time (ns) of the next event that would raise IRQ8, if an interrupt is enabled
    /// and IRQ8 is not already asserted (then nothing can change until register C is read).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.frozen() || self.irq_asserted() {
            return None;
        }
        let b = self.reg(REG_B);
        let from = self.events_through;
        let mut next_wall: Option<u64> = None;
        if b & B_PIE != 0
            && let Some(period) = self.periodic_clocks()
        {
            let clocks = u128::from(from) * 32_768 / u128::from(NS_PER_S);
            let boundary = (clocks / u128::from(period) + 1) * u128::from(period);
            let ns = (boundary * u128::from(NS_PER_S)).div_ceil(32_768);
            next_wall = u64::try_from(ns).ok();
        }
        if b & (B_UIE | B_AIE) != 0 {
            let second = (from / NS_PER_S + 1).saturating_mul(NS_PER_S);
            next_wall = Some(next_wall.map_or(second, |w| w.min(second)));
        }
        // Wall time back to guest time.
        next_wall.map(|w| {
            self.ref_ns
                .saturating_add(w.saturating_sub(self.wall_at_ref))
        })
    }
}

/// Writes the memory-size bytes and the 0x10-0x2D checksum.
fn fill_memory_bytes(cmos: &mut [u8; CMOS_SIZE], memory: CmosMemory) {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    let mut put16 = |at: usize, v: u64| {
        let [lo, hi] = (v.min(0xffff) as u16).to_le_bytes();
        cmos[at] = lo;
        cmos[at + 1] = hi;
    };
    put16(0x15, 640);
    let extended_kib = memory.below_4g.saturating_sub(MIB) / KIB;
    put16(0x17, extended_kib);
    put16(0x30, extended_kib);
    put16(0x34, memory.below_4g.saturating_sub(16 * MIB) / (64 * KIB));
    let high = (memory.above_4g / (64 * KIB)).min(0xff_ffff);
    cmos[0x5b] = high as u8;
    cmos[0x5c] = (high >> 8) as u8;
    cmos[0x5d] = (high >> 16) as u8;
    let sum: u16 = cmos[0x10..=0x2d].iter().map(|b| u16::from(*b)).sum();
    cmos[0x2e] = (sum >> 8) as u8;
    cmos[0x2f] = sum as u8;
}

#[cfg(test)]
mod tests;
