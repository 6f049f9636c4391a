//! The hypervisor boots to its console in both emulators and reports VT-x truthfully: Bochs
//! (`tigerlake`) emulates VT-x, QEMU TCG has none, and in both cases the console must come
//! up (a host without VT-x still serves its console, `info` and migration of nothing).

use std::time::Duration;
use system_tests::tern::{self, BANNER, VTX_AVAILABLE, VTX_NOT_AVAILABLE};
use system_tests::{EmulatorKind, TestResult};

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn bochs_boots_with_vtx_and_powers_off_on_shutdown() -> TestResult {
    let mut booted = tern::boot(EmulatorKind::Bochs, "bochs-boot")?;
    assert!(
        booted.boot_log.contains(BANNER),
        "no banner in:\n{}",
        booted.boot_log
    );
    assert!(
        booted.boot_log.contains(VTX_AVAILABLE),
        "Bochs tigerlake has VT-x, but the boot log does not say `{VTX_AVAILABLE}`:\n{}",
        booted.boot_log
    );
    booted.host.console().send_line("shutdown")?;
    let exit = booted.host.wait_exit(Duration::from_secs(120))?;
    assert!(
        exit.powered_off,
        "Bochs ended without an ACPI power-off: {:?}",
        exit.status
    );
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn qemu_boots_without_vtx_and_keeps_its_console() -> TestResult {
    let mut booted = tern::boot(EmulatorKind::Qemu, "qemu-boot")?;
    assert!(
        booted.boot_log.contains(VTX_NOT_AVAILABLE),
        "QEMU TCG has no VT-x, but the boot log does not say `{VTX_NOT_AVAILABLE}`:\n{}",
        booted.boot_log
    );
    // The console still answers.
    let answer = tern::command(&mut booted.host, "help")?;
    assert!(answer.contains("info"), "help without VT-x:\n{answer}");
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn fat_image_boots_to_the_console() -> TestResult {
    let image = system_tests::esp_image()?;
    // The image must also boot without an ESP directory next to it.
    let empty = system_tests::work_root().join(format!("fat-image-no-dir-{}", std::process::id()));
    std::fs::create_dir_all(&empty).map_err(|e| system_tests::HarnessError::io("create dir", e))?;
    let host = system_tests::Emulator::builder(EmulatorKind::Qemu)
        .name("fat-image")
        .esp(&empty)
        .boot_image(image)
        .start()?;
    let booted = tern::to_prompt(host)?;
    assert!(
        booted.boot_log.contains(BANNER),
        "no banner in:\n{}",
        booted.boot_log
    );
    Ok(())
}
