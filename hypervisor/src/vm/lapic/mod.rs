//! A local APIC as a pure state machine: the register file behind the xAPIC MMIO page and
//! the x2APIC MSRs, interrupt acceptance and priority, EOI, IPIs and the timer.
//!
//! Why this shape: the exit handlers will see three kinds of access (an EPT violation or
//! APIC-access exit on the xAPIC page, RDMSR/WRMSR of 0x800-0x8FF, WRMSR of
//! IA32_APIC_BASE / IA32_TSC_DEADLINE) and one kind of question at every VM entry ("which
//! vector, if any, may the vCPU take now?"). Each is one method here; nothing reads a clock
//! (every time-dependent call takes `now` in guest TSC ticks) and nothing touches a VMCS.
//! What the APIC sends out is returned as a [`LapicOutput`]: an EOI broadcast for the
//! I/O APIC's level-triggered lines, or an IPI for the router. The state is saved and
//! restored byte-exactly for migration ([`state`]).
//!
//! SDM Vol. 3A chapter 11 sections encoded here: 11.4.4 (IA32_APIC_BASE), 11.4.7.2
//! (software disable masks the LVT), 11.5.1 (LVT layout), 11.5.3 (ESR), 11.5.4 (timer),
//! 11.6.1 (ICR), 11.8.3.1 (TPR/PPR), 11.8.4 (IRR/ISR/TMR), 11.8.5 (EOI), 11.9 (spurious
//! vector), 11.12 (x2APIC mode, its MSR map and the mode transition rules of 11.12.5).
//!
//! Not modelled: logical-destination arbitration and lowest-priority arbitration among
//! several APICs (that is the router's job, this APIC only reports IPIs), the thermal and
//! performance-counter LVT sources (the entries are registers only), CMCI, directed EOI
//! (the version register does not advertise EOI-broadcast suppression).

mod ipi;
mod registers;
pub mod state;
pub mod timer;
pub mod vector_set;
mod x2apic;

use crate::vm::interrupts::message::{DeliveryMode, TriggerMode};
pub use ipi::{Ipi, Shorthand};
use timer::LapicTimer;
pub use timer::{TimerClock, TimerMode};
pub use vector_set::VectorSet;
pub use x2apic::X2ApicFault;

/// IA32_APIC_BASE MSR index.
pub const IA32_APIC_BASE: u32 = 0x1b;
/// IA32_TSC_DEADLINE MSR index.
pub const IA32_TSC_DEADLINE: u32 = 0x6e0;
/// The architectural default physical address of the xAPIC page.
pub const DEFAULT_APIC_BASE_ADDRESS: u64 = 0xfee0_0000;

const BASE_BSP: u64 = 1 << 8;
const BASE_EXTD: u64 = 1 << 10;
const BASE_ENABLE: u64 = 1 << 11;

/// SVR bit 8: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// LVT bit 16: masked.
const LVT_MASKED: u32 = 1 << 16;

/// ESR bit 6: a vector below 16 was sent or received (SDM 11.5.3).
const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
/// ESR bit 5: a vector below 16 was sent.
const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
/// ESR bit 7: an access to an unimplemented register (xAPIC MMIO only).
const ESR_ILLEGAL_REGISTER: u32 = 1 << 7;

/// Index of each LVT entry in [`Registers::lvt`] (the register order at 0x320..0x370).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LvtEntry {
    /// 0x320.
    Timer = 0,
    /// 0x330.
    Thermal = 1,
    /// 0x340.
    PerfCounter = 2,
    /// 0x350.
    Lint0 = 3,
    /// 0x360.
    Lint1 = 4,
    /// 0x370.
    Error = 5,
}

/// Bits software may write in each LVT entry (SDM 11.5.1, Figure 11-8), in
/// [`LvtEntry`] order.
const LVT_WRITABLE: [u32; 6] = [
    0x0007_00ff,
    0x0001_07ff,
    0x0001_07ff,
    0x0001_a7ff,
    0x0001_a7ff,
    0x0001_00ff,
];

/// Which mode IA32_APIC_BASE puts the APIC in (SDM 11.12.5, Figure 11-27).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicMode {
    /// EN = 0: the APIC is off; the CPU sees the 8259 INTR pin directly.
    Disabled,
    /// EN = 1, EXTD = 0: registers in the MMIO page.
    XApic,
    /// EN = 1, EXTD = 1: registers as MSRs 0x800-0x8FF.
    X2Apic,
}

/// Why a WRMSR of IA32_APIC_BASE faults (the caller injects #GP(0)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicBaseError {
    /// Reserved bits (0-7, 9, or above MAXPHYADDR) are set.
    ReservedBits(u64),
    /// EN = 0 with EXTD = 1 is an invalid state.
    InvalidState,
    /// The transition is not allowed (x2APIC to xAPIC, disabled to x2APIC; SDM 11.12.5).
    InvalidTransition {
        /// Mode before the write.
        from: ApicMode,
        /// Mode the write asked for.
        to: ApicMode,
    },
}

