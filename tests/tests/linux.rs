//! The Linux test guest (Debian's cloud kernel + tern's initramfs) booted by QEMU TCG's own
//! Linux loader, without firmware or tern: the reference for what Linux on tern must print
//! (issue 9, item 7, last sentence). No VT-x needed.
//!
//! One boot covers it: the kernel banner, the initramfs banner, the shell, `uname -r`,
//! `cat /proc/interrupts` twice a second apart (the local timer count rises),
//! `echo ok > /tmp/x; cat /tmp/x`, the virtio modules loaded, and the `LHB` workload
//! counting without a gap and without `CORRUPT`. The cleaned transcript is kept in the
//! instance directory; with `TERN_WRITE_REFERENCE=1` it also becomes
//! `docs/linux-reference-transcript.txt`, headed by the boot time measured here.

use std::time::{Duration, Instant};
use system_tests::linux::{
    self, BANNER, CORRUPT, KERNEL_BANNER, KERNEL_RELEASE, PROMPT, WORKLOAD_STARTED,
};
use system_tests::{Emulator, EmulatorKind, TestResult};

/// The kernel command line of the reference run: the serial console, the workload, no
/// reboot loop on panic.
const CMDLINE: &str = "console=ttyS0 tern.workload=1 panic=-1";
/// Guest RAM.
const MEMORY_MIB: u32 = 256;
/// Linux reaches its shell in ~2 s of TCG on an idle core; leave room for a busy machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn linux_reaches_its_shell_under_qemu_tcg() -> TestResult {
    let image = linux::image()?;
    let started = Instant::now();
    let mut guest = Emulator::builder(EmulatorKind::Qemu)
        .name("linux-qemu-reference")
        .memory_mib(MEMORY_MIB)
        .direct_linux(&image.kernel, &image.initrd, CMDLINE)
        .start()?;
    let console = guest.console();
    let boot_log = console.expect(KERNEL_BANNER, BOOT_TIMEOUT)?;
    assert!(
        !boot_log.contains(BANNER),
        "initramfs before the kernel banner?\n{boot_log}"
    );
    let boot_log = console.expect(BANNER, BOOT_TIMEOUT)?;
    assert!(boot_log.contains("Run /init as init process"), "{boot_log}");
    assert!(
        !boot_log.contains("insmod") && !boot_log.contains("tern-linux: module"),
        "a module is missing or failed to load:\n{boot_log}"
    );
    console.expect(WORKLOAD_STARTED, BOOT_TIMEOUT)?;
    console.expect(PROMPT, BOOT_TIMEOUT)?;
    let to_prompt = started.elapsed();

    let uname = linux::command(console, "uname -r", COMMAND_TIMEOUT)?;
    assert!(
        uname.lines().any(|l| l.trim() == KERNEL_RELEASE),
        "uname -r:\n{uname}"
    );

    let first = linux::command(console, "cat /proc/interrupts", COMMAND_TIMEOUT)?;
    linux::command(console, "sleep 1", COMMAND_TIMEOUT)?;
    let second = linux::command(console, "cat /proc/interrupts", COMMAND_TIMEOUT)?;
    let before =
        linux::interrupt_count(&first, "LOC").unwrap_or_else(|| panic!("no LOC row:\n{first}"));
    let after =
        linux::interrupt_count(&second, "LOC").unwrap_or_else(|| panic!("no LOC row:\n{second}"));
    assert!(
        after > before,
        "local timer count did not rise: {before} then {after}"
    );
    assert!(
        first.contains("IO-APIC"),
        "Linux does not use the I/O APIC:\n{first}"
    );

    let echo = linux::command(console, "echo ok > /tmp/x; cat /tmp/x", COMMAND_TIMEOUT)?;
    assert!(echo.lines().any(|l| l.trim() == "ok"), "{echo}");

    let modules = linux::command(console, "cat /proc/modules", COMMAND_TIMEOUT)?;
    for module in ["virtio_blk", "virtio_mmio", "virtio_ring", "virtio "] {
        assert!(modules.contains(module), "{module} not loaded:\n{modules}");
    }

    // Let the workload run a few more rounds, then read the whole transcript.
    let seen = linux::heartbeats(&console.transcript())
        .last()
        .copied()
        .unwrap_or(0);
    console.expect(&format!("LHB seq={} ", seen + 3), COMMAND_TIMEOUT)?;
    let transcript = console.transcript();
    let beats = linux::heartbeats(&transcript);
    assert!(beats.len() >= 3, "too few LHB lines: {beats:?}");
    let expected: Vec<u64> = (1..=beats.len() as u64).collect();
    assert_eq!(beats, expected, "LHB sequence has a gap or repeats");
    assert!(
        !transcript.contains(CORRUPT),
        "the workload found corruption"
    );

    if std::env::var_os("TERN_WRITE_REFERENCE").is_some() {
        write_reference(&transcript, to_prompt, &uname)?;
    }
    Ok(())
}

/// `docs/linux-reference-transcript.txt`: how it was made, the boot time, the transcript.
fn write_reference(transcript: &str, to_prompt: Duration, uname: &str) -> TestResult {
    let init_at = transcript
        .lines()
        .find(|l| l.contains("Run /init as init process"))
        .and_then(|l| l.split(']').next())
        .map(|stamp| stamp.trim_start_matches('[').trim().to_string())
        .unwrap_or_else(|| "?".into());
    let header = format!(
        "# Linux reference transcript (QEMU TCG, no tern)\n\
         #\n\
         # Written by tests/tests/linux.rs with TERN_WRITE_REFERENCE=1.\n\
         # qemu-system-x86_64 -machine q35 -cpu max -m {MEMORY_MIB} -kernel build/linux/vmlinuz\n\
         #   -initrd build/linux/initrd.cpio -append \"{CMDLINE}\"\n\
         # kernel: {}\n\
         # boot time: kernel timestamp at `Run /init` {init_at} s; QEMU start to the shell prompt\n\
         #   {:.1} s of wall-clock on the build machine (TCG, 2 shared cores)\n\
         # line endings normalised, terminal escape sequences removed\n\n",
        uname
            .lines()
            .map(str::trim)
            .find(|l| *l == KERNEL_RELEASE)
            .unwrap_or("?"),
        to_prompt.as_secs_f64(),
    );
    let body = transcript.replace("\r\n", "\n").replace('\r', "");
    let path = system_tests::workspace_root().join("docs/linux-reference-transcript.txt");
    std::fs::write(&path, header + &body)
        .map_err(|e| system_tests::HarnessError::io(format!("write {}", path.display()), e))
}
