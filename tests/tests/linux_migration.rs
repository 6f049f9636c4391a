//! Live migration of the Linux guest with its workload (`tern.workload=1`) between two
//! Bochs hosts (issue 9 item 7): on the destination the `LHB seq=N` heartbeat goes on
//! without a gap or a `CORRUPT`, the shell answers through `vm console linux`, and the
//! guest's `dmesg` has no clocksource, "time went backwards", soft-lockup or stall line
//! beyond the boot's registration of its clocksources.

use std::time::Duration;
use system_tests::heartbeat::migration_config;
use system_tests::linux::{self, KERNEL_RELEASE};
use system_tests::migration::{KEY, PORT, RUNNING_HERE, TIMEOUT};
use system_tests::pair::{Pair, PairHost, host_ip};
use system_tests::{EmulatorKind, TestResult};

const LINUX_VM: &str = "\n[vm linux]\nkernel = tern/linux/vmlinuz\ninitrd = tern/linux/initrd.cpio\n\
memory = 128M\ncmdline = \"console=ttyS0 tern.workload=1\"\nautostart = yes\n";

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn linux_with_its_workload_migrates_live_and_its_shell_answers() -> TestResult {
    let source = migration_config(0, KEY, None, "") + LINUX_VM;
    let destination = migration_config(1, KEY, None, "");
    let mut pair = Pair::boot_hosts(
        EmulatorKind::Bochs,
        "linux-migration",
        &system_tests::work_root(),
        [PairHost::new(source), PairHost::new(destination)],
    )?;
    pair.expect(0, linux::WORKLOAD_STARTED, TIMEOUT)?;
    pair.expect(0, "LHB seq=3 ", TIMEOUT)?;
    let answer = pair.command(0, &format!("migrate {}:{PORT} linux", host_ip(1)))?;
    assert!(answer.contains("live migration of 'linux'"), "{answer}");
    pair.expect(0, "migrate: completed in", TIMEOUT)?;
    let on_source = linux::heartbeats(&pair.hosts[0].console().transcript());
    let last = *on_source.last().expect("beats on the source");

    pair.expect(1, RUNNING_HERE, TIMEOUT)?;
    // The next beats come from the destination, continuing the sequence.
    pair.expect(1, &format!("LHB seq={} ", last + 3), TIMEOUT)?;
    let transcript = pair.hosts[1].console().transcript();
    let tail = transcript.rsplit_once(RUNNING_HERE).map_or("", |(_, t)| t);
    let arrived = linux::heartbeats(tail);
    assert_eq!(
        arrived.first().copied(),
        Some(last + 1),
        "gap or repeat at the switch: source ended at {last}, destination {arrived:?}"
    );
    assert!(arrived.windows(2).all(|w| w[1] == w[0] + 1), "{arrived:?}");

    let console = pair.hosts[1].console();
    console.send_line("vm console linux")?;
    console.expect("attached to VM 'linux'", TIMEOUT)?;
    console.send_line("uname -r")?;
    console.expect(KERNEL_RELEASE, COMMAND_TIMEOUT)?;
    // The guest's own log after the move: its clock and its CPUs were not disturbed.
    // The end marker is computed by the shell, so the echo of the typed line cannot match.
    console.send_line(
        "dmesg | grep -i -E 'clocksource|unstable|backwards|lockup|stall'; echo END-$((6*7))",
    )?;
    let complaints = console.expect("END-42", COMMAND_TIMEOUT)?;
    let complaints: Vec<&str> = complaints
        .lines()
        .filter(|l| l.trim_start().starts_with('[') && !is_boot_registration(l))
        .collect();
    assert!(
        complaints.is_empty(),
        "dmesg on the destination: {complaints:?}"
    );
    for index in 0..2 {
        let transcript = pair.hosts[index].console().transcript();
        for bad in [
            linux::CORRUPT,
            "Kernel panic",
            "soft lockup",
            "rcu_sched self-detected",
            "rcu: INFO",
            "time went backwards",
            "as unstable",
            "Marking TSC unstable",
        ] {
            assert!(!transcript.contains(bad), "`{bad}` on host {index}");
        }
    }
    Ok(())
}

/// The clocksource lines every boot prints (registration, the switch to the TSC and the
/// command line's `clocksource=` if any), which are not complaints.
fn is_boot_registration(line: &str) -> bool {
    line.trim_end()
        .ends_with("Switched to clocksource tsc-early")
        || line.trim_end().ends_with("Switched to clocksource tsc")
        || line.contains("max_idle_ns")
        || line.contains("clocksource=")
}
