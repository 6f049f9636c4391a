//! Self-tests of the harness against the firmware alone: an ESP without a boot loader makes
//! OVMF start its built-in UEFI Shell on the serial console, which is enough to check that
//! consoles connect without losing early output, that typing works, that power-off is seen
//! as an exit, and that instances are isolated. If these fail, tern's own system tests
//! cannot be trusted on this machine. One more check boots tern's loader: a pair's extra
//! ESP files reach the host they were given to, and only that one.

use std::time::Duration;
use system_tests::{Emulator, EmulatorKind, TestResult};

/// An ESP with a file but no `EFI/BOOT/BOOTX64.EFI`.
fn empty_esp(name: &str) -> Result<std::path::PathBuf, system_tests::HarnessError> {
    let dir = system_tests::work_root().join(format!("{name}-empty-esp-{}", std::process::id()));
    system_tests::esp::write_file(&dir, "README.TXT", b"no boot loader here\n")?;
    Ok(dir)
}

fn shell_round_trip(kind: EmulatorKind, name: &str) -> TestResult {
    let esp = empty_esp(name)?;
    let mut host = Emulator::builder(kind).name(name).esp(&esp).start()?;
    let boot = kind.boot_timeout();
    // OVMF's first lines (boot option failures) prove no early output was lost.
    host.console().expect("BdsDxe:", boot)?;
    host.console().expect("Shell> ", boot)?;
    let answer =
        host.console()
            .command("echo harness-says-hi", "Shell> ", kind.command_timeout())?;
    assert!(
        answer.contains("harness-says-hi\n"),
        "echo output missing: {answer:?}"
    );
    host.console().send_line("reset -s")?;
    let exit = host.wait_exit(Duration::from_secs(60))?;
    assert!(
        exit.powered_off,
        "expected an ACPI power-off, got {:?}",
        exit.status
    );
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn bochs_firmware_shell_round_trip() -> TestResult {
    shell_round_trip(EmulatorKind::Bochs, "harness-bochs-shell")
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn qemu_firmware_shell_round_trip() -> TestResult {
    shell_round_trip(EmulatorKind::Qemu, "harness-qemu-shell")
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn missing_pattern_fails_with_transcript_tail() -> TestResult {
    let esp = empty_esp("harness-timeout")?;
    let mut host = Emulator::builder(EmulatorKind::Qemu)
        .name("harness-timeout")
        .esp(&esp)
        .start()?;
    host.console()
        .expect("Shell> ", EmulatorKind::Qemu.boot_timeout())?;
    let err = match host
        .console()
        .expect("this never appears", Duration::from_secs(2))
    {
        Ok(text) => panic!("matched a pattern that was never printed: {text:?}"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("Shell> "),
        "error lacks the transcript tail: {err}"
    );
    assert!(
        err.contains("console.txt"),
        "error lacks the transcript path: {err}"
    );
    let pid = host.pid();
    drop(host);
    // The process group is gone once the handle is dropped.
    let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
    assert!(!alive, "emulator {pid} survived its handle");
    Ok(())
}

/// Both hosts of a networked pair boot with their NICs configured (a bad NIC line makes
/// Bochs panic at start-up and QEMU refuse to start, before any firmware output).
fn networked_pair_boots(kind: EmulatorKind, name: &str) -> TestResult {
    let esp = empty_esp(name)?;
    let hub_dir = system_tests::work_root().join(format!("{name}-hub-{}", std::process::id()));
    let (hub, nics) = system_tests::pair::segment_nics(kind, &hub_dir)?;
    let mut first = Emulator::builder(kind)
        .name(&format!("{name}-0"))
        .esp(&esp)
        .nic(nics[0])
        .start()?;
    let mut second = Emulator::builder(kind)
        .name(&format!("{name}-1"))
        .esp(&esp)
        .nic(nics[1])
        .start()?;
    for host in [&mut first, &mut second] {
        let boot = host.kind().boot_timeout();
        host.console().expect("Shell> ", boot)?;
    }
    drop(hub);
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn bochs_pair_on_bxhub_boots() -> TestResult {
    networked_pair_boots(EmulatorKind::Bochs, "harness-bochs-pair")
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn qemu_pair_on_socket_netdev_boots() -> TestResult {
    networked_pair_boots(EmulatorKind::Qemu, "harness-qemu-pair")
}

/// `PairHost::file_from` puts a file into one host's ESP copy only: host 1's config names a
/// guest image that exists nowhere else, and its loader loads it (the loader stops the boot
/// on a missing image), while host 0 boots without it.
#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn pair_hosts_get_their_own_extra_esp_files() -> TestResult {
    use system_tests::pair::{Pair, PairHost, host_config};
    let image = system_tests::esp_dir()?.join("tern/guests/heartbeat.elf");
    let extra = "tern/elsewhere/not-in-tree.elf";
    let with_vm = format!(
        "{}\n[vm outsider]\nimage = {extra}\nmemory = 16M\nautostart = no\n",
        host_config(1)
    );
    let pair = Pair::boot_hosts(
        EmulatorKind::Qemu,
        "harness-pair-files",
        &system_tests::work_root(),
        [
            PairHost::new(host_config(0)),
            PairHost::new(with_vm).file_from(extra, &image)?,
        ],
    )?;
    let loaded = format!("tern loader: VM 'outsider': {extra}");
    assert!(pair.boot_logs[1].contains(&loaded), "{}", pair.boot_logs[1]);
    assert!(pair.hosts[1].dir().join("esp").join(extra).is_file());
    assert!(!pair.hosts[0].dir().join("esp").join(extra).exists());
    Ok(())
}
