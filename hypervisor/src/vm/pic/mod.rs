//! The PC's pair of 8259A PICs (master at 0x20/0x21, slave at 0xA0/0xA1 cascaded on master
//! IR2) and the edge/level control registers at 0x4D0/0x4D1.
//!
//! Why this shape: the port-I/O exit handler calls [`DualPic::read`] / [`DualPic::write`];
//! devices drive ISA IRQ lines 0-15 with [`DualPic::set_irq`]; the vCPU side asks
//! [`DualPic::interrupt_output`] (the INTR pin, which reaches the CPU through LAPIC LINT0 in
//! virtual-wire mode) and, when it injects, runs the INTA cycle with
//! [`DualPic::acknowledge`], which returns the vector. No time, no callbacks: the PIC is
//! purely reactive. Linux still probes and masks it even when it uses the I/O APIC, and
//! early boot, the timer check (`check_timer`) and some firmware run on it.
//!
//! The ELCR (Intel PIIX/ICH "Edge/Level Control" registers) replaces the 8259A's global
//! LTIM bit on PCs; IRQ0, 1, 2, 8 and 13 are always edge-triggered, so those ELCR bits read
//! 0. The chip-level logic is in [`chip`].

mod chip;
pub mod state;

use chip::Pic8259;

/// Master command/status port.
pub const MASTER_COMMAND: u16 = 0x20;
/// Master data (IMR) port.
pub const MASTER_DATA: u16 = 0x21;
/// Slave command/status port.
pub const SLAVE_COMMAND: u16 = 0xa0;
/// Slave data (IMR) port.
pub const SLAVE_DATA: u16 = 0xa1;
/// ELCR for IRQ 0-7.
pub const ELCR_MASTER: u16 = 0x4d0;
/// ELCR for IRQ 8-15.
pub const ELCR_SLAVE: u16 = 0x4d1;

/// ELCR bits that exist: not IRQ0, 1, 2 (master) nor IRQ8, 13 (slave).
pub(crate) const ELCR_MASTER_WRITABLE: u8 = 0xf8;
pub(crate) const ELCR_SLAVE_WRITABLE: u8 = 0xde;
/// The master input the slave's INT output is wired to.
pub const CASCADE_IRQ: u8 = 2;

/// The master/slave 8259A pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DualPic {
    pub(crate) master: Pic8259,
    pub(crate) slave: Pic8259,
}

impl Default for DualPic {
    fn default() -> Self {
        Self::new()
    }
}

impl DualPic {
    /// Both chips at power-on (uninitialized: vector base 0, nothing masked).
    pub fn new() -> Self {
        Self {
            master: Pic8259::new(),
            slave: Pic8259::new(),
        }
    }

    /// Whether `port` belongs to the PIC pair or its ELCRs.
    pub fn handles_port(port: u16) -> bool {
        matches!(
            port,
            MASTER_COMMAND | MASTER_DATA | SLAVE_COMMAND | SLAVE_DATA | ELCR_MASTER | ELCR_SLAVE
        )
    }

    /// A guest byte read of `port` (ports not ours read 0xff).
    pub fn read(&mut self, port: u16) -> u8 {
        let value = match port {
            MASTER_COMMAND => self.master.read_command(),
            MASTER_DATA => self.master.read_data(),
            SLAVE_COMMAND => self.slave.read_command(),
            SLAVE_DATA => self.slave.read_data(),
            ELCR_MASTER => self.master.elcr,
            ELCR_SLAVE => self.slave.elcr,
            _ => 0xff,
        };
        self.update_cascade();
        value
    }

    /// A guest byte write of `port`.
    pub fn write(&mut self, port: u16, value: u8) {
        match port {
            MASTER_COMMAND => self.master.write_command(value),
            MASTER_DATA => self.master.write_data(value),
            SLAVE_COMMAND => self.slave.write_command(value),
            SLAVE_DATA => self.slave.write_data(value),
            ELCR_MASTER => self.master.write_elcr(value, ELCR_MASTER_WRITABLE),
            ELCR_SLAVE => self.slave.write_elcr(value, ELCR_SLAVE_WRITABLE),
            _ => {}
        }
        self.update_cascade();
    }

    /// Drives ISA IRQ line `irq` (0..16; IRQ2 is the cascade and not an input).
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        match irq {
            0..=7 if irq != CASCADE_IRQ => self.master.set_line(irq, level),
            8..=15 => self.slave.set_line(irq - 8, level),
            _ => {}
        }
        self.update_cascade();
    }

    /// The slave's INT output is the master's IR2 input. An 8259A edge input must stay
    /// high until INTA or the request is withdrawn (data sheet, "Edge and level triggered
    /// modes"); the slave's INT is such a held level, so when it drops the master's IR2
    /// request goes with it. (ISA device lines keep the latched-edge behaviour so that a
    /// pulse, high then low, is not lost.)
    fn update_cascade(&mut self) {
        let slave_int = self.slave.pending().is_some();
        self.master.set_line(CASCADE_IRQ, slave_int);
        if !slave_int {
            self.master.irr &= !(1 << CASCADE_IRQ);
        }
    }

    /// The master's INT output: the CPU's INTR pin.
    pub fn interrupt_output(&self) -> bool {
        self.master.pending().is_some()
    }

    /// The INTA cycle: the vector of the highest-priority request, moving it in service.
    /// With no request (it went away before INTA) the 8259A answers with IR7 of the chip
    /// concerned: a spurious interrupt, not put in service (data sheet, "Interrupt
    /// sequence").
    pub fn acknowledge(&mut self) -> u8 {
        let vector = match self.master.pending() {
            Some(CASCADE_IRQ) => {
                self.master.acknowledge(CASCADE_IRQ);
                match self.slave.pending() {
                    Some(irq) => {
                        self.slave.acknowledge(irq);
                        self.slave.vector_base | irq
                    }
                    None => self.slave.vector_base | 7,
                }
            }
            Some(irq) => {
                self.master.acknowledge(irq);
                self.master.vector_base | irq
            }
            None => self.master.vector_base | 7,
        };
        self.update_cascade();
        vector
    }

    /// The IMR of both chips (slave in the high byte), e.g. for diagnostics.
    pub fn masks(&self) -> u16 {
        u16::from_le_bytes([self.master.imr, self.slave.imr])
    }
}

#[cfg(test)]
mod tests;
