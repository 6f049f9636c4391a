//! A 16550A UART as a pure state machine: the guest's COM port.
//!
//! Why a pure state machine: the device is driven only by `read(offset)` / `write(offset,
//! value)` from the port-I/O exit handler and by [`Uart16550::receive`] from the console, so
//! every behaviour a guest driver relies on is unit-tested on the host, and the whole state
//! can be saved and restored byte-exactly for migration ([`state`]). The shape follows
//! rust-vmm's vm-superio `serial.rs` (read at offset, write at offset, interrupts through a
//! trait, output to a generic sink), written from the 16550A data sheet.
//!
//! Modelled: the receive FIFO (16 bytes with FIFOs enabled, a 1-byte holding register
//! without), instantaneous transmission (THR is always empty again by the time the guest can
//! look, so LSR.THRE/TEMT stay set and the THR-empty interrupt fires after every write),
//! interrupt identification with the 16550 priorities, the divisor latch behind LCR.DLAB,
//! loopback (MCR.LOOP: transmitted bytes come back as received bytes, modem inputs mirror
//! the modem outputs), the scratch register.
//! Not modelled: line errors (parity/framing/break) and receive overrun — the host side asks
//! [`Uart16550::rx_space`] before it pushes input, so input is never dropped — and the
//! character-timeout interrupt (received bytes are visible at once).

pub mod state;

use alloc::collections::VecDeque;

/// Register offsets from the base port (COM1 = 0x3f8).
pub mod reg {
    /// Receive buffer (read) / transmit holding (write); divisor latch low when LCR.DLAB.
    pub const DATA: u8 = 0;
    /// Interrupt enable; divisor latch high when LCR.DLAB.
    pub const IER: u8 = 1;
    /// Interrupt identification (read) / FIFO control (write).
    pub const IIR_FCR: u8 = 2;
    /// Line control.
    pub const LCR: u8 = 3;
    /// Modem control.
    pub const MCR: u8 = 4;
    /// Line status.
    pub const LSR: u8 = 5;
    /// Modem status.
    pub const MSR: u8 = 6;
    /// Scratch.
    pub const SCR: u8 = 7;
}

/// Number of I/O ports the UART decodes.
pub const PORT_COUNT: u16 = 8;

pub(crate) const IER_RX_AVAILABLE: u8 = 0x01;
pub(crate) const IER_THR_EMPTY: u8 = 0x02;
pub(crate) const IER_MODEM_STATUS: u8 = 0x08;
/// IER bits a 16550A implements (bit 2, receiver line status, is accepted but never fires).
pub(crate) const IER_IMPLEMENTED: u8 = 0x0f;

const IIR_NONE: u8 = 0x01;
const IIR_MODEM_STATUS: u8 = 0x00;
const IIR_THR_EMPTY: u8 = 0x02;
const IIR_RX_AVAILABLE: u8 = 0x04;
const IIR_FIFO_ENABLED: u8 = 0xc0;

const FCR_ENABLE: u8 = 0x01;
const FCR_CLEAR_RX: u8 = 0x02;

pub(crate) const LCR_DLAB: u8 = 0x80;

const MCR_DTR: u8 = 0x01;
const MCR_RTS: u8 = 0x02;
const MCR_OUT1: u8 = 0x04;
const MCR_OUT2: u8 = 0x08;
pub(crate) const MCR_LOOP: u8 = 0x10;
/// MCR bits a 16550A implements.
pub(crate) const MCR_IMPLEMENTED: u8 = 0x1f;

const LSR_DATA_READY: u8 = 0x01;
const LSR_THR_EMPTY: u8 = 0x20;
const LSR_TX_EMPTY: u8 = 0x40;

const MSR_CTS: u8 = 0x10;
const MSR_DSR: u8 = 0x20;
const MSR_RI: u8 = 0x40;
const MSR_DCD: u8 = 0x80;
/// Delta bits (CTS, DSR, trailing edge of RI, DCD) in the low nibble of MSR.
pub(crate) const MSR_DELTA_MASK: u8 = 0x0f;
/// With no cable model, the "other end" is always ready: CTS, DSR and DCD asserted.
const MSR_DEFAULT_INPUTS: u8 = MSR_CTS | MSR_DSR | MSR_DCD;

