//! The Linux test guest (Debian's cloud kernel + tern's initramfs) as a tern VM in Bochs,
//! booted once with no timing presets on its command line (issue 9): the e820 map and ACPI
//! tables tern built, the initramfs it loaded, and then, through `vm console linux`, the
//! guest's busybox shell on its interrupt-driven 8250 (IRQ 4 through the I/O APIC): typed
//! `uname -r` answers, the local-timer count in /proc/interrupts rises, and a tmpfs file
//! round trip works. Its disk (`tern/disks/linux.img`, ext4 made by xtask) is found through
//! the DSDT as `/dev/vda`, runs on its interrupt (IRQ 5), is mounted, written, read back and
//! checked clean by `e2fsck -n`. Finally `poweroff -f` in the guest's shell stops the VM (ACPI
//! S5 through the FADT's PM1a control block) and the operator sees it stopped. Linux reads its
//! TSC and APIC-timer rates from CPUID leaf 0x15, so it
//! calibrates nothing (see docs/ARCHITECTURE.md, "Linux guests").

use std::time::{Duration, Instant};
use system_tests::linux::{self, KERNEL_BANNER};
use system_tests::tern;
use system_tests::{Emulator, EmulatorKind, TestResult};

/// A Linux VM: the ESP's kernel, initrd and ext4 disk (`cargo xtask build` puts them
/// there), 128 MiB.
const CONFIG: &str = "[host]\nname = alpha\n\n[net]\nmode = none\n\n\
[vm linux]\nkernel = tern/linux/vmlinuz\ninitrd = tern/linux/initrd.cpio\nmemory = 128M\n\
cmdline = \"earlyprintk=serial,ttyS0,115200 console=ttyS0\"\n\
autostart = yes\ndisk = tern/disks/linux.img\n";

/// Loading 16 MiB from the ESP, decompressing and initialising the kernel take Bochs a
/// while: about 30 s from the VM's start to the shell prompt on an idle core.
const LINUX_TIMEOUT: Duration = Duration::from_secs(240);

/// One shell command in Bochs (echo, fork, exec of busybox).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn linux_boots_on_tern_to_its_shell() -> TestResult {
    let host = Emulator::builder(EmulatorKind::Bochs)
        .name("linux-on-tern")
        .config(CONFIG)
        .start()?;
    let mut booted = tern::to_prompt(host)?;
    let vm_started = Instant::now();
    assert!(
        booted
            .boot_log
            .contains("vm linux: 128 MiB, cpu host, disk vda 4096 KiB"),
        "{}",
        booted.boot_log
    );
    let console = booted.host.console();
    let before = console.expect(KERNEL_BANNER, LINUX_TIMEOUT)?;
    let banner_line = before.rsplit('\n').next().unwrap_or("");
    assert!(
        banner_line.starts_with("[linux] "),
        "not the VM's output: {banner_line}"
    );
    // The disk is announced in the DSDT only, not on the command line.
    assert!(!before.contains("virtio_mmio.device="), "{before}");
    // What tern told Linux: the e820 map and the ACPI tables.
    let e820 = console.expect("BIOS-e820: [mem 0x00000000fee00000", LINUX_TIMEOUT)?;
    assert!(
        e820.contains("BIOS-e820: [mem 0x0000000000100000-0x0000000007ffffff] usable"),
        "{e820}"
    );
    assert!(
        e820.contains("BIOS-e820: [mem 0x00000000feb00000-0x00000000feb00fff] reserved"),
        "the disk's window is not reserved: {e820}"
    );
    let acpi = console.expect("ACPI: APIC 0x00000000000E", LINUX_TIMEOUT)?;
    for table in [
        "ACPI: RSDP 0x00000000000E0000",
        "ACPI: XSDT",
        "ACPI: FACP",
        "ACPI: DSDT",
    ] {
        assert!(acpi.contains(table), "{table} missing:\n{acpi}");
    }
    // The initramfs tern placed is found and unpacked, and the kernel starts its /init.
    let init = console
        .expect("[linux] [", LINUX_TIMEOUT)
        .and_then(|_| console.expect("Run /init as init process", LINUX_TIMEOUT))?;
    assert!(
        init.contains("Trying to unpack rootfs image as initramfs"),
        "{init}"
    );
    assert!(!init.contains("Initramfs unpacking failed"), "{init}");
    assert!(!init.contains("Kernel panic"), "{init}");
    // The host stays responsive while the guest runs.
    let answer = tern::command(&mut booted.host, "vm info linux")?;
    assert!(answer.contains("linux"), "{answer}");
    shell_answers(booted.host.console(), vm_started)?;
    powers_off(&mut booted.host)
}

/// `poweroff -f` in the guest (busybox: reboot(RB_POWER_OFF), so ACPI S5 with the DSDT's
/// `\_S5_` type) stops the VM; Ctrl-] returns to `tern> `, where `vm list` says stopped.
fn powers_off(host: &mut Emulator) -> TestResult {
    let console = host.console();
    console.send_line("poweroff -f")?;
    console.expect("powered off by the guest (ACPI S5)", COMMAND_TIMEOUT)?;
    console.send_raw(&[0x1d])?;
    console.expect(tern::PROMPT, COMMAND_TIMEOUT)?;
    let list = tern::command(host, "vm list")?;
    let row = list
        .lines()
        .find(|l| l.contains("linux"))
        .unwrap_or_else(|| panic!("no linux row:\n{list}"));
    assert!(row.contains("stopped"), "{list}");
    Ok(())
}

