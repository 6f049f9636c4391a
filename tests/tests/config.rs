//! A bad host config stops the boot with an error that names the file and line (printed by
//! the loader on UEFI ConOut, which OVMF mirrors to COM1), and nothing boots half-configured.

use std::time::Duration;
use system_tests::tern::PROMPT;
use system_tests::{Emulator, EmulatorKind, TestResult};

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn broken_config_line_is_reported_with_file_and_line() -> TestResult {
    let config = "[host]\nname = alpha\n[net]\nmode = bogus\n";
    let mut host = Emulator::builder(EmulatorKind::Qemu)
        .name("config-broken")
        .config(config)
        .start()?;
    let boot = host.kind().boot_timeout();
    let line = host.console().expect("tern.cfg:4", boot)?;
    assert!(
        !line.contains(PROMPT),
        "a prompt came before the config error:\n{line}"
    );
    // Nothing boots half-configured: no hypervisor console afterwards.
    host.console()
        .expect_absent(PROMPT, Duration::from_secs(10))?;
    Ok(())
}
