//! One 8254 counter (Intel 8254 data sheet: "Operation", modes 0-5; "Read operations":
//! counter latch, read-back, status byte; "Write operations": RW modes).
//!
//! The counter is not decremented: it is a start time plus the count it was loaded with,
//! and the count and OUT at time `now` are computed from the number of 1.193182 MHz input
//! clocks since the start, with exact integer arithmetic so that nothing drifts. Rising
//! edges of OUT (what IRQ0 needs) are counted from the same numbers.
//!
//! Simplifications (each documented at its use): a new count written while a mode 2/3
//! counter runs restarts it at once instead of at the end of the period; the gate pausing
//! modes 0 and 4 is not modelled (Linux holds it high while counting); in mode 3 the count
//! read back is an even approximation of the real half-period countdown.

/// Input clock of the 8254 on a PC, Hz.
pub const PIT_HZ: u64 = 1_193_182;
const NS_PER_S: u128 = 1_000_000_000;

/// Clock ticks between `start` and `now` (ns).
pub(crate) fn ticks_between(start: u64, now: u64) -> u64 {
    let ns = u128::from(now.saturating_sub(start));
    u64::try_from(ns * u128::from(PIT_HZ) / NS_PER_S).unwrap_or(u64::MAX)
}

/// The first ns offset at which `ticks` clocks have elapsed.
pub(crate) fn ns_for_ticks(ticks: u64) -> u64 {
    let ns = (u128::from(ticks) * NS_PER_S).div_ceil(u128::from(PIT_HZ));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Read/write access mode (control word bits 5:4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    LowByte = 1,
    HighByte = 2,
    LowThenHigh = 3,
}

impl Access {
    pub(crate) fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            1 => Some(Self::LowByte),
            2 => Some(Self::HighByte),
            3 => Some(Self::LowThenHigh),
            _ => None,
        }
    }
}

/// The state of one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Channel {
    /// Counter mode 0-5 (6 and 7 are stored as 2 and 3).
    pub(crate) mode: u8,
    pub(crate) access: Access,
    pub(crate) bcd: bool,
    /// The count register as written (0 = the maximum, 65536 or 10000 in BCD).
    pub(crate) reload: u16,
    /// A count has been written since the mode was set.
    pub(crate) count_written: bool,
    /// When counting started (ns); `None` before a count is loaded or a trigger came.
    pub(crate) start: Option<u64>,
    /// Low byte of a low-then-high write waiting for its high byte.
    pub(crate) pending_low: Option<u8>,
    /// Next live read of a low-then-high counter returns the high byte.
    pub(crate) read_high_next: bool,
    pub(crate) latched_count: Option<u16>,
    /// Next read of a latched low-then-high count returns the high byte.
    pub(crate) latch_high_next: bool,
    pub(crate) latched_status: Option<u8>,
    pub(crate) gate: bool,
    /// Ticks since `start` up to which OUT rising edges have been reported.
    pub(crate) edges_reported: u64,
}

impl Channel {
    pub(crate) fn new(gate: bool) -> Self {
        Self {
            mode: 0,
            access: Access::LowThenHigh,
            bcd: false,
            reload: 0,
            count_written: false,
            start: None,
            pending_low: None,
            read_high_next: false,
            latched_count: None,
            latch_high_next: false,
            latched_status: None,
            gate,
            edges_reported: 0,
        }
    }

    /// The divisor the count register stands for.
    fn period(&self) -> u64 {
        let n = if self.bcd {
            bcd_to_binary(self.reload)
        } else {
            u64::from(self.reload)
        };
        match n {
            0 if self.bcd => 10_000,
            0 => 0x1_0000,
            n => n,
        }
    }

    fn wrap(&self) -> u64 {
        if self.bcd { 10_000 } else { 0x1_0000 }
    }

    /// Whether the counter is counting at all (modes 2/3 stop while the gate is low).
    fn running(&self) -> Option<u64> {
        let start = self.start?;
        if matches!(self.mode, 2 | 3) && !self.gate {
            return None;
        }
        Some(start)
    }

    /// (count, OUT) at `now`.
    pub(crate) fn sample(&self, now: u64) -> (u64, bool) {
        let n = self.period();
        let Some(start) = self.running() else {
            // Mode 0 OUT is low from the mode write until terminal count; the others idle
            // high.
            let count = if self.count_written {
                n % self.wrap()
            } else {
                0
            };
            return (count, self.mode != 0);
        };
        let t = ticks_between(start, now);
        let wrap = self.wrap();
        match self.mode {
            0 | 1 => ((n + wrap - t % wrap) % wrap, t >= n),
            4 | 5 => ((n + wrap - t % wrap) % wrap, t != n),
            2 => {
                let phase = t % n;
                (n - phase, n == 1 || phase != n - 1)
            }
            _ => {
                let phase = t % n;
                let count = (n - (2 * phase) % n) & !1;
                (
                    if count == 0 { n & !1 } else { count },
                    phase < n.div_ceil(2),
                )
            }
        }
    }

    /// The first OUT rising edge strictly after `after` ticks from the start.
    fn next_edge_after(&self, after: u64) -> Option<u64> {
        let n = self.period();
        match self.mode {
            0 | 1 => (after < n).then_some(n),
            4 | 5 => (after < n + 1).then_some(n + 1),
            _ => Some((after / n + 1) * n),
        }
    }