/// The disk: virtio-mmio found through the DSDT, `/dev/vda` mounted (ext4), the file
/// xtask put there read, a new file written and read back after a remount with the page
/// cache dropped (so from the device, as is `e2fsck`'s view), completions on
/// the disk's interrupt (IRQ 5), and `e2fsck -n` clean after the unmount.
fn disk_works(console: &mut system_tests::Console) -> TestResult {
    let mount = linux::command(
        console,
        "mount -t ext4 /dev/vda /mnt && cat /mnt/hello.txt",
        COMMAND_TIMEOUT,
    )?;
    assert!(mount.contains("tern ext4 disk"), "{mount}");
    let written = linux::command(
        console,
        "echo written-by-linux > /mnt/new.txt && umount /mnt && echo 3 > /proc/sys/vm/drop_caches \
         && mount -t ext4 /dev/vda /mnt && cat /mnt/new.txt && umount /mnt \
         && echo 3 > /proc/sys/vm/drop_caches",
        COMMAND_TIMEOUT,
    )?;
    assert!(
        written.lines().any(|l| l.trim() == "written-by-linux"),
        "{written}"
    );
    let interrupts = linux::command(console, "cat /proc/interrupts", COMMAND_TIMEOUT)?;
    let row = interrupts
        .lines()
        .find(|l| l.trim_start().starts_with("5:"))
        .unwrap_or_else(|| panic!("no IRQ 5 row:\n{interrupts}"));
    assert!(row.contains("virtio"), "IRQ 5 is not the disk's: {row}");
    assert!(
        linux::interrupt_count(&interrupts, "5").unwrap_or(0) > 0,
        "no disk interrupts: {row}"
    );
    let fsck = linux::command(console, "e2fsck -n /dev/vda; echo fsck=$?", COMMAND_TIMEOUT)?;
    assert!(fsck.contains("fsck=0"), "e2fsck -n not clean:\n{fsck}");
    Ok(())
}

/// Through `vm console linux`, the guest's shell answers typed commands: its release, a
/// timer count that rises between two reads of /proc/interrupts, and a tmpfs round trip.
fn shell_answers(console: &mut system_tests::Console, vm_started: Instant) -> TestResult {
    console.send_line("vm console linux")?;
    console.expect("attached to VM 'linux'", LINUX_TIMEOUT)?;
    console.expect(linux::BANNER, LINUX_TIMEOUT)?;
    console.expect(linux::PROMPT, LINUX_TIMEOUT)?;
    // For the boot-time figure in docs/ARCHITECTURE.md (wall clock of this Bochs run).
    eprintln!(
        "linux: VM start to shell prompt in {:.1} s wall clock",
        vm_started.elapsed().as_secs_f64()
    );
    let uname = linux::command(console, "uname -r", COMMAND_TIMEOUT)?;
    assert!(uname.contains(linux::KERNEL_RELEASE), "{uname}");
    let first = linux::command(console, "cat /proc/interrupts", COMMAND_TIMEOUT)?;
    linux::command(console, "sleep 1", COMMAND_TIMEOUT)?;
    let second = linux::command(console, "cat /proc/interrupts", COMMAND_TIMEOUT)?;
    let timer = |table: &str| {
        linux::interrupt_count(table, "LOC")
            .or_else(|| linux::interrupt_count(table, "0"))
            .unwrap_or_else(|| panic!("no timer row (LOC or 0):\n{table}"))
    };
    assert!(
        timer(&second) > timer(&first),
        "timer count did not rise:\n{first}\n{second}"
    );
    // The 8250 driver runs on its interrupt (IRQ 4, I/O APIC pin 4).
    let uart_irqs = linux::interrupt_count(&second, "4").unwrap_or(0);
    assert!(uart_irqs > 0, "no UART interrupts:\n{second}");
    let echo = linux::command(console, "echo ok > /tmp/x; cat /tmp/x", COMMAND_TIMEOUT)?;
    assert!(echo.lines().any(|l| l.trim() == "ok"), "{echo}");
    // The TSC is one Linux trusts (constant, non-stop, with TSC_ADJUST: no clocksource
    // watchdog against the jiffies), so it stays the clocksource.
    let flags = linux::command(console, "grep -m1 ^flags /proc/cpuinfo", COMMAND_TIMEOUT)?;
    let flag_line = flags
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_else(|| panic!("no flags line:\n{flags}"));
    for flag in ["constant_tsc", "nonstop_tsc", "tsc_adjust"] {
        assert!(
            flag_line.split_whitespace().any(|f| f == flag),
            "{flag} missing:\n{flag_line}"
        );
    }
    let clocksource = linux::command(
        console,
        "cat /sys/devices/system/clocksource/clocksource0/current_clocksource",
        COMMAND_TIMEOUT,
    )?;
    assert!(
        clocksource.lines().any(|l| l.trim() == "tsc"),
        "clocksource is not the TSC:\n{clocksource}"
    );
    disk_works(console)?;
    let transcript = console.transcript();
    for bad in [
        "Kernel panic",
        "No local APIC present",
        "Unable to read current time from RTC",
        "Failed to register legacy timer interrupt",
        "SCI (IRQ9) allocation failed",
        "Could not disable RealTimeClock events",
        "unchecked MSR access error",
        "as unstable",
        "Marking TSC unstable",
    ] {
        assert!(!transcript.contains(bad), "{bad}");
    }
    Ok(())
}
