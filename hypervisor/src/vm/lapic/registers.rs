//! The APIC register file by register index (the MMIO offset divided by 16, which is also
//! the x2APIC MSR number minus 0x800, SDM Vol. 3A Table 11-6), and the xAPIC MMIO view.
//!
//! Why one table for both views: the xAPIC page and the x2APIC MSRs are two windows onto
//! the same registers (SDM 11.12.1.2). The few places where they differ (ID width, LDR
//! writable or derived, DFR and the two-halved ICR only in xAPIC mode, SELF IPI only in
//! x2APIC mode) are handled by the view that owns the difference.

use super::timer::{TimerMode, divisor};
use super::{
    ApicMode, ESR_ILLEGAL_REGISTER, LVT_MASKED, LVT_WRITABLE, Lapic, LapicOutput, SVR_ENABLE,
};

/// Register indices (MMIO offset >> 4).
pub(crate) mod index {
    pub(crate) const ID: u32 = 0x02;
    pub(crate) const VERSION: u32 = 0x03;
    pub(crate) const TPR: u32 = 0x08;
    pub(crate) const APR: u32 = 0x09;
    pub(crate) const PPR: u32 = 0x0a;
    pub(crate) const EOI: u32 = 0x0b;
    pub(crate) const RRD: u32 = 0x0c;
    pub(crate) const LDR: u32 = 0x0d;
    pub(crate) const DFR: u32 = 0x0e;
    pub(crate) const SVR: u32 = 0x0f;
    pub(crate) const ISR0: u32 = 0x10;
    pub(crate) const TMR0: u32 = 0x18;
    pub(crate) const IRR0: u32 = 0x20;
    pub(crate) const ESR: u32 = 0x28;
    pub(crate) const ICR_LOW: u32 = 0x30;
    pub(crate) const ICR_HIGH: u32 = 0x31;
    pub(crate) const LVT_TIMER: u32 = 0x32;
    pub(crate) const LVT_ERROR: u32 = 0x37;
    pub(crate) const TIMER_INITIAL: u32 = 0x38;
    pub(crate) const TIMER_CURRENT: u32 = 0x39;
    pub(crate) const TIMER_DIVIDE: u32 = 0x3e;
    pub(crate) const SELF_IPI: u32 = 0x3f;
}

/// Version register: version 0x14 (integrated APIC), 6 LVT entries (max LVT index 5), no
/// EOI-broadcast suppression (SDM 11.4.8, Figure 11-7).
pub(crate) const VERSION_VALUE: u32 = 0x0005_0014;
/// SVR bits software may write: vector, APIC enable, focus processor checking.
pub(crate) const SVR_WRITABLE: u32 = 0x3ff;
/// Divide configuration bits 0, 1 and 3.
pub(crate) const DIVIDE_WRITABLE: u32 = 0xb;

/// Why a register write was not performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterFault {
    /// No such register in this mode.
    Unimplemented,
    /// The register cannot be written.
    ReadOnly,
}

impl Lapic {
    /// Reads register `index`, or `None` if it is not readable in the current mode.
    pub(crate) fn read_register(&self, idx: u32, now: u64) -> Option<u32> {
        let x2 = self.mode() == ApicMode::X2Apic;
        let r = &self.regs;
        Some(match idx {
            index::ID if x2 => r.id,
            index::ID => r.id << 24,
            index::VERSION => VERSION_VALUE,
            index::TPR => u32::from(r.tpr),
            index::APR if !x2 => 0,
            index::PPR => u32::from(self.ppr()),
            index::LDR => r.ldr,
            index::DFR if !x2 => r.dfr,
            index::SVR => r.svr,
            i @ index::ISR0..=0x17 => r.isr.word((i - index::ISR0) as usize),
            i @ index::TMR0..=0x1f => r.tmr.word((i - index::TMR0) as usize),
            i @ index::IRR0..=0x27 => r.irr.word((i - index::IRR0) as usize),
            index::ESR => r.esr,
            index::ICR_LOW => r.icr as u32,
            index::ICR_HIGH if !x2 => (r.icr >> 32) as u32,
            i @ index::LVT_TIMER..=index::LVT_ERROR => r.lvt[(i - index::LVT_TIMER) as usize],
            index::TIMER_INITIAL => r.timer_initial,
            index::TIMER_CURRENT => {
                self.timer
                    .current_count(&self.config.clock, self.timer_mode(), now)
            }
            index::TIMER_DIVIDE => r.divide_config,
            _ => return None,
        })
    }