/// Receive FIFO depth of a 16550A with FIFOs enabled.
pub const FIFO_DEPTH: usize = 16;

/// Divisor after reset: 12 = 9600 baud from the 1.8432 MHz clock, what BIOSes leave behind.
const DEFAULT_DIVISOR: u16 = 12;

/// The UART's interrupt output, e.g. an IRQ line of a PIC/IOAPIC model.
pub trait InterruptLine {
    /// Called whenever the line level changes (true = asserted). Edge-triggered consumers
    /// react to the `false -> true` transition.
    fn set_level(&mut self, asserted: bool);
}

/// Where transmitted bytes go (the hypervisor console, a buffer in tests).
pub trait SerialSink {
    /// One byte written by the guest to THR (not called in loopback mode).
    fn write_byte(&mut self, byte: u8);
}

/// An interrupt line that is not connected: polled drivers (like the heartbeat guest) need
/// nothing more.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoInterrupt;

impl InterruptLine for NoInterrupt {
    fn set_level(&mut self, _asserted: bool) {}
}

/// The register file of the UART, kept apart from the sink and interrupt line so that it can
/// be saved and restored as a value (see [`state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Registers {
    pub(crate) divisor: u16,
    pub(crate) ier: u8,
    pub(crate) lcr: u8,
    pub(crate) mcr: u8,
    pub(crate) scr: u8,
    pub(crate) fifo_enabled: bool,
    /// MSR delta bits not yet read by the guest.
    pub(crate) msr_delta: u8,
    /// A THR-empty interrupt is pending (set by a transmit or by enabling it, cleared by a
    /// read of IIR that reports it or by the next THR write).
    pub(crate) thr_empty_pending: bool,
    pub(crate) rx: VecDeque<u8>,
}

impl Default for Registers {
    fn default() -> Self {
        Self {
            divisor: DEFAULT_DIVISOR,
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            fifo_enabled: false,
            msr_delta: 0,
            thr_empty_pending: false,
            rx: VecDeque::new(),
        }
    }
}

/// A 16550A UART with its interrupt line `I` and output sink `S`.
pub struct Uart16550<I: InterruptLine, S: SerialSink> {
    regs: Registers,
    irq: I,
    sink: S,
    irq_level: bool,
}

impl<I: InterruptLine, S: SerialSink> Uart16550<I, S> {
    /// A UART in its power-on state.
    pub fn new(irq: I, sink: S) -> Self {
        Self::with_registers(Registers::default(), irq, sink)
    }

    pub(crate) fn with_registers(regs: Registers, irq: I, sink: S) -> Self {
        let mut uart = Self {
            regs,
            irq,
            sink,
            irq_level: false,
        };
        uart.update_interrupt();
        uart
    }

    pub(crate) fn registers(&self) -> &Registers {
        &self.regs
    }

    /// The output sink (e.g. to flush a line buffer).
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// The interrupt line.
    pub fn interrupt_line_mut(&mut self) -> &mut I {
        &mut self.irq
    }

    /// Whether the interrupt output is currently asserted.
    pub fn interrupt_asserted(&self) -> bool {
        self.irq_level
    }

    /// The ISA IRQ line as a PC board wires this UART: INTR gated by MCR.OUT2 (the PC/AT
    /// serial adapter enables its IRQ driver with OUT2; Linux's 8250 driver sets it when it
    /// uses the interrupt). A UART whose driver polls with OUT2 clear raises no IRQ.
    pub fn pc_irq_line(&self) -> bool {
        self.irq_level && self.regs.mcr & MCR_OUT2 != 0
    }

    /// Current receive capacity: with FIFOs enabled 16 bytes, else the single holding
    /// register.
    pub fn rx_capacity(&self) -> usize {
        rx_capacity(self.regs.fifo_enabled)
    }