    /// The ns time of the next OUT rising edge, if counting.
    pub(crate) fn next_edge(&self) -> Option<u64> {
        let start = self.running()?;
        let edge = self.next_edge_after(self.edges_reported)?;
        Some(start.saturating_add(ns_for_ticks(edge)))
    }

    /// Counts the OUT rising edges up to `now` not yet reported.
    pub(crate) fn take_edges(&mut self, now: u64) -> u64 {
        let Some(start) = self.running() else {
            return 0;
        };
        let t = ticks_between(start, now);
        if t <= self.edges_reported {
            return 0;
        }
        let n = self.period();
        let edges = match self.mode {
            2 | 3 => t / n - self.edges_reported / n,
            _ => u64::from(
                self.next_edge_after(self.edges_reported)
                    .is_some_and(|e| e <= t),
            ),
        };
        self.edges_reported = t;
        edges
    }

    /// A control word for this channel with access bits 5:4 non-zero: new mode.
    pub(crate) fn set_mode(&mut self, control: u8, access: Access) {
        let mode = (control >> 1) & 7;
        *self = Self {
            mode: if mode >= 6 { mode - 4 } else { mode },
            access,
            bcd: control & 1 != 0,
            ..Self::new(self.gate)
        };
    }

    /// Counter latch command: freeze the count for reading (ignored if already latched).
    pub(crate) fn latch_count(&mut self, now: u64) {
        if self.latched_count.is_none() {
            self.latched_count = Some(self.encode_count(self.sample(now).0));
            self.latch_high_next = false;
        }
    }

    /// Read-back status latch (ignored if already latched).
    pub(crate) fn latch_status(&mut self, now: u64) {
        if self.latched_status.is_none() {
            let out = self.sample(now).1;
            let status = (u8::from(out) << 7)
                | (u8::from(!self.count_written) << 6)
                | ((self.access as u8) << 4)
                | (self.mode << 1)
                | u8::from(self.bcd);
            self.latched_status = Some(status);
        }
    }

    /// The count as the guest reads it (binary or BCD, 16 bits).
    fn encode_count(&self, count: u64) -> u16 {
        if self.bcd {
            binary_to_bcd(count % 10_000)
        } else {
            (count & 0xffff) as u16
        }
    }

    /// A data-port read.
    pub(crate) fn read(&mut self, now: u64) -> u8 {
        if let Some(status) = self.latched_status.take() {
            return status;
        }
        let (value, high) = match self.latched_count {
            Some(latched) => {
                let high = match self.access {
                    Access::LowByte => false,
                    Access::HighByte => true,
                    Access::LowThenHigh => self.latch_high_next,
                };
                if self.access == Access::LowThenHigh && !high {
                    self.latch_high_next = true;
                } else {
                    self.latched_count = None;
                    self.latch_high_next = false;
                }
                (latched, high)
            }
            None => {
                let live = self.encode_count(self.sample(now).0);
                let high = match self.access {
                    Access::LowByte => false,
                    Access::HighByte => true,
                    Access::LowThenHigh => {
                        let high = self.read_high_next;
                        self.read_high_next = !high;
                        high
                    }
                };
                (live, high)
            }
        };
        let [low, high_byte] = value.to_le_bytes();
        if high { high_byte } else { low }
    }

    /// A data-port write.
    pub(crate) fn write(&mut self, value: u8, now: u64) {
        let reload = match self.access {
            Access::LowByte => u16::from(value),
            Access::HighByte => u16::from(value) << 8,
            Access::LowThenHigh => match self.pending_low.take() {
                None => {
                    self.pending_low = Some(value);
                    if self.mode == 0 {
                        // Mode 0: writing the first byte stops the count and drops OUT.
                        self.start = None;
                        self.count_written = false;
                        self.edges_reported = 0;
                    }
                    return;
                }
                Some(low) => u16::from_le_bytes([low, value]),
            },
        };
        self.reload = reload;
        self.count_written = true;
        self.edges_reported = 0;
        // Modes 1 and 5 wait for a gate trigger; the others start counting now.
        self.start = if matches!(self.mode, 1 | 5) {
            None
        } else {
            Some(now)
        };
    }

    /// Drives the gate input: a rising edge triggers modes 1 and 5 and restarts 2 and 3.
    pub(crate) fn set_gate(&mut self, gate: bool, now: u64) {
        let rising = gate && !self.gate;
        if rising && self.count_written && matches!(self.mode, 1 | 2 | 3 | 5) {
            self.start = Some(now);
            self.edges_reported = 0;
        }
        self.gate = gate;
    }
}

/// Four BCD digits to binary (nibbles above 9 are taken at face value).
fn bcd_to_binary(v: u16) -> u64 {
    (0..4).rev().fold(0u64, |acc, digit| {
        acc * 10 + u64::from((v >> (digit * 4)) & 0xf)
    })
}

/// A value below 10000 to four BCD digits.
fn binary_to_bcd(v: u64) -> u16 {
    (0..4).rev().fold(0u16, |acc, digit| {
        let d = (v / 10u64.pow(digit)) % 10;
        (acc << 4) | d as u16
    })
}
