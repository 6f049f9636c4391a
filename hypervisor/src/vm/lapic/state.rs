//! Save and restore of a local APIC for migration.
//!
//! Layout (little-endian, after the common "LAPC" magic and `u16` version 1 header of
//! [`crate::vm::device_state_codec`]):
//!
//! ```text
//! u64 IA32_APIC_BASE   u32 ID   u8 TPR   u32 LDR   u32 DFR   u32 SVR
//! 8 x u32 ISR          8 x u32 TMR       8 x u32 IRR
//! u32 ESR (latched)    u32 ESR (pending) u64 ICR
//! 6 x u32 LVT (timer, thermal, perf, LINT0, LINT1, error)
//! u32 timer initial count   u32 divide configuration
//! u8 countdown running (0/1), u64 start TSC, u32 divisor, u32 initial, u64 next expiry
//!                            (all zero when not running)
//! u64 IA32_TSC_DEADLINE
//! ```
//!
//! Times are guest TSC values: the guest TSC continues across a migration (the destination
//! sets its TSC offset so), so a deadline saved on the source is still right on the
//! destination. Restore re-checks every invariant the register-write paths keep (reserved
//! bits, LVT masked while software-disabled, x2APIC LDR derived from the ID, a countdown
//! only outside TSC-deadline mode and consistent with the initial count), because a peer
//! controls these bytes.

use alloc::vec::Vec;

use super::registers::{DIVIDE_WRITABLE, SVR_WRITABLE};
use super::timer::{Countdown, LapicTimer, TimerMode};
use super::{
    ApicMode, LVT_MASKED, LVT_WRITABLE, Lapic, LapicConfig, Registers, SVR_ENABLE, VectorSet,
};
use crate::vm::device_state_codec::{StateError, StateReader, StateWriter, invalid};

const MAGIC: [u8; 4] = *b"LAPC";
/// Current encoding version.
pub const STATE_VERSION: u16 = 1;
const DEVICE: &str = "local APIC";

/// A saved local APIC: its register file and timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LapicState {
    regs: Registers,
    timer: LapicTimer,
}

impl Lapic {
    /// The state to migrate.
    pub fn save(&self) -> LapicState {
        LapicState {
            regs: self.regs.clone(),
            timer: self.timer,
        }
    }

    /// Rebuilds an APIC with host constants `config` from a saved state, refusing states
    /// the device could not have reached.
    pub fn restore(config: LapicConfig, state: &LapicState) -> Result<Self, StateError> {
        let base = state.regs.apic_base;
        super::check_apic_base(base, config.max_phys_addr_bits)
            .map_err(|_| invalid(DEVICE, "apic_base", base))?;
        if (base & super::BASE_BSP != 0) != config.bsp {
            return Err(invalid(
                DEVICE,
                "apic_base (BSP flag differs from this vCPU)",
                base,
            ));
        }
        let saved_mode = super::mode_of(base);
        if saved_mode == ApicMode::X2Apic && state.regs.id != config.apic_id {
            // The x2APIC ID is read-only (SDM 11.12.5.1): it must be this vCPU's.
            return Err(invalid(DEVICE, "id (x2APIC)", state.regs.id.into()));
        }
        validate(&state.regs, &state.timer, saved_mode)?;
        Ok(Self {
            config,
            regs: state.regs.clone(),
            timer: state.timer,
        })
    }
}

fn validate(r: &Registers, t: &LapicTimer, mode: ApicMode) -> Result<(), StateError> {
    let check = |ok: bool, field, value: u64| {
        if ok {
            Ok(())
        } else {
            Err(invalid(DEVICE, field, value))
        }
    };
    match mode {
        ApicMode::X2Apic => {
            check(
                r.ldr == super::x2apic::logical_id(r.id),
                "ldr",
                r.ldr.into(),
            )?;
        }
        _ => {
            check(r.id <= 0xff, "id", r.id.into())?;
            check(r.ldr & 0x00ff_ffff == 0, "ldr", r.ldr.into())?;
        }
    }
    check(r.dfr | 0xf000_0000 == u32::MAX, "dfr", r.dfr.into())?;
    check(r.svr & !SVR_WRITABLE == 0, "svr", r.svr.into())?;
    check(r.esr & !0xff == 0, "esr", r.esr.into())?;
    check(
        r.esr_pending & !0xff == 0,
        "esr_pending",
        r.esr_pending.into(),
    )?;
    check(r.icr & !0xffff_ffff_000c_cfff == 0, "icr", r.icr)?;
    check(
        r.divide_config & !DIVIDE_WRITABLE == 0,
        "divide_config",
        r.divide_config.into(),
    )?;
    for (lvt, writable) in r.lvt.iter().zip(LVT_WRITABLE) {
        check(lvt & !writable == 0, "lvt", (*lvt).into())?;
        let masked_if_disabled = r.svr & SVR_ENABLE != 0 || lvt & LVT_MASKED != 0;
        check(
            masked_if_disabled,
            "lvt (unmasked while software-disabled)",
            (*lvt).into(),
        )?;
    }
    for (field, set) in [("isr", r.isr), ("tmr", r.tmr), ("irr", r.irr)] {
        // Vectors 0-15 can never be accepted (SDM 11.8.4).
        check(set.word(0) & 0xffff == 0, field, set.word(0).into())?;
    }
    let timer_mode = TimerMode::from_lvt(r.lvt[0]);
    if mode == ApicMode::Disabled {
        check(
            t.countdown.is_none() && t.tsc_deadline == 0,
            "timer (APIC disabled)",
            1,
        )?;
    }
    if timer_mode != TimerMode::TscDeadline {
        check(t.tsc_deadline == 0, "tsc_deadline", t.tsc_deadline)?;
    }
    if let Some(c) = t.countdown {
        check(
            timer_mode != TimerMode::TscDeadline,
            "countdown (TSC-deadline mode)",
            1,
        )?;
        check(
            c.divide.is_power_of_two() && c.divide <= 128,
            "countdown.divide",
            c.divide.into(),
        )?;
        check(
            c.initial != 0 && c.initial == r.timer_initial,
            "countdown.initial",
            c.initial.into(),
        )?;
        let period = u64::from(c.initial);
        let aligned = c.next_expiry_ticks >= period
            && (timer_mode == TimerMode::Periodic || c.next_expiry_ticks == period)
            && c.next_expiry_ticks % period == 0;
        check(aligned, "countdown.next_expiry", c.next_expiry_ticks)?;
    }
    Ok(())
}

