//! Interrupts and timers wired into VM exits (issue 9), in Bochs: one boot, three heartbeat
//! VMs in the guest's opt-in interrupt mode, one per interrupt path:
//! - `pit`: PIT counter 0 through the 8259 (port I/O, IRQ0 pulses, injection on entry);
//! - `ioapic`: the same counter through the I/O APIC (GSI 2, redirection entry written
//!   through the I/O APIC page) to the local APIC, the 8259s masked;
//! - `lapic`: the local APIC timer, periodic, programmed and EOI'd through the xAPIC page
//!   (EPT violations decoded by `vm/mmio`), calibrated against the TSC by the guest.
//!
//! Each must keep beating with a rising `irqs=N` count, and `vm info` must show that the
//! vCPU slept in HLT between ticks (`halt: ... skipped=N` with N > 0) instead of being
//! entered only to exit again.
//!
//! Then the interrupt state migrates (`lapic0`, `ioapic`, `pic`, `pit`, `rtc`, `events0`):
//! the interrupt-mode heartbeat moves live between two Bochs hosts (`MigrationPair`), once
//! per timer source, and its count keeps rising on the destination with no gap in beats.

use std::time::Duration;
use system_tests::heartbeat::complete_lines;
use system_tests::migration::{MigrationPair, RUNNING_HERE};
use system_tests::tern::{self};
use system_tests::{Emulator, EmulatorKind, HarnessError, TestResult};

const GUEST_TIMEOUT: Duration = Duration::from_secs(240);

fn vm_section(name: &str, cmdline: &str) -> String {
    format!(
        "\n[vm {name}]\nimage = tern/guests/heartbeat.elf\nmemory = 16M\ncmdline = \"{cmdline}\"\nautostart = yes\n"
    )
}

/// The rest of the next `[vm] HB seq=` line.
fn next_beat_line(host: &mut Emulator, vm: &str) -> Result<String, HarnessError> {
    host.console()
        .expect(&format!("[{vm}] HB seq="), GUEST_TIMEOUT)?;
    host.console().expect("\n", GUEST_TIMEOUT)
}

/// The number after `key=` in `text`.
fn field(text: &str, key: &str) -> Option<u64> {
    let at = text.find(&format!("{key}="))? + key.len() + 1;
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn timer_interrupts_reach_guests_and_halted_vcpus_sleep() -> TestResult {
    let mut config = String::from("[host]\nname = alpha\n\n[net]\nmode = none\n");
    config.push_str(&vm_section(
        "pit",
        "hb.interval_ms=250 hb.wss_mib=0 hb.irq=pit hb.irq_hz=100",
    ));
    config.push_str(&vm_section(
        "ioapic",
        "hb.interval_ms=250 hb.wss_mib=0 hb.irq=ioapic hb.irq_hz=100",
    ));
    config.push_str(&vm_section(
        "lapic",
        "hb.interval_ms=250 hb.wss_mib=0 hb.irq=lapic hb.irq_hz=100",
    ));
    let host = Emulator::builder(EmulatorKind::Bochs)
        .name("interrupts")
        .config(&config)
        .start()?;
    let mut host = tern::to_prompt(host)?.host;

    for vm in ["pit", "ioapic", "lapic"] {
        let line = host
            .console()
            .expect(&format!("[{vm}] HB-IRQ source={vm} "), GUEST_TIMEOUT)?;
        assert!(!line.contains("CRASHED"), "{line}");
    }
    for vm in ["pit", "ioapic", "lapic"] {
        let first = next_beat_line(&mut host, vm)?;
        let mut last = first.clone();
        for _ in 0..3 {
            last = next_beat_line(&mut host, vm)?;
        }
        let (a, b) = (field(&first, "irqs"), field(&last, "irqs"));
        assert!(
            matches!((a, b), (Some(a), Some(b)) if b > a),
            "{vm}: the interrupt count does not rise: `{first}` then `{last}`"
        );
        let info = tern::command(&mut host, &format!("vm info {vm}"))?;
        assert!(info.contains(&format!("{vm}: running")), "{info}");
        let halt = info
            .lines()
            .find(|l| l.trim_start().starts_with("halt:"))
            .unwrap_or_else(|| panic!("no halt line in `vm info {vm}`:\n{info}"));
        assert!(
            field(halt, "skipped").is_some_and(|n| n > 0),
            "{vm} never slept in HLT: {halt}"
        );
        if vm != "lapic" {
            assert!(field(halt, "irq0").is_some_and(|n| n > 0), "{halt}");
        }
    }
    let transcript = host.console().transcript();
    for bad in ["CORRUPT", "CRASHED", "outside guest RAM"] {
        assert!(!transcript.contains(bad), "`{bad}` in:\n{transcript}");
    }
    Ok(())
}

/// `(seq, irqs)` of every complete `[hb] HB seq=` line in `text` that has an `irqs=` field.
fn hb_irqs(text: &str) -> Vec<(u64, u64)> {
    complete_lines(text)
        .split("[hb] HB seq=")
        .skip(1)
        .filter_map(|t| {
            let line = t.lines().next()?;
            let seq = line.split_whitespace().next()?.parse().ok()?;
            Some((seq, field(line, "irqs")?))
        })
        .collect()
}

fn live_migration_keeps_interrupts(source: &str) -> TestResult {
    let mut pair = MigrationPair::builder(&format!("interrupts-migration-{source}"))
        .cmdline(&format!(
            "hb.interval_ms=250 hb.wss_mib=1 hb.dirty_pages_per_sec=20 hb.irq={source} hb.irq_hz=100"
        ))
        .boot()?;
    pair.next_beat(0)?;
    pair.set_parameters(0, &["downtime-limit 500"])?;
    let answer = pair.migrate(0, "", "hb")?;
    assert!(answer.contains("live migration of 'hb'"), "{answer}");
    let completed = pair.expect_completed(0)?;
    let on_source = hb_irqs(&completed.transcript);
    let (_, irqs_at_source) = *on_source
        .iter()
        .find(|(seq, _)| *seq == completed.last_beat)
        .unwrap_or_else(|| {
            panic!(
                "no irqs= in the last source beat:\n{}",
                completed.transcript
            )
        });
    pair.assert_arrived(1, &completed)?;
    pair.beats_after(1, RUNNING_HERE, 4)?;
    let transcript = pair.hosts[1].console().transcript();
    let tail = transcript
        .rsplit_once(RUNNING_HERE)
        .map_or("", |(_, tail)| tail);
    let arrived = hb_irqs(tail);
    assert!(
        arrived.len() >= 4,
        "too few beats on the destination: {arrived:?}"
    );
    assert!(
        arrived[0].1 >= irqs_at_source,
        "the count went back: {irqs_at_source} on the source, then {arrived:?}"
    );
    assert!(
        arrived.windows(2).all(|w| w[1].1 > w[0].1),
        "the interrupt count stopped rising on the destination: {arrived:?}"
    );
    for bad in ["CRASHED", "outside guest RAM"] {
        assert!(
            !transcript.contains(bad),
            "`{bad}` on the destination:\n{transcript}"
        );
    }
    pair.assert_no_corruption();
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn lapic_timer_keeps_ticking_after_live_migration() -> TestResult {
    live_migration_keeps_interrupts("lapic")
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn pit_keeps_ticking_after_live_migration() -> TestResult {
    live_migration_keeps_interrupts("pit")
}
