//! The guest's parameters, read from the PVH command line: `hb.interval_ms=100 hb.wss_mib=8
//! hb.dirty_pages_per_sec=1000 hb.dirty_words=512 hb.tsc_khz=2000000
//! hb.mode=normal|triple_fault|escape|bench hb.irq=none|pit|ioapic|lapic hb.irq_hz=100`.
//! `hb.tsc_khz` is an explicit override: normally the rate comes from the hypervisor's CPUID
//! timing leaf (see [`crate::tsc_rate`]).
//! Tokens without the `hb.` prefix belong to someone else and are skipped; a bad `hb.` token
//! is reported through a callback and its default kept, so a typo never stops the guest.

/// What the guest does after boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Heartbeat lines plus the dirtying, self-verifying working set.
    Normal,
    /// Load an empty IDT and fault: the hypervisor must see a triple fault.
    TripleFault,
    /// Write all RAM from the memory map, then poke addresses outside RAM.
    Escape,
    /// Measure VM-exit round trips (CPUID, port I/O) and preemption-timer slice gaps.
    Bench,
}

impl Mode {
    /// The spelling used on the command line and in the `HB-START` line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::TripleFault => "triple_fault",
            Mode::Escape => "escape",
            Mode::Bench => "bench",
        }
    }
}

/// Which timer interrupt the normal mode takes between its passes (it HLTs after each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqSource {
    /// No interrupts: the guest polls the TSC and never halts (the default).
    None,
    /// PIT counter 0 (rate generator) through the 8259 on IRQ0.
    Pit,
    /// PIT counter 0 through the I/O APIC (ISA IRQ0 = GSI 2) to the local APIC, the 8259s
    /// masked: the path an OS with an MADT takes.
    IoApic,
    /// The local APIC timer in periodic mode, programmed through the xAPIC page.
    Lapic,
}

impl IrqSource {
    /// The spelling used on the command line and in `HB-START`.
    pub fn name(self) -> &'static str {
        match self {
            IrqSource::None => "none",
            IrqSource::Pit => "pit",
            IrqSource::IoApic => "ioapic",
            IrqSource::Lapic => "lapic",
        }
    }
}

/// The guest's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Guest time between two `HB` lines, in milliseconds.
    pub interval_ms: u64,
    /// Working-set size in MiB.
    pub wss_mib: u64,
    /// Working-set pages rewritten per second of guest time.
    pub dirty_pages_per_sec: u64,
    /// 64-bit words of a page each rewrite changes (from the start of the page): 512 rewrites
    /// whole pages; fewer writes part of a page, as counters and queues do, which is what
    /// delta pages send cheaply.
    pub dirty_words: u64,
    /// TSC frequency in kHz, if the command line gave it (overrides the hypervisor's).
    pub tsc_khz: Option<u64>,
    /// What to run.
    pub mode: Mode,
    /// The timer interrupt of the normal mode.
    pub irq: IrqSource,
    /// Its rate in Hz.
    pub irq_hz: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            interval_ms: 1000,
            wss_mib: 4,
            dirty_pages_per_sec: 256,
            dirty_words: WORDS_PER_PAGE,
            tsc_khz: None,
            mode: Mode::Normal,
            irq: IrqSource::None,
            irq_hz: 100,
        }
    }
}

/// Upper bounds that keep the arithmetic in the guest free of overflow.
const MAX_INTERVAL_MS: u64 = 3_600_000;
const MAX_WSS_MIB: u64 = 1 << 20;
const MAX_DIRTY_RATE: u64 = 1 << 32;
const MAX_TSC_KHZ: u64 = 1 << 32;
/// The PIT divides 1.193182 MHz by at most 65536 (about 18 Hz) and by at least 2.
const MIN_IRQ_HZ: u64 = 19;
const MAX_IRQ_HZ: u64 = 10_000;
/// 64-bit words in a page.
const WORDS_PER_PAGE: u64 = 512;

/// The 8254's input clock (Hz).
pub const PIT_HZ: u64 = 1_193_182;

impl Params {
    /// PIT counter 0's reload value for `irq_hz` (rounded, 2..=65535).
    pub fn pit_reload(&self) -> u16 {
        let hz = self.irq_hz.max(1);
        // Clamped to the counter's range, so the cast cannot truncate.
        ((PIT_HZ + hz / 2) / hz).clamp(2, 65_535) as u16
    }