/// How this APIC is built: host-chosen constants that are not guest state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LapicConfig {
    /// Initial APIC ID (the x2APIC ID; the xAPIC ID is its low 8 bits).
    pub apic_id: u32,
    /// Whether this is the bootstrap processor (IA32_APIC_BASE.BSP).
    pub bsp: bool,
    /// Guest TSC and APIC timer frequencies.
    pub clock: TimerClock,
    /// Guest MAXPHYADDR: APIC base bits at and above it are reserved.
    pub max_phys_addr_bits: u8,
}

/// What a register write sends out of the APIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LapicOutput {
    /// An EOI for a level-triggered vector: the I/O APICs clear remote IRR for it (SDM
    /// 11.8.5).
    EoiBroadcast {
        /// The vector whose ISR bit was cleared.
        vector: u8,
    },
    /// An IPI for the router.
    Ipi(Ipi),
}

/// The register file (everything a guest can see), kept apart for save/restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Registers {
    pub(crate) apic_base: u64,
    pub(crate) id: u32,
    pub(crate) tpr: u8,
    pub(crate) ldr: u32,
    pub(crate) dfr: u32,
    pub(crate) svr: u32,
    pub(crate) isr: VectorSet,
    pub(crate) tmr: VectorSet,
    pub(crate) irr: VectorSet,
    /// ESR as last latched by a write.
    pub(crate) esr: u32,
    /// Errors detected since the last ESR write.
    pub(crate) esr_pending: u32,
    /// ICR: low 32 bits, destination in the high 32 (x2APIC layout; xAPIC keeps its 8-bit
    /// destination in bits 63:56, which is the same storage).
    pub(crate) icr: u64,
    pub(crate) lvt: [u32; 6],
    pub(crate) timer_initial: u32,
    pub(crate) divide_config: u32,
}

impl Registers {
    /// The state after RESET or INIT (SDM 11.4.7.1), with `apic_base` and `id` given.
    fn reset(apic_base: u64, id: u32) -> Self {
        Self {
            apic_base,
            id,
            tpr: 0,
            ldr: 0,
            dfr: 0xffff_ffff,
            svr: 0xff,
            isr: VectorSet::default(),
            tmr: VectorSet::default(),
            irr: VectorSet::default(),
            esr: 0,
            esr_pending: 0,
            icr: 0,
            lvt: [LVT_MASKED; 6],
            timer_initial: 0,
            divide_config: 0,
        }
    }
}

/// A local APIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lapic {
    config: LapicConfig,
    regs: Registers,
    timer: LapicTimer,
}

impl Lapic {
    /// An APIC at power-on: xAPIC mode at the default base address, software-disabled.
    pub fn new(config: LapicConfig) -> Self {
        let mut base = DEFAULT_APIC_BASE_ADDRESS | BASE_ENABLE;
        if config.bsp {
            base |= BASE_BSP;
        }
        Self {
            config,
            regs: Registers::reset(base, config.apic_id),
            timer: LapicTimer::default(),
        }
    }

    /// The mode IA32_APIC_BASE selects.
    pub fn mode(&self) -> ApicMode {
        mode_of(self.regs.apic_base)
    }

    /// IA32_APIC_BASE as RDMSR returns it.
    pub fn apic_base(&self) -> u64 {
        self.regs.apic_base
    }

    /// The guest-physical address of the xAPIC page.
    pub fn mmio_base(&self) -> u64 {
        self.regs.apic_base & !0xfff
    }

    /// WRMSR IA32_APIC_BASE with the checks of SDM 11.4.4 and 11.12.5. BSP is read-only.
    pub fn set_apic_base(&mut self, value: u64) -> Result<(), ApicBaseError> {
        check_apic_base(value, self.config.max_phys_addr_bits)?;
        let from = self.mode();
        let to = mode_of(value);
        match (from, to) {
            (ApicMode::X2Apic, ApicMode::XApic) | (ApicMode::Disabled, ApicMode::X2Apic) => {
                return Err(ApicBaseError::InvalidTransition { from, to });
            }
            _ => {}
        }
        let value = (value & !BASE_BSP) | (self.regs.apic_base & BASE_BSP);
        if to == ApicMode::Disabled && from != ApicMode::Disabled {
            // SDM 11.4.3: disabling the APIC through IA32_APIC_BASE loses its state; a later
            // re-enable starts from the power-up register values.
            self.regs = Registers::reset(value, self.config.apic_id);
            self.timer.disarm();
            return Ok(());
        }
        self.regs.apic_base = value;
        if to == ApicMode::X2Apic && from != ApicMode::X2Apic {
            // SDM 11.12.5.1: on entry to x2APIC mode the ID is the full x2APIC ID and LDR
            // is derived from it (11.12.10.2).
            self.regs.id = self.config.apic_id;
            self.regs.ldr = x2apic::logical_id(self.config.apic_id);
        }
        Ok(())
    }

