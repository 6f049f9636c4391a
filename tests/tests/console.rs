//! The serial console answers like an operator expects: `help` lists the commands, `info`
//! describes the host, a bad command gets a one-line error and the console keeps going,
//! `shutdown` powers the machine off. Run on QEMU (fast); none of it needs VT-x.

use std::time::Duration;
use system_tests::tern::{self, UNKNOWN_COMMAND};
use system_tests::{EmulatorKind, TestResult};

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn help_lists_the_commands() -> TestResult {
    let mut booted = tern::boot(EmulatorKind::Qemu, "console-help")?;
    let answer = tern::command(&mut booted.host, "help")?;
    for command in ["help", "info", "shutdown"] {
        assert!(
            answer.contains(command),
            "`help` does not list `{command}`:\n{answer}"
        );
    }
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn info_shows_memory_vtx_and_uptime() -> TestResult {
    let mut booted = tern::boot(EmulatorKind::Qemu, "console-info")?;
    let answer = tern::command(&mut booted.host, "info")?;
    let lower = answer.to_lowercase();
    for topic in ["memory", "vt-x", "uptime"] {
        assert!(
            lower.contains(topic),
            "`info` says nothing about {topic}:\n{answer}"
        );
    }
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn unknown_and_malformed_commands_get_an_error_and_the_console_goes_on() -> TestResult {
    let mut booted = tern::boot(EmulatorKind::Qemu, "console-unknown")?;
    for line in ["frobnicate", "frobnicate --now 42", "%%%"] {
        let answer = tern::command(&mut booted.host, line)?;
        assert!(
            answer.contains(UNKNOWN_COMMAND),
            "`{line}` did not get `{UNKNOWN_COMMAND}`:\n{answer}"
        );
    }
    let answer = tern::command(&mut booted.host, "help")?;
    assert!(
        answer.contains("info"),
        "console did not recover after bad commands:\n{answer}"
    );
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn shutdown_powers_the_machine_off() -> TestResult {
    let mut booted = tern::boot(EmulatorKind::Qemu, "console-shutdown")?;
    booted.host.console().send_line("shutdown")?;
    let exit = booted.host.wait_exit(Duration::from_secs(60))?;
    assert!(
        exit.powered_off,
        "QEMU did not power off cleanly: {:?}",
        exit.status
    );
    Ok(())
}