    /// How many more bytes [`Self::receive`] accepts now.
    pub fn rx_space(&self) -> usize {
        self.rx_capacity().saturating_sub(self.regs.rx.len())
    }

    /// Host-side input (console keystrokes for this guest). Accepts as many bytes as fit and
    /// returns how many it took; the caller keeps the rest for later. In loopback mode the
    /// line is disconnected from the outside and nothing is accepted.
    pub fn receive(&mut self, bytes: &[u8]) -> usize {
        if self.regs.mcr & MCR_LOOP != 0 {
            return 0;
        }
        let taken = bytes.len().min(self.rx_space());
        self.regs.rx.extend(&bytes[..taken]);
        self.update_interrupt();
        taken
    }

    /// A guest read of the register at `offset` (0..8; other offsets read as 0xff like an
    /// undecoded port).
    pub fn read(&mut self, offset: u8) -> u8 {
        let dlab = self.regs.lcr & LCR_DLAB != 0;
        let value = match offset {
            reg::DATA if dlab => self.regs.divisor.to_le_bytes()[0],
            reg::DATA => self.regs.rx.pop_front().unwrap_or(0),
            reg::IER if dlab => self.regs.divisor.to_le_bytes()[1],
            reg::IER => self.regs.ier,
            reg::IIR_FCR => self.read_iir(),
            reg::LCR => self.regs.lcr,
            reg::MCR => self.regs.mcr,
            reg::LSR => self.line_status(),
            reg::MSR => {
                let value = self.modem_status();
                self.regs.msr_delta = 0;
                value
            }
            reg::SCR => self.regs.scr,
            _ => 0xff,
        };
        self.update_interrupt();
        value
    }

    /// A guest write of `value` to the register at `offset` (writes to LSR, MSR and
    /// undecoded offsets are ignored, as on the real part).
    pub fn write(&mut self, offset: u8, value: u8) {
        let dlab = self.regs.lcr & LCR_DLAB != 0;
        match offset {
            reg::DATA if dlab => {
                let [_, high] = self.regs.divisor.to_le_bytes();
                self.regs.divisor = u16::from_le_bytes([value, high]);
            }
            reg::DATA => self.transmit(value),
            reg::IER if dlab => {
                let [low, _] = self.regs.divisor.to_le_bytes();
                self.regs.divisor = u16::from_le_bytes([low, value]);
            }
            reg::IER => {
                let enabling_thre =
                    value & IER_THR_EMPTY != 0 && self.regs.ier & IER_THR_EMPTY == 0;
                self.regs.ier = value & IER_IMPLEMENTED;
                // 16550A: enabling ETBEI while THR is empty raises the THR-empty interrupt;
                // our THR is always empty.
                if enabling_thre {
                    self.regs.thr_empty_pending = true;
                }
            }
            reg::IIR_FCR => self.write_fcr(value),
            reg::LCR => self.regs.lcr = value,
            reg::MCR => self.write_mcr(value & MCR_IMPLEMENTED),
            reg::SCR => self.regs.scr = value,
            _ => {}
        }
        self.update_interrupt();
    }

    fn transmit(&mut self, byte: u8) {
        if self.regs.mcr & MCR_LOOP != 0 {
            // Loopback: the byte comes back to the receiver; a full receiver drops it (that
            // would be an overrun, which we do not model).
            if self.regs.rx.len() < self.rx_capacity() {
                self.regs.rx.push_back(byte);
            }
        } else {
            self.sink.write_byte(byte);
        }
        // Transmission is instantaneous: THR is empty again at once.
        self.regs.thr_empty_pending = true;
    }

    fn write_fcr(&mut self, value: u8) {
        let enable = value & FCR_ENABLE != 0;
        if enable != self.regs.fifo_enabled {
            // Changing the FIFO mode resets both FIFOs (16550A data sheet, FCR bit 0).
            self.regs.rx.clear();
        }
        self.regs.fifo_enabled = enable;
        if value & FCR_CLEAR_RX != 0 {
            self.regs.rx.clear();
        }
        // FCR bit 2 clears the transmit FIFO, which is always empty here; the trigger level
        // (bits 7:6) only matters with the character timeout, which is not modelled.
    }