    /// Whether the APIC is hardware-enabled and its SVR software-enable bit is set.
    pub fn software_enabled(&self) -> bool {
        self.mode() != ApicMode::Disabled && self.regs.svr & SVR_ENABLE != 0
    }

    /// The processor-priority register (SDM 11.8.3.1).
    pub fn ppr(&self) -> u8 {
        let tpr = self.regs.tpr;
        let isrv = self.regs.isr.highest().unwrap_or(0);
        if tpr >> 4 >= isrv >> 4 {
            tpr
        } else {
            isrv & 0xf0
        }
    }

    /// The task-priority register (CR8 is its bits 7:4).
    pub fn tpr(&self) -> u8 {
        self.regs.tpr
    }

    /// MOV to CR8: TPR[7:4] = CR8[3:0], TPR[3:0] = 0 (SDM 10.8.6.1 / 11.8.6.1).
    pub fn set_cr8(&mut self, cr8: u64) {
        self.regs.tpr = ((cr8 & 0xf) << 4) as u8;
    }

    /// Accepts a fixed interrupt into the IRR (SDM 11.8.4), recording its trigger mode in
    /// the TMR. Vectors 0-15 are illegal: refused and reported in the ESR (11.5.3). An APIC
    /// that is hardware- or software-disabled drops fixed interrupts. Returns whether the
    /// vector is now pending.
    pub fn accept(&mut self, vector: u8, trigger: TriggerMode) -> bool {
        if self.mode() == ApicMode::Disabled {
            return false;
        }
        if vector < 16 {
            self.record_error(ESR_RECEIVE_ILLEGAL_VECTOR);
            return false;
        }
        if self.regs.svr & SVR_ENABLE == 0 {
            return false;
        }
        self.accept_unchecked(vector, trigger);
        true
    }

    fn accept_unchecked(&mut self, vector: u8, trigger: TriggerMode) {
        self.regs.irr.insert(vector);
        match trigger {
            TriggerMode::Level => self.regs.tmr.insert(vector),
            TriggerMode::Edge => self.regs.tmr.remove(vector),
        }
    }

    /// The IRR as a set.
    pub fn irr(&self) -> VectorSet {
        self.regs.irr
    }

    /// The ISR as a set.
    pub fn isr(&self) -> VectorSet {
        self.regs.isr
    }

    /// The highest pending vector the processor may take now: its priority class must be
    /// above PPR[7:4] (SDM 11.8.3). Independent of RFLAGS.IF, which the injector checks.
    pub fn highest_deliverable(&self) -> Option<u8> {
        if !self.software_enabled() {
            return None;
        }
        let vector = self.regs.irr.highest()?;
        (vector >> 4 > self.ppr() >> 4).then_some(vector)
    }

    /// The INTA cycle at injection: moves [`Self::highest_deliverable`] from IRR to ISR and
    /// returns it (SDM 11.8.4).
    pub fn acknowledge(&mut self) -> Option<u8> {
        let vector = self.highest_deliverable()?;
        self.regs.irr.remove(vector);
        self.regs.isr.insert(vector);
        Some(vector)
    }

    /// A write to the EOI register: clears the highest ISR bit; a level-triggered vector
    /// is broadcast to the I/O APICs (SDM 11.8.5).
    fn eoi(&mut self) -> Option<LapicOutput> {
        let vector = self.regs.isr.highest()?;
        self.regs.isr.remove(vector);
        self.regs
            .tmr
            .contains(vector)
            .then_some(LapicOutput::EoiBroadcast { vector })
    }

    /// An LVT entry as the guest wrote it.
    pub fn lvt(&self, entry: LvtEntry) -> u32 {
        self.regs.lvt[entry as usize]
    }

    /// Whether the PIC's INTR output reaches the CPU: LINT0 unmasked in ExtINT mode
    /// (virtual-wire mode, MP spec 3.6.2.2), or the APIC hardware-disabled (the INTR pin
    /// goes straight to the core).
    pub fn accepts_pic_interrupts(&self) -> bool {
        if self.mode() == ApicMode::Disabled {
            return true;
        }
        let lint0 = self.lvt(LvtEntry::Lint0);
        lint0 & LVT_MASKED == 0 && DeliveryMode::from_bits(lint0 >> 8) == Some(DeliveryMode::ExtInt)
    }

