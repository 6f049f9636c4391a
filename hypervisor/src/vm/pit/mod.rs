//! The 8254 programmable interval timer (ports 0x40-0x43) and the speaker/NMI status port
//! 0x61 through which the guest drives counter 2's gate and reads its output.
//!
//! Why this shape: the port-I/O exit handler calls [`Pit::read`] / [`Pit::write`] with the
//! current guest time in ns; the vCPU loop calls [`Pit::advance`] to learn how many rising
//! edges counter 0's OUT (wired to IRQ0) made since the last call, and
//! [`Pit::next_deadline`] to bound its sleep. Linux uses counter 0 in mode 2 or 3 as its
//! early periodic tick and (in mode 0) for `check_timer`, and counter 2 through port 0x61
//! (gate on bit 0, OUT on bit 5) to calibrate the TSC (`pit_calibrate_tsc`,
//! `quick_pit_calibrate`), so those paths are what the tests pin down.
//!
//! Port 0x61 (PC/AT "system control port B"): bit 0 counter 2 gate, bit 1 speaker data
//! enable, bits 2-3 parity/channel-check enables (stored), bit 4 refresh toggle (flips
//! every 15.085 us), bit 5 counter 2 OUT, bits 6-7 error status (always 0 here).
//! Counters 0 and 1 have their gates tied high. Counter logic: [`channel`].

pub mod channel;
pub mod state;

use channel::{Access, Channel};

/// First counter data port (counter 0); counters 1 and 2 follow.
pub const COUNTER0: u16 = 0x40;
/// Control word port.
pub const CONTROL: u16 = 0x43;
/// System control port B.
pub const PORT_61: u16 = 0x61;

/// Port 0x61 bits the guest can write.
pub(crate) const PORT61_WRITABLE: u8 = 0x0f;
/// DRAM refresh request period that drives bit 4 of port 0x61, ns.
const REFRESH_TOGGLE_NS: u64 = 15_085;

/// The 8254 with its port 0x61 wiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pit {
    pub(crate) channels: [Channel; 3],
    /// Port 0x61 bits 3:0.
    pub(crate) port61: u8,
}

impl Default for Pit {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit {
    /// At power-on: all counters idle, counter 2's gate low.
    pub fn new() -> Self {
        Self {
            channels: [Channel::new(true), Channel::new(true), Channel::new(false)],
            port61: 0,
        }
    }

    /// Whether `port` is decoded by the PIT or port 0x61.
    pub fn handles_port(port: u16) -> bool {
        matches!(port, COUNTER0..=CONTROL | PORT_61)
    }

    /// A guest byte read at guest time `now` (ns).
    pub fn read(&mut self, port: u16, now: u64) -> u8 {
        match port {
            COUNTER0..=0x42 => self.channels[usize::from(port - COUNTER0)].read(now),
            PORT_61 => {
                let refresh = (now / REFRESH_TOGGLE_NS) & 1 == 1;
                let out2 = self.channels[2].sample(now).1;
                self.port61 | (u8::from(refresh) << 4) | (u8::from(out2) << 5)
            }
            // The control word register cannot be read.
            _ => 0xff,
        }
    }

    /// A guest byte write at guest time `now` (ns).
    pub fn write(&mut self, port: u16, value: u8, now: u64) {
        match port {
            COUNTER0..=0x42 => self.channels[usize::from(port - COUNTER0)].write(value, now),
            CONTROL => self.write_control(value, now),
            PORT_61 => {
                self.port61 = value & PORT61_WRITABLE;
                self.channels[2].set_gate(value & 1 != 0, now);
            }
            _ => {}
        }
    }

    fn write_control(&mut self, value: u8, now: u64) {
        let select = value >> 6;
        if select == 3 {
            // Read-back command: bits 3:1 select counters, bit 5 clear latches the count,
            // bit 4 clear latches the status.
            for (i, channel) in self.channels.iter_mut().enumerate() {
                if value & (2 << i) != 0 {
                    if value & 0x20 == 0 {
                        channel.latch_count(now);
                    }
                    if value & 0x10 == 0 {
                        channel.latch_status(now);
                    }
                }
            }
            return;
        }
        let channel = &mut self.channels[usize::from(select)];
        match Access::from_bits((value >> 4) & 3) {
            None => channel.latch_count(now),
            Some(access) => channel.set_mode(value, access),
        }
    }

    /// Rising edges of counter 0's OUT (one IRQ0 each) since the last call, up to `now`.
    /// Edges missed by a late call are counted, not lost; the caller decides whether to
    /// coalesce them.
    pub fn advance(&mut self, now: u64) -> u64 {
        self.channels[0].take_edges(now)
    }

    /// Guest time (ns) of the next counter 0 rising edge, if it is counting.
    pub fn next_deadline(&self) -> Option<u64> {
        self.channels[0].next_edge()
    }

    /// Counter 2's OUT gated by port 0x61 bit 1: what the speaker hears.
    pub fn speaker_output(&self, now: u64) -> bool {
        self.port61 & 2 != 0 && self.channels[2].sample(now).1
    }
}

#[cfg(test)]
mod tests;