impl LapicState {
    /// The migration encoding.
    pub fn encode(&self) -> Vec<u8> {
        let (r, t) = (&self.regs, &self.timer);
        let mut w = StateWriter::new(MAGIC, STATE_VERSION);
        w.u64(r.apic_base);
        w.u32(r.id);
        w.u8(r.tpr);
        w.u32(r.ldr);
        w.u32(r.dfr);
        w.u32(r.svr);
        for set in [r.isr, r.tmr, r.irr] {
            for word in set.words() {
                w.u32(word);
            }
        }
        w.u32(r.esr);
        w.u32(r.esr_pending);
        w.u64(r.icr);
        for lvt in r.lvt {
            w.u32(lvt);
        }
        w.u32(r.timer_initial);
        w.u32(r.divide_config);
        let c = t.countdown.unwrap_or(Countdown {
            start_tsc: 0,
            divide: 0,
            initial: 0,
            next_expiry_ticks: 0,
        });
        w.bool(t.countdown.is_some());
        w.u64(c.start_tsc);
        w.u32(c.divide);
        w.u32(c.initial);
        w.u64(c.next_expiry_ticks);
        w.u64(t.tsc_deadline);
        w.finish()
    }

    /// Parses [`Self::encode`] output; field invariants are checked by [`Lapic::restore`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let mut r = StateReader::new(bytes, DEVICE, MAGIC, STATE_VERSION)?;
        let apic_base = r.u64("apic_base")?;
        let id = r.u32("id")?;
        let tpr = r.u8("tpr")?;
        let ldr = r.u32("ldr")?;
        let dfr = r.u32("dfr")?;
        let svr = r.u32("svr")?;
        let mut sets = [VectorSet::default(); 3];
        for set in &mut sets {
            let mut words = [0u32; 8];
            for word in &mut words {
                *word = r.u32("vector set")?;
            }
            *set = VectorSet::from_words(words);
        }
        let [isr, tmr, irr] = sets;
        let esr = r.u32("esr")?;
        let esr_pending = r.u32("esr_pending")?;
        let icr = r.u64("icr")?;
        let mut lvt = [0u32; 6];
        for entry in &mut lvt {
            *entry = r.u32("lvt")?;
        }
        let timer_initial = r.u32("timer_initial")?;
        let divide_config = r.u32("divide_config")?;
        let running = r.bool("countdown.running")?;
        let countdown = Countdown {
            start_tsc: r.u64("countdown.start")?,
            divide: r.u32("countdown.divide")?,
            initial: r.u32("countdown.initial")?,
            next_expiry_ticks: r.u64("countdown.next_expiry")?,
        };
        let tsc_deadline = r.u64("tsc_deadline")?;
        r.finish()?;
        let idle = Countdown {
            start_tsc: 0,
            divide: 0,
            initial: 0,
            next_expiry_ticks: 0,
        };
        if !running && countdown != idle {
            return Err(invalid(
                DEVICE,
                "countdown (not running)",
                countdown.start_tsc,
            ));
        }
        Ok(Self {
            regs: Registers {
                apic_base,
                id,
                tpr,
                ldr,
                dfr,
                svr,
                isr,
                tmr,
                irr,
                esr,
                esr_pending,
                icr,
                lvt,
                timer_initial,
                divide_config,
            },
            timer: LapicTimer {
                countdown: running.then_some(countdown),
                tsc_deadline,
            },
        })
    }
}
