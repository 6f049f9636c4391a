//! VMs on tern (issue 4), in Bochs (the only emulator here with VT-x), plus the heartbeat
//! guest alone under QEMU `-kernel` for comparison.
//!
//! Two Bochs boots cover the list, each scenario asserted on its own:
//! - `heartbeats_pause_resume_two_vms_and_console_errors`: two heartbeat VMs side by side,
//!   no `CORRUPT` line, `vm pause` stops one VM's beats while the other goes on, `vm resume`
//!   continues its sequence at the next number, `vm list`/`vm info`, one-line errors.
//! - `crash_and_escape_leave_host_and_other_vms_intact`: a triple-faulting VM is reported
//!   crashed while the console and a heartbeat VM go on; a VM that writes all of its RAM and
//!   probes outside it changes neither the hypervisor's code, nor the canary frames around
//!   guest RAM, nor a paused VM's RAM (`selfcheck` digests before and after).

use std::time::Duration;
use system_tests::tern::{self, PROMPT};
use system_tests::{Emulator, EmulatorKind, HarnessError, TestResult};

/// How long a guest may take to produce a line we wait for (Bochs, two emulators on two
/// shared cores, several VMs sharing the emulated CPU).
const GUEST_TIMEOUT: Duration = Duration::from_secs(240);

/// Heartbeat VM settings: four beats a second of guest time, small working set.
const HB_CMDLINE: &str = "hb.interval_ms=250 hb.wss_mib=1 hb.dirty_pages_per_sec=200";

fn vm_section(name: &str, memory: &str, cmdline: &str, autostart: bool) -> String {
    format!(
        "\n[vm {name}]\nimage = tern/guests/heartbeat.elf\nmemory = {memory}\ncmdline = \"{cmdline}\"\nautostart = {}\n",
        if autostart { "yes" } else { "no" }
    )
}

fn host_config(vms: &[String]) -> String {
    let mut text = String::from("[host]\nname = alpha\n\n[net]\nmode = none\n");
    for vm in vms {
        text.push_str(vm);
    }
    text
}

fn boot(name: &str, config: &str) -> Result<Emulator, HarnessError> {
    let host = Emulator::builder(EmulatorKind::Bochs)
        .name(name)
        .config(config)
        .start()?;
    Ok(tern::to_prompt(host)?.host)
}

/// Wait for the next `[vm] HB seq=N` line and return N.
fn next_beat(host: &mut Emulator, vm: &str) -> Result<u64, HarnessError> {
    host.console()
        .expect(&format!("[{vm}] HB seq="), GUEST_TIMEOUT)?;
    let rest = host.console().expect(" ", GUEST_TIMEOUT)?;
    Ok(rest
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("`[{vm}] HB seq=` followed by `{rest}`, not a number")))
}

