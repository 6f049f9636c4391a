//! The local APIC timer (SDM Vol. 3A 11.5.4): a down-counter clocked by the APIC timer
//! clock divided by the divide configuration, in one-shot or periodic mode, or a comparator
//! against the TSC in TSC-deadline mode (11.5.4.1).
//!
//! Why it is shaped like this: time is an input. The counter is never decremented; it is a
//! start time in guest TSC ticks plus the tick at which it next expires, and the current
//! count is computed from `now` on demand. The conversion uses exact integer arithmetic
//! from the start of the countdown (`u128`), so a periodic timer never drifts however often
//! it is sampled, and [`LapicTimer::next_deadline`] is the first TSC value at which the
//! expiry is due, which the vCPU loop turns into a preemption-timer or HLT sleep bound.
//!
//! Simplification: a write to the divide configuration takes effect at the next load of the
//! initial count (the running countdown keeps the divider it was started with). Linux
//! programs the divider before the count.

/// The two clocks the timer relates: the guest TSC (the time base of every `now` argument
/// and of TSC-deadline mode) and the APIC timer input clock (the bus or core crystal clock,
/// CPUID leaf 0x15 on recent CPUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerClock {
    tsc_hz: u64,
    apic_timer_hz: u64,
}

impl TimerClock {
    /// Both frequencies in Hz; `None` if either is zero.
    pub fn new(tsc_hz: u64, apic_timer_hz: u64) -> Option<Self> {
        (tsc_hz != 0 && apic_timer_hz != 0).then_some(Self {
            tsc_hz,
            apic_timer_hz,
        })
    }

    /// Timer ticks (after the divider) in `tsc_elapsed` guest TSC ticks.
    fn ticks_in(&self, tsc_elapsed: u64, divide: u32) -> u64 {
        let num = u128::from(tsc_elapsed) * u128::from(self.apic_timer_hz);
        let den = u128::from(self.tsc_hz) * u128::from(divide.max(1));
        u64::try_from(num / den).unwrap_or(u64::MAX)
    }

    /// The first TSC offset (from the start) at which `ticks` timer ticks have elapsed.
    fn tsc_for(&self, ticks: u64, divide: u32) -> u64 {
        let num = u128::from(ticks) * u128::from(self.tsc_hz) * u128::from(divide.max(1));
        let den = u128::from(self.apic_timer_hz);
        u64::try_from(num.div_ceil(den)).unwrap_or(u64::MAX)
    }
}

/// Timer mode, LVT timer bits 18:17.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerMode {
    /// Counts down once from the initial count.
    OneShot,
    /// Reloads the initial count at every expiry.
    Periodic,
    /// Fires when the TSC reaches IA32_TSC_DEADLINE.
    TscDeadline,
}

impl TimerMode {
    /// Decodes LVT timer bits 18:17. The reserved encoding 0b11 behaves as one-shot.
    pub fn from_lvt(lvt: u32) -> Self {
        match (lvt >> 17) & 3 {
            1 => Self::Periodic,
            2 => Self::TscDeadline,
            _ => Self::OneShot,
        }
    }
}

/// Divide configuration register (bits 3, 1:0) to the divisor (SDM 11.5.4, Figure 11-10).
pub fn divisor(divide_config: u32) -> u32 {
    let code = ((divide_config >> 1) & 4) | (divide_config & 3);
    if code == 7 { 1 } else { 2 << code }
}

/// A running one-shot or periodic countdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Countdown {
    /// Guest TSC at the load of the initial count.
    pub(crate) start_tsc: u64,
    /// The divisor the countdown runs with (1..=128, a power of two).
    pub(crate) divide: u32,
    /// The initial count it was loaded with (non-zero).
    pub(crate) initial: u32,
    /// Timer ticks since `start_tsc` at which it next expires.
    pub(crate) next_expiry_ticks: u64,
}

/// The timer's dynamic state; its configuration (LVT, initial count, divider) lives in the
/// register file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LapicTimer {
    pub(crate) countdown: Option<Countdown>,
    /// IA32_TSC_DEADLINE; 0 = disarmed.
    pub(crate) tsc_deadline: u64,
}

impl LapicTimer {
    /// Loads the initial count at `now` (a zero count stops the timer, SDM 11.5.4).
    pub(crate) fn load(&mut self, now: u64, initial: u32, divide: u32) {
        self.countdown = (initial != 0).then_some(Countdown {
            start_tsc: now,
            divide,
            initial,
            next_expiry_ticks: u64::from(initial),
        });
    }

    /// Stops everything (mode change, APIC disable).
    pub(crate) fn disarm(&mut self) {
        self.countdown = None;
        self.tsc_deadline = 0;
    }

    /// The current-count register at `now`.
    pub(crate) fn current_count(&self, clock: &TimerClock, mode: TimerMode, now: u64) -> u32 {
        let Some(c) = self.countdown else { return 0 };
        if mode == TimerMode::TscDeadline {
            return 0;
        }
        let elapsed = clock.ticks_in(now.saturating_sub(c.start_tsc), c.divide);
        let count = if elapsed < c.next_expiry_ticks {
            c.next_expiry_ticks - elapsed
        } else if mode == TimerMode::Periodic {
            u64::from(c.initial) - elapsed % u64::from(c.initial)
        } else {
            0
        };
        // The count never exceeds the 32-bit initial count.
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Processes an expiry due at `now`; returns whether the timer fired (several missed
    /// periods coalesce into one interrupt, as the IRR holds one bit per vector).
    pub(crate) fn advance(&mut self, clock: &TimerClock, mode: TimerMode, now: u64) -> bool {
        if mode == TimerMode::TscDeadline {
            // SDM 11.5.4.1: the timer fires once and IA32_TSC_DEADLINE reads 0 afterwards.
            if self.tsc_deadline != 0 && now >= self.tsc_deadline {
                self.tsc_deadline = 0;
                return true;
            }
            return false;
        }
        let Some(c) = self.countdown.as_mut() else {
            return false;
        };
        let elapsed = clock.ticks_in(now.saturating_sub(c.start_tsc), c.divide);
        if elapsed < c.next_expiry_ticks {
            return false;
        }
        if mode == TimerMode::Periodic {
            let period = u64::from(c.initial);
            c.next_expiry_ticks = (elapsed / period).saturating_add(1).saturating_mul(period);
        } else {
            self.countdown = None;
        }
        true
    }

    /// The guest TSC at which the next expiry is due, if armed.
    pub(crate) fn next_deadline(&self, clock: &TimerClock, mode: TimerMode) -> Option<u64> {
        if mode == TimerMode::TscDeadline {
            return (self.tsc_deadline != 0).then_some(self.tsc_deadline);
        }
        let c = self.countdown?;
        Some(
            c.start_tsc
                .saturating_add(clock.tsc_for(c.next_expiry_ticks, c.divide)),
        )
    }
}
