//! One 8259A programmable interrupt controller (Intel 8259A data sheet, "Programming the
//! 8259A": ICW1-ICW4, OCW1-OCW3; "Interrupt sequence"; "Priority modes").
//!
//! Priorities are rotating: `lowest` is the IR line with the lowest priority (7 after
//! ICW1), and line `(lowest + 1 + k) & 7` has priority `k` (0 = highest). Fully nested mode
//! is the default: a request interrupts only if its priority is higher than every line in
//! service; in special mask mode, lines masked in the IMR do not block lower ones.
//! Not modelled: the MCS-80/85 call sequence (ICW4 bit 0 = 0 is accepted and treated as
//! 8086 mode, the only mode a PC uses), buffered mode (ICW4 bits 3:2; no bus to buffer).

/// Which step of the initialization sequence the chip expects next on its data port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InitStep {
    /// Initialized: data-port writes are OCW1 (IMR).
    Ready = 0,
    /// ICW1 seen; next is ICW2 (vector base).
    Icw2 = 1,
    /// Next is ICW3 (cascade wiring).
    Icw3 = 2,
    /// Next is ICW4 (mode).
    Icw4 = 3,
}

impl InitStep {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Ready,
            1 => Self::Icw2,
            2 => Self::Icw3,
            3 => Self::Icw4,
            _ => return None,
        })
    }
}

/// The state of one 8259A.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pic8259 {
    pub(crate) irr: u8,
    pub(crate) isr: u8,
    pub(crate) imr: u8,
    /// Input line levels (for edge detection and level mode).
    pub(crate) lines: u8,
    /// ELCR: bit n set = IR n level-triggered.
    pub(crate) elcr: u8,
    /// ICW2 bits 7:3.
    pub(crate) vector_base: u8,
    pub(crate) init_step: InitStep,
    /// ICW1 bit 0: an ICW4 follows.
    pub(crate) needs_icw4: bool,
    /// ICW1 bit 1: single chip, no ICW3.
    pub(crate) single: bool,
    pub(crate) icw3: u8,
    pub(crate) auto_eoi: bool,
    pub(crate) rotate_on_auto_eoi: bool,
    pub(crate) special_fully_nested: bool,
    /// IR line with the lowest priority.
    pub(crate) lowest: u8,
    /// OCW3 RR/RIS: command-port reads return ISR (else IRR).
    pub(crate) read_isr: bool,
    /// OCW3 P: the next command-port read is a poll.
    pub(crate) poll: bool,
    pub(crate) special_mask: bool,
}

impl Pic8259 {
    pub(crate) fn new() -> Self {
        Self {
            irr: 0,
            isr: 0,
            imr: 0,
            lines: 0,
            elcr: 0,
            vector_base: 0,
            init_step: InitStep::Ready,
            needs_icw4: false,
            single: false,
            icw3: 0,
            auto_eoi: false,
            rotate_on_auto_eoi: false,
            special_fully_nested: false,
            lowest: 7,
            read_isr: false,
            poll: false,
            special_mask: false,
        }
    }

    /// Drives input line `irq` (0..8).
    pub(crate) fn set_line(&mut self, irq: u8, level: bool) {
        let bit = 1u8 << (irq & 7);
        let was = self.lines & bit != 0;
        if level {
            self.lines |= bit;
        } else {
            self.lines &= !bit;
        }
        if self.elcr & bit != 0 {
            // Level mode: the request follows the line.
            if level {
                self.irr |= bit;
            } else {
                self.irr &= !bit;
            }
        } else if level && !was {
            self.irr |= bit;
        }
    }

    /// The line of highest priority set in `bits`, with its priority.
    fn highest(&self, bits: u8) -> Option<(u8, u8)> {
        (0..8u8).find_map(|priority| {
            let irq = (self.lowest + 1 + priority) & 7;
            (bits & (1 << irq) != 0).then_some((irq, priority))
        })
    }

    /// The request that would interrupt now (fully nested / special mask rules).
    pub(crate) fn pending(&self) -> Option<u8> {
        let (irq, priority) = self.highest(self.irr & !self.imr)?;
        let mut in_service = self.isr;
        if self.special_mask {
            in_service &= !self.imr;
        }
        if self.special_fully_nested {
            // SFNM (master only): the cascade line may interrupt while in service so
            // that a higher slave request gets through.
            in_service &= !(self.icw3 & (1 << irq));
        }
        match self.highest(in_service) {
            Some((_, busy)) if busy <= priority => None,
            _ => Some(irq),
        }
    }