fn assert_no_corruption(host: &mut Emulator) {
    let transcript = host.console().transcript();
    assert!(
        !transcript.contains("CORRUPT"),
        "a guest reported corrupted memory:\n{transcript}"
    );
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn heartbeats_pause_resume_two_vms_and_console_errors() -> TestResult {
    let config = host_config(&[
        vm_section("hb1", "16M", HB_CMDLINE, true),
        vm_section("hb2", "16M", HB_CMDLINE, true),
    ]);
    let mut host = boot("vms-heartbeat", &config)?;

    // Both boot by PVH and beat side by side.
    let text = host.console().expect("[hb1] HB seq=2 ", GUEST_TIMEOUT)?;
    assert!(text.contains("[hb1] HB-START mode=normal"), "{text}");
    host.console().expect("[hb2] HB seq=2 ", GUEST_TIMEOUT)?;
    let list = tern::command(&mut host, "vm list")?;
    for vm in ["hb1", "hb2"] {
        assert!(
            list.lines()
                .any(|l| l.starts_with(vm) && l.contains("running")),
            "`vm list` does not show {vm} running:\n{list}"
        );
    }

    // Pause hb1: its beats stop while hb2's go on.
    let before_pause = next_beat(&mut host, "hb1")?;
    let answer = tern::command(&mut host, "vm pause hb1")?;
    assert!(answer.contains("hb1: paused"), "{answer}");
    let mut while_paused = String::new();
    let hb2_at_pause = next_beat(&mut host, "hb2")?;
    for _ in 0..4 {
        while_paused.push_str(&host.console().expect("[hb2] HB seq=", GUEST_TIMEOUT)?);
    }
    assert!(
        !while_paused.contains("[hb1] HB seq="),
        "hb1 kept beating while paused:\n{while_paused}"
    );
    let info = tern::command(&mut host, "vm info hb1")?;
    assert!(info.contains("hb1: paused"), "{info}");
    assert!(info.contains("slices="), "no slice count:\n{info}");
    assert!(info.contains("io"), "no I/O exits by reason:\n{info}");

    // Resume: the sequence continues where it stopped (at most the beat in flight at the
    // pause was printed after `before_pause`).
    let answer = tern::command(&mut host, "vm resume hb1")?;
    assert!(answer.contains("hb1: running"), "{answer}");
    let after = next_beat(&mut host, "hb1")?;
    assert!(
        after == before_pause + 1 || after == before_pause + 2,
        "hb1 resumed at seq={after}, paused after seq={before_pause}"
    );
    let after_hb2 = next_beat(&mut host, "hb2")?;
    assert!(after_hb2 > hb2_at_pause, "hb2 stopped beating");

    // Bad names and states: one line each, the console goes on.
    for (line, expected) in [
        ("vm info nope", "vm: no VM named 'nope'"),
        ("vm pause nope", "vm: no VM named 'nope'"),
        ("vm resume hb2", "vm hb2: "),
        ("vm frobnicate hb1", "vm: unknown subcommand 'frobnicate'"),
        ("vm start", "vm start: missing VM name"),
    ] {
        let answer = tern::command(&mut host, line)?;
        // The answer is the `vm...: ...` line; heartbeat lines may be interleaved with it
        // and with the echo of what was typed (guest output is not held back while the
        // operator types), so those are skipped.
        let lines: Vec<&str> = answer
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("vm") && l.contains(": "))
            .collect();
        assert!(
            lines.len() == 1 && lines[0].contains(expected),
            "`{line}` should answer one line with `{expected}`, got:\n{answer}"
        );
    }
    next_beat(&mut host, "hb1")?;
    assert_no_corruption(&mut host);
    Ok(())
}