    fn write_mcr(&mut self, value: u8) {
        let before = self.modem_inputs();
        self.regs.mcr = value;
        let after = self.modem_inputs();
        self.regs.msr_delta |= modem_delta(before, after);
    }

    /// The modem input lines (MSR bits 7:4) as the guest sees them.
    fn modem_inputs(&self) -> u8 {
        let mcr = self.regs.mcr;
        if mcr & MCR_LOOP == 0 {
            return MSR_DEFAULT_INPUTS;
        }
        // Loopback wiring (16550A data sheet, MCR bit 4): RTS->CTS, DTR->DSR, OUT1->RI,
        // OUT2->DCD.
        let mut inputs = 0;
        if mcr & MCR_RTS != 0 {
            inputs |= MSR_CTS;
        }
        if mcr & MCR_DTR != 0 {
            inputs |= MSR_DSR;
        }
        if mcr & MCR_OUT1 != 0 {
            inputs |= MSR_RI;
        }
        if mcr & MCR_OUT2 != 0 {
            inputs |= MSR_DCD;
        }
        inputs
    }

    fn modem_status(&self) -> u8 {
        self.modem_inputs() | self.regs.msr_delta
    }

    fn line_status(&self) -> u8 {
        let mut lsr = LSR_THR_EMPTY | LSR_TX_EMPTY;
        if !self.regs.rx.is_empty() {
            lsr |= LSR_DATA_READY;
        }
        lsr
    }

    /// The highest-priority pending, enabled interrupt, as an IIR identification code.
    /// Priorities (16550A): line status > received data > THR empty > modem status.
    fn pending_interrupt(&self) -> u8 {
        let ier = self.regs.ier;
        if ier & IER_RX_AVAILABLE != 0 && !self.regs.rx.is_empty() {
            IIR_RX_AVAILABLE
        } else if ier & IER_THR_EMPTY != 0 && self.regs.thr_empty_pending {
            IIR_THR_EMPTY
        } else if ier & IER_MODEM_STATUS != 0 && self.regs.msr_delta != 0 {
            IIR_MODEM_STATUS
        } else {
            IIR_NONE
        }
    }

    fn read_iir(&mut self) -> u8 {
        let id = self.pending_interrupt();
        // Reading IIR while it reports THR empty acknowledges that interrupt.
        if id == IIR_THR_EMPTY {
            self.regs.thr_empty_pending = false;
        }
        let fifo = if self.regs.fifo_enabled {
            IIR_FIFO_ENABLED
        } else {
            0
        };
        id | fifo
    }

    fn update_interrupt(&mut self) {
        // OUT2 gates the IRQ onto the bus on PC-compatible boards; guests (Linux included)
        // set it before they expect interrupts. This is the chip's INTR output;
        // `pc_irq_line` adds the OUT2 gate for the board.
        let level = self.pending_interrupt() != IIR_NONE;
        if level != self.irq_level {
            self.irq_level = level;
            self.irq.set_level(level);
        }
    }
}

pub(crate) fn rx_capacity(fifo_enabled: bool) -> usize {
    if fifo_enabled { FIFO_DEPTH } else { 1 }
}

/// MSR delta bits for a change of the modem inputs: DCTS, DDSR, TERI (RI trailing edge
/// only), DDCD.
fn modem_delta(before: u8, after: u8) -> u8 {
    let changed = before ^ after;
    let mut delta = 0;
    if changed & MSR_CTS != 0 {
        delta |= 0x01;
    }
    if changed & MSR_DSR != 0 {
        delta |= 0x02;
    }
    if before & MSR_RI != 0 && after & MSR_RI == 0 {
        delta |= 0x04;
    }
    if changed & MSR_DCD != 0 {
        delta |= 0x08;
    }
    delta
}

#[cfg(test)]
mod tests;
