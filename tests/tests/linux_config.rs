//! A Linux VM that cannot boot stops the host's boot at the loader, with the config's file
//! and line (issue 9: missing file, not a bzImage, too little memory). QEMU TCG suffices:
//! all of it happens before the hypervisor runs.

use std::time::Duration;
use system_tests::tern::PROMPT;
use system_tests::{Emulator, EmulatorKind, TestResult};

/// `[vm lx]` starts on line 4; `kernel` is on line 5.
fn config(kernel: &str, memory: &str) -> String {
    format!(
        "[host]\nname = alpha\n\n[vm lx]\nkernel = {kernel}\ninitrd = tern/linux/initrd.cpio\nmemory = {memory}\n"
    )
}

/// Boot with `config`; the loader must print `expected` and nothing may boot after it.
fn refused(name: &str, config: &str, expected: &str) -> TestResult {
    let mut host = Emulator::builder(EmulatorKind::Qemu)
        .name(name)
        .config(config)
        .start()?;
    let boot = host.kind().boot_timeout();
    let before = host.console().expect(expected, boot)?;
    assert!(
        !before.contains(PROMPT),
        "a prompt before the error:\n{before}"
    );
    host.console()
        .expect_absent(PROMPT, Duration::from_secs(5))?;
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn linux_vms_that_cannot_boot_stop_the_loader_with_file_and_line() -> TestResult {
    refused(
        "linux-config-missing",
        &config("tern/linux/no-such-kernel", "128M"),
        "tern/tern.cfg:5: [vm lx] kernel = tern/linux/no-such-kernel: cannot read it from the ESP",
    )?;
    refused(
        "linux-config-not-bzimage",
        &config("tern/guests/heartbeat.elf", "128M"),
        "tern/tern.cfg:5: [vm lx] kernel = tern/guests/heartbeat.elf: not a Linux bzImage",
    )?;
    refused(
        "linux-config-too-small",
        &config("tern/linux/vmlinuz", "48M"),
        "tern/tern.cfg:4: [vm lx] memory = 48 MiB is too small",
    )
}
