//! The Linux test guest (Debian's cloud kernel + tern's initramfs) as a tern VM in Bochs:
//! how far an unmodified Linux gets on tern (issue 9). Interrupt and timer delivery are
//! not wired to VM exits yet, so no timer interrupt ever arrives: the command line presets
//! the delay loop (`lpj=`) and the TSC rate (`tsc_early_khz=`, Bochs' 50 MHz) so that Linux
//! does not wait for a jiffy during early boot. With that, it gets through the kernel's
//! whole initialisation to starting /init from the initramfs tern loaded, all of it printed
//! through the VM's emulated 16550 with the `[linux]` prefix (see docs/ARCHITECTURE.md,
//! "Linux guests", for what stops it there).

use std::time::Duration;
use system_tests::linux::KERNEL_BANNER;
use system_tests::tern;
use system_tests::{Emulator, EmulatorKind, TestResult};

/// A Linux VM: the ESP's kernel and initrd (`cargo xtask build` puts them there), 128 MiB.
const CONFIG: &str = "[host]\nname = alpha\n\n[net]\nmode = none\n\n\
[vm linux]\nkernel = tern/linux/vmlinuz\ninitrd = tern/linux/initrd.cpio\nmemory = 128M\n\
cmdline = \"earlyprintk=serial,ttyS0,115200 console=ttyS0 lpj=250000 tsc_early_khz=50000 tern.workload=1\"\n\
autostart = yes\n";

/// Loading 16 MiB from the ESP, decompressing and initialising the kernel take Bochs a
/// while: about 100 s to /init on an idle core.
const LINUX_TIMEOUT: Duration = Duration::from_secs(240);

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn linux_boots_on_tern_to_its_init() -> TestResult {
    let host = Emulator::builder(EmulatorKind::Bochs)
        .name("linux-on-tern")
        .config(CONFIG)
        .start()?;
    let mut booted = tern::to_prompt(host)?;
    assert!(
        booted.boot_log.contains("vm linux: 128 MiB, running"),
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
    // What tern told Linux: the e820 map and the ACPI tables.
    let e820 = console.expect("BIOS-e820: [mem 0x00000000fee00000", LINUX_TIMEOUT)?;
    assert!(
        e820.contains("BIOS-e820: [mem 0x0000000000100000-0x0000000007ffffff] usable"),
        "{e820}"
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
    // The host stays responsive while the guest runs (or is stuck).
    let answer = tern::command(&mut booted.host, "vm info linux")?;
    assert!(answer.contains("linux"), "{answer}");
    Ok(())
}