    /// What PC firmware leaves behind for the OS (MP specification 1.4, 3.6.2.2 "virtual
    /// wire mode"): APIC software-enabled with spurious vector 0xFF, LINT0 in ExtINT mode so
    /// the 8259's INTR reaches the CPU, LINT1 delivering NMI. tern boots guests without
    /// firmware (PVH), so the VM builder calls this in the firmware's place.
    pub fn enable_virtual_wire(&mut self) {
        if self.mode() == ApicMode::Disabled {
            return;
        }
        self.regs.svr = SVR_ENABLE | 0xff;
        self.regs.lvt[LvtEntry::Lint0 as usize] = (DeliveryMode::ExtInt as u32) << 8;
        self.regs.lvt[LvtEntry::Lint1 as usize] = (DeliveryMode::Nmi as u32) << 8;
    }

    /// Signals a local interrupt pin (LINT0/LINT1, e.g. the NMI wire on LINT1). A fixed
    /// delivery is accepted into the IRR; returns the delivery mode when the pin is
    /// unmasked so the caller can raise an NMI or consult the PIC for ExtINT.
    pub fn signal_lint(&mut self, entry: LvtEntry) -> Option<DeliveryMode> {
        if !matches!(entry, LvtEntry::Lint0 | LvtEntry::Lint1) || !self.software_enabled() {
            return None;
        }
        let lvt = self.lvt(entry);
        if lvt & LVT_MASKED != 0 {
            return None;
        }
        let mode = DeliveryMode::from_bits(lvt >> 8)?;
        if mode == DeliveryMode::Fixed {
            self.accept(lvt as u8, TriggerMode::from_bit15(u64::from(lvt)));
        }
        Some(mode)
    }

    /// Records an error in the ESR and raises the error LVT if it is unmasked (11.5.3).
    fn record_error(&mut self, bit: u32) {
        self.regs.esr_pending |= bit;
        let lvt = self.lvt(LvtEntry::Error);
        if lvt & LVT_MASKED == 0 && lvt as u8 >= 16 && self.regs.svr & SVR_ENABLE != 0 {
            self.accept_unchecked(lvt as u8, TriggerMode::Edge);
        }
    }

    /// The timer mode the LVT selects.
    pub fn timer_mode(&self) -> TimerMode {
        TimerMode::from_lvt(self.lvt(LvtEntry::Timer))
    }

    /// RDMSR IA32_TSC_DEADLINE: 0 unless in TSC-deadline mode (SDM 11.5.4.1).
    pub fn tsc_deadline(&self) -> u64 {
        if self.timer_mode() == TimerMode::TscDeadline {
            self.timer.tsc_deadline
        } else {
            0
        }
    }

    /// WRMSR IA32_TSC_DEADLINE: arms (non-zero) or disarms (zero) the timer; ignored outside
    /// TSC-deadline mode (SDM 11.5.4.1). A deadline already past fires at the next
    /// [`Self::advance`].
    pub fn set_tsc_deadline(&mut self, value: u64) {
        if self.timer_mode() == TimerMode::TscDeadline && self.mode() != ApicMode::Disabled {
            self.timer.tsc_deadline = value;
        }
    }

    /// Guest TSC at which the timer next needs attention (an expiry), if armed.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timer
            .next_deadline(&self.config.clock, self.timer_mode())
    }

    /// Brings the timer up to `now`: an expiry due sets the timer vector in the IRR unless
    /// the LVT entry is masked (the count still expires and reloads).
    pub fn advance(&mut self, now: u64) {
        let mode = self.timer_mode();
        if self.timer.advance(&self.config.clock, mode, now) {
            let lvt = self.lvt(LvtEntry::Timer);
            if lvt & LVT_MASKED == 0 {
                self.accept(lvt as u8, TriggerMode::Edge);
            }
        }
    }
}

/// The checks on an IA32_APIC_BASE value alone: reserved bits (SDM 11.4.4, Figure 11-5)
/// and the invalid EN = 0, EXTD = 1 state (11.12.5).
fn check_apic_base(value: u64, max_phys_addr_bits: u8) -> Result<(), ApicBaseError> {
    let phys_mask = 1u64
        .checked_shl(u32::from(max_phys_addr_bits))
        .map_or(u64::MAX, |v| v - 1);
    let allowed = (phys_mask & !0xfff) | BASE_ENABLE | BASE_EXTD | BASE_BSP;
    if value & !allowed != 0 {
        return Err(ApicBaseError::ReservedBits(value & !allowed));
    }
    if value & BASE_ENABLE == 0 && value & BASE_EXTD != 0 {
        return Err(ApicBaseError::InvalidState);
    }
    Ok(())
}

fn mode_of(apic_base: u64) -> ApicMode {
    match (apic_base & BASE_ENABLE != 0, apic_base & BASE_EXTD != 0) {
        (false, _) => ApicMode::Disabled,
        (true, false) => ApicMode::XApic,
        (true, true) => ApicMode::X2Apic,
    }
}

#[cfg(test)]
mod tests;