/// The `selfcheck` lines, keyed by what they cover (`image`, `canaries`, `vm NAME`).
fn selfcheck(host: &mut Emulator) -> Result<Vec<(String, String)>, HarnessError> {
    let answer = tern::command(host, "selfcheck")?;
    let mut lines = Vec::new();
    for line in answer.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("selfcheck ") else {
            continue;
        };
        assert!(
            !rest.starts_with("CANARY-DAMAGED"),
            "canary damaged: {line}"
        );
        if let Some((what, digest)) = rest.split_once(" blake3=") {
            let digest = digest.split_whitespace().next().unwrap_or("").to_string();
            assert_eq!(digest.len(), 64, "not a BLAKE3 digest: {line}");
            lines.push((what.to_string(), digest));
        }
    }
    Ok(lines)
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn crash_and_escape_leave_host_and_other_vms_intact() -> TestResult {
    let config = host_config(&[
        vm_section("hb1", "16M", HB_CMDLINE, true),
        vm_section("tf", "8M", "hb.mode=triple_fault", true),
        vm_section("esc", "16M", "hb.mode=escape", false),
    ]);
    let mut host = boot("vms-crash-escape", &config)?;

    // The triple fault is reported, the VM is marked crashed, the rest goes on.
    host.console()
        .expect("[tf] CRASHED: triple fault", GUEST_TIMEOUT)?;
    let list = tern::command(&mut host, "vm list")?;
    assert!(
        list.lines()
            .any(|l| l.starts_with("tf") && l.contains("crashed")),
        "`vm list` does not show tf crashed:\n{list}"
    );
    let info = tern::command(&mut host, "vm info tf")?;
    assert!(info.contains("crashed: triple fault"), "{info}");
    let seq = next_beat(&mut host, "hb1")?;
    let later = next_beat(&mut host, "hb1")?;
    assert_eq!(later, seq + 1, "hb1 skipped beats after the crash");

    // The escape attempt, with hb1 paused so that its RAM can be digested too.
    let answer = tern::command(&mut host, "vm pause hb1")?;
    assert!(answer.contains("hb1: paused"), "{answer}");
    let before = selfcheck(&mut host)?;
    let covered: Vec<&str> = before.iter().map(|(w, _)| w.as_str()).collect();
    for what in ["image", "canaries", "vm hb1", "vm tf"] {
        assert!(
            covered.contains(&what),
            "selfcheck does not cover {what}: {covered:?}"
        );
    }
    let answer = tern::command(&mut host, "vm start esc")?;
    assert!(answer.contains("esc: running"), "{answer}");
    let done = host.console().expect("ram_mismatches=", GUEST_TIMEOUT)?;
    assert!(done.contains("[esc] ESCAPE-DONE"), "{done}");
    let mismatches = host.console().expect("\n", GUEST_TIMEOUT)?;
    assert_eq!(
        mismatches.trim(),
        "0",
        "the escape guest's own RAM did not read back"
    );
    assert!(
        done.contains("outside guest RAM"),
        "probes outside RAM were not trapped:\n{done}"
    );
    let after = selfcheck(&mut host)?;
    let digest_of = |lines: &[(String, String)], what: &str| {
        lines
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, d)| d.clone())
    };
    // Everything but the escape VM's own RAM must be unchanged.
    for what in ["image", "canaries", "vm hb1", "vm tf"] {
        assert_eq!(
            digest_of(&after, what),
            digest_of(&before, what),
            "`{what}` changed while the escape guest ran"
        );
    }

    // The host and hb1 are fine: resume continues the sequence, memory intact.
    let answer = tern::command(&mut host, "vm resume hb1")?;
    assert!(answer.contains("hb1: running"), "{answer}");
    let resumed = next_beat(&mut host, "hb1")?;
    assert!(resumed > later, "hb1 did not continue after resume");
    let answer = tern::command(&mut host, "info")?;
    assert!(answer.contains("uptime"), "{answer}");
    assert_no_corruption(&mut host);
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn heartbeat_guest_boots_under_qemu_kernel() -> TestResult {
    let elf = system_tests::esp_dir()?.join("tern/guests/heartbeat.elf");
    let mut guest = Emulator::builder(EmulatorKind::Qemu)
        .name("vms-qemu-kernel")
        .memory_mib(64)
        .direct_kernel(&elf, HB_CMDLINE)
        .start()?;
    let timeout = guest.kind().boot_timeout();
    let start = guest.console().expect("HB-START mode=normal", timeout)?;
    assert!(!start.contains(PROMPT), "{start}");
    guest.console().expect("HB seq=0 ", timeout)?;
    guest.console().expect("HB seq=3 ", timeout)?;
    assert_no_corruption(&mut guest);
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn without_vtx_no_vm_runs_and_vm_commands_say_so() -> TestResult {
    // The default ESP configures one heartbeat VM; QEMU TCG has no VT-x.
    let mut booted = tern::boot(EmulatorKind::Qemu, "vms-no-vtx")?;
    assert!(
        booted
            .boot_log
            .contains("VT-x not available: no VMs will run"),
        "no clear line about VMs not running:\n{}",
        booted.boot_log
    );
    for line in ["vm list", "vm start heartbeat"] {
        let answer = tern::command(&mut booted.host, line)?;
        assert!(
            answer.contains("error: VT-x not available"),
            "`{line}` without VT-x:\n{answer}"
        );
    }
    let answer = tern::command(&mut booted.host, "selfcheck")?;
    assert!(answer.contains("selfcheck image blake3="), "{answer}");
    booted
        .host
        .console()
        .expect_absent("[heartbeat]", Duration::from_secs(2))?;
    Ok(())
}