    /// INTA on this chip for `irq`: moves it to in-service (unless auto-EOI) and clears an
    /// edge request.
    pub(crate) fn acknowledge(&mut self, irq: u8) {
        let bit = 1u8 << irq;
        if self.elcr & bit == 0 {
            self.irr &= !bit;
        }
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.lowest = irq;
            }
        } else {
            self.isr |= bit;
        }
    }

    /// Data-port read: the IMR.
    pub(crate) fn read_data(&self) -> u8 {
        self.imr
    }

    /// Command-port read: a poll result (acknowledging the request), else IRR or ISR.
    pub(crate) fn read_command(&mut self) -> u8 {
        if self.poll {
            self.poll = false;
            return match self.pending() {
                Some(irq) => {
                    self.acknowledge(irq);
                    0x80 | irq
                }
                None => 0,
            };
        }
        if self.read_isr { self.isr } else { self.irr }
    }

    /// Command-port write: ICW1, OCW2 or OCW3.
    pub(crate) fn write_command(&mut self, value: u8) {
        if value & 0x10 != 0 {
            self.icw1(value);
        } else if value & 0x08 != 0 {
            self.ocw3(value);
        } else {
            self.ocw2(value);
        }
    }

    fn icw1(&mut self, value: u8) {
        // ICW1 resets the edge sense circuit, clears the IMR, makes IR7 the lowest
        // priority, clears special mask mode and selects IRR for status reads; without
        // IC4, the ICW4 functions are cleared.
        self.irr = self.lines & self.elcr;
        self.isr = 0;
        self.imr = 0;
        self.lowest = 7;
        self.special_mask = false;
        self.read_isr = false;
        self.poll = false;
        self.needs_icw4 = value & 0x01 != 0;
        self.single = value & 0x02 != 0;
        if !self.needs_icw4 {
            self.auto_eoi = false;
            self.rotate_on_auto_eoi = false;
            self.special_fully_nested = false;
        }
        self.init_step = InitStep::Icw2;
    }

    fn ocw2(&mut self, value: u8) {
        let level = value & 7;
        match value >> 5 {
            // Non-specific EOI, with or without rotation.
            0b001 | 0b101 => {
                if let Some((irq, _)) = self.highest(self.isr) {
                    self.isr &= !(1 << irq);
                    if value >> 5 == 0b101 {
                        self.lowest = irq;
                    }
                }
            }
            // Specific EOI, with or without rotation.
            0b011 | 0b111 => {
                self.isr &= !(1 << level);
                if value >> 5 == 0b111 {
                    self.lowest = level;
                }
            }
            0b100 => self.rotate_on_auto_eoi = true,
            0b000 => self.rotate_on_auto_eoi = false,
            0b110 => self.lowest = level,
            _ => {}
        }
    }

    fn ocw3(&mut self, value: u8) {
        if value & 0x02 != 0 {
            self.read_isr = value & 0x01 != 0;
        }
        self.poll = value & 0x04 != 0;
        if value & 0x40 != 0 {
            self.special_mask = value & 0x20 != 0;
        }
    }

    /// Data-port write: the next ICW of an initialization sequence, else OCW1.
    pub(crate) fn write_data(&mut self, value: u8) {
        match self.init_step {
            InitStep::Ready => self.imr = value,
            InitStep::Icw2 => {
                self.vector_base = value & 0xf8;
                self.init_step = self.after(InitStep::Icw2);
            }
            InitStep::Icw3 => {
                self.icw3 = value;
                self.init_step = self.after(InitStep::Icw3);
            }
            InitStep::Icw4 => {
                self.auto_eoi = value & 0x02 != 0;
                self.special_fully_nested = value & 0x10 != 0;
                self.init_step = InitStep::Ready;
            }
        }
    }

    fn after(&self, step: InitStep) -> InitStep {
        match step {
            InitStep::Icw2 if !self.single => InitStep::Icw3,
            InitStep::Icw2 | InitStep::Icw3 if self.needs_icw4 => InitStep::Icw4,
            _ => InitStep::Ready,
        }
    }

    /// An ELCR write (only the bits in `writable` exist).
    pub(crate) fn write_elcr(&mut self, value: u8, writable: u8) {
        self.elcr = value & writable;
        // Lines now level-triggered follow their input.
        self.irr = (self.irr & !self.elcr) | (self.lines & self.elcr);
    }
}