    /// Writes register `index` with the rules both views share. ICR, SELF IPI, ID, LDR and
    /// DFR, whose rules differ by mode, are the views' business.
    pub(crate) fn write_common_register(
        &mut self,
        idx: u32,
        value: u32,
        now: u64,
    ) -> Result<Option<LapicOutput>, RegisterFault> {
        match idx {
            index::TPR => self.regs.tpr = value as u8,
            index::EOI => return Ok(self.eoi()),
            index::SVR => self.write_svr(value),
            index::ESR => {
                // SDM 11.5.3: a write latches the errors detected since the last write.
                self.regs.esr = self.regs.esr_pending;
                self.regs.esr_pending = 0;
            }
            i @ index::LVT_TIMER..=index::LVT_ERROR => {
                self.write_lvt((i - index::LVT_TIMER) as usize, value)
            }
            index::TIMER_INITIAL => {
                // SDM 11.5.4.1: in TSC-deadline mode writes to the initial count are ignored.
                if self.timer_mode() != TimerMode::TscDeadline {
                    self.regs.timer_initial = value;
                    let divide = divisor(self.regs.divide_config);
                    self.timer.load(now, value, divide);
                }
            }
            index::TIMER_DIVIDE => self.regs.divide_config = value & DIVIDE_WRITABLE,
            index::VERSION
            | index::PPR
            | index::APR
            | index::RRD
            | index::ISR0..=0x27
            | index::TIMER_CURRENT => return Err(RegisterFault::ReadOnly),
            _ => return Err(RegisterFault::Unimplemented),
        }
        Ok(None)
    }

    fn write_svr(&mut self, value: u32) {
        self.regs.svr = value & SVR_WRITABLE;
        if value & SVR_ENABLE == 0 {
            // SDM 11.4.7.2: software disable masks every LVT entry.
            for lvt in &mut self.regs.lvt {
                *lvt |= LVT_MASKED;
            }
        }
    }

    fn write_lvt(&mut self, slot: usize, value: u32) {
        let mut value = value & LVT_WRITABLE[slot];
        if self.regs.svr & SVR_ENABLE == 0 {
            // SDM 11.4.7.2: while software-disabled the mask bits cannot be cleared.
            value |= LVT_MASKED;
        }
        if slot == 0 {
            let old_mode = TimerMode::from_lvt(self.regs.lvt[0]);
            if TimerMode::from_lvt(value) != old_mode {
                // SDM 11.5.4.1: a write that changes the timer mode disarms the timer.
                self.timer.disarm();
                self.regs.timer_initial = 0;
            }
        }
        self.regs.lvt[slot] = value;
    }

    /// A 32-bit read of the xAPIC page at `offset` (0..0x1000). Outside xAPIC mode the page
    /// is not decoded and reads as all ones; unimplemented registers read 0 and set
    /// ESR bit 7 (SDM 11.5.3).
    pub fn mmio_read(&mut self, offset: u32, now: u64) -> u32 {
        if self.mode() != ApicMode::XApic {
            return u32::MAX;
        }
        if offset & 0xf != 0 || offset >= 0x400 {
            return 0;
        }
        match self.read_register(offset >> 4, now) {
            Some(v) => v,
            None if offset >> 4 == index::EOI => 0,
            None => {
                self.record_error(ESR_ILLEGAL_REGISTER);
                0
            }
        }
    }

    /// A 32-bit write of the xAPIC page at `offset`. Ignored outside xAPIC mode; writes to
    /// read-only registers are dropped, writes to unimplemented ones set ESR bit 7.
    pub fn mmio_write(&mut self, offset: u32, value: u32, now: u64) -> Option<LapicOutput> {
        if self.mode() != ApicMode::XApic || offset & 0xf != 0 || offset >= 0x400 {
            return None;
        }
        match offset >> 4 {
            index::ID => self.regs.id = value >> 24,
            index::LDR => self.regs.ldr = value & 0xff00_0000,
            index::DFR => self.regs.dfr = value | 0x0fff_ffff,
            index::ICR_HIGH => {
                self.regs.icr =
                    (self.regs.icr & 0xffff_ffff) | (u64::from(value & 0xff00_0000) << 32);
            }
            index::ICR_LOW => {
                // Delivery status (bit 12) reads 0: delivery is instantaneous here.
                self.regs.icr = (self.regs.icr & !0xffff_ffff) | u64::from(value & 0x000c_cfff);
                return self.send_ipi();
            }
            idx => match self.write_common_register(idx, value, now) {
                Ok(out) => return out,
                Err(RegisterFault::ReadOnly) => {}
                Err(RegisterFault::Unimplemented) => self.record_error(ESR_ILLEGAL_REGISTER),
            },
        }
        None
    }
}