    /// Parse `cmdline`; each rejected `hb.` token is passed to `warn` with the reason.
    pub fn parse(cmdline: &str, mut warn: impl FnMut(&str, &'static str)) -> Self {
        let mut params = Self::default();
        for token in cmdline.split_ascii_whitespace() {
            let Some(setting) = token.strip_prefix("hb.") else {
                continue;
            };
            let Some((key, value)) = setting.split_once('=') else {
                warn(token, "expected hb.KEY=VALUE");
                continue;
            };
            let number = |max: u64, min: u64| match value.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                Ok(_) => Err("value out of range"),
                Err(_) => Err("not a decimal number"),
            };
            let outcome = match key {
                "interval_ms" => number(MAX_INTERVAL_MS, 1).map(|n| params.interval_ms = n),
                "wss_mib" => number(MAX_WSS_MIB, 0).map(|n| params.wss_mib = n),
                "dirty_pages_per_sec" => {
                    number(MAX_DIRTY_RATE, 0).map(|n| params.dirty_pages_per_sec = n)
                }
                "tsc_khz" => number(MAX_TSC_KHZ, 1).map(|n| params.tsc_khz = Some(n)),
                "dirty_words" => number(WORDS_PER_PAGE, 1).map(|n| params.dirty_words = n),
                "irq_hz" => number(MAX_IRQ_HZ, MIN_IRQ_HZ).map(|n| params.irq_hz = n),
                "irq" => match value {
                    "none" => Ok(IrqSource::None),
                    "pit" => Ok(IrqSource::Pit),
                    "ioapic" => Ok(IrqSource::IoApic),
                    "lapic" => Ok(IrqSource::Lapic),
                    _ => Err("irq must be none, pit, ioapic or lapic"),
                }
                .map(|i| params.irq = i),
                "mode" => match value {
                    "normal" => Ok(Mode::Normal),
                    "triple_fault" => Ok(Mode::TripleFault),
                    "escape" => Ok(Mode::Escape),
                    "bench" => Ok(Mode::Bench),
                    _ => Err("mode must be normal, triple_fault, escape or bench"),
                }
                .map(|m| params.mode = m),
                _ => Err("unknown parameter"),
            };
            if let Err(reason) = outcome {
                warn(token, reason);
            }
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_collect(cmdline: &str) -> (Params, Vec<(String, &'static str)>) {
        let mut warnings = Vec::new();
        let p = Params::parse(cmdline, |t, r| warnings.push((t.to_string(), r)));
        (p, warnings)
    }

    #[test]
    fn pit_reload_rounds_and_clamps() {
        let at = |irq_hz| Params {
            irq_hz,
            ..Params::default()
        };
        assert_eq!(at(100).pit_reload(), 11_932);
        assert_eq!(at(1000).pit_reload(), 1193);
        assert_eq!(at(19).pit_reload(), 62_799);
        assert_eq!(at(1).pit_reload(), 65_535);
        assert_eq!(at(10_000_000).pit_reload(), 2);
    }

    #[test]
    fn defaults_when_empty() {
        assert_eq!(parse_collect(""), (Params::default(), vec![]));
    }

    #[test]
    fn parses_all_keys_and_skips_foreign_tokens() {
        let (p, w) = parse_collect(
            "console=ttyS0 hb.interval_ms=100 hb.wss_mib=8 hb.dirty_pages_per_sec=1000 \
             hb.dirty_words=16 hb.tsc_khz=2500000 hb.mode=escape hb.irq=lapic hb.irq_hz=250 quiet",
        );
        assert!(w.is_empty());
        assert_eq!(
            p,
            Params {
                interval_ms: 100,
                wss_mib: 8,
                dirty_pages_per_sec: 1000,
                dirty_words: 16,
                tsc_khz: Some(2_500_000),
                mode: Mode::Escape,
                irq: IrqSource::Lapic,
                irq_hz: 250,
            }
        );
    }

    #[test]
    fn bad_tokens_warn_and_keep_defaults() {
        let (p, w) = parse_collect(
            "hb.interval_ms=0 hb.wss_mib=x hb.bogus=1 hb.mode=fast hb.tsc_khz hb.wss_mib=99999999 \
             hb.dirty_words=0 hb.dirty_words=513 hb.irq=msi hb.irq_hz=18 hb.irq_hz=10001",
        );
        assert_eq!(p, Params::default());
        let reasons: Vec<&str> = w.iter().map(|(_, r)| *r).collect();
        assert_eq!(
            reasons,
            [
                "value out of range",
                "not a decimal number",
                "unknown parameter",
                "mode must be normal, triple_fault, escape or bench",
                "expected hb.KEY=VALUE",
                "value out of range",
                "value out of range",
                "value out of range",
                "irq must be none, pit, ioapic or lapic",
                "value out of range",
                "value out of range"
            ]
        );
    }
}
