//! Migration between two tern hosts in Bochs (issue 6), driven from the consoles like an
//! operator would: the heartbeat guest moves from `alpha` to `beta` and continues its
//! sequence with no gap and no `CORRUPT` line; a peer with the wrong key leaves the VM
//! running on the source.

use std::time::Duration;
use system_tests::pair::{Pair, host_config, host_ip};
use system_tests::{EmulatorKind, HarnessError, TestResult};

/// Guest lines, migrations and boots in Bochs on a shared two-core machine are slow.
const TIMEOUT: Duration = Duration::from_secs(600);
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const OTHER_KEY: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const HB_CMDLINE: &str = "hb.interval_ms=250 hb.wss_mib=1 hb.dirty_pages_per_sec=200";

fn config(index: usize, key: &str, with_vm: bool) -> String {
    let mut text = host_config(index);
    text.push_str(&format!("\n[migration]\nport = 4444\nkey = {key}\n"));
    if with_vm {
        text.push_str(&format!(
            "\n[vm hb]\nimage = tern/guests/heartbeat.elf\nmemory = 16M\ncmdline = \"{HB_CMDLINE}\"\nautostart = yes\n"
        ));
    }
    text
}

/// The sequence number of the next `[hb] HB seq=N` line on host `index`.
fn next_beat(pair: &mut Pair, index: usize) -> Result<u64, HarnessError> {
    pair.expect(index, "[hb] HB seq=", TIMEOUT)?;
    let rest = pair.expect(index, " ", TIMEOUT)?;
    Ok(rest
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("`[hb] HB seq=` followed by `{rest}`")))
}

fn assert_no_corruption(pair: &mut Pair) {
    for index in 0..2 {
        let transcript = pair.hosts[index].console().transcript();
        assert!(
            !transcript.contains("CORRUPT"),
            "host {index} reported corruption:\n{transcript}"
        );
    }
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn live_migration_moves_the_heartbeat_guest_without_a_gap() -> TestResult {
    let configs = [config(0, KEY, true), config(1, KEY, false)];
    let mut pair = Pair::boot_with_configs(
        EmulatorKind::Bochs,
        "migration-live",
        &system_tests::work_root(),
        configs,
    )?;
    next_beat(&mut pair, 0)?;
    pair.command(0, "migrate_set_parameter downtime-limit 500")?;
    let answer = pair.command(0, &format!("migrate {}:4444 hb", host_ip(1)))?;
    assert!(answer.contains("live migration of 'hb'"), "{answer}");
    let progress = pair.expect(0, "migrate: completed in", TIMEOUT)?;
    assert!(progress.contains("migrate: round 0 sent"), "{progress}");
    let stats = pair.expect(0, "\n", TIMEOUT)?;
    let source = pair.hosts[0].console().transcript();
    let last_on_source = source
        .rsplit("[hb] HB seq=")
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("beats on the source");
    pair.expect(1, "migrate: VM 'hb' is running on this host", TIMEOUT)?;
    let first_on_destination = next_beat(&mut pair, 1)?;
    assert_eq!(
        first_on_destination,
        last_on_source + 1,
        "the heartbeat continues with no gap; stats: {stats}"
    );
    let next = next_beat(&mut pair, 1)?;
    assert_eq!(next, first_on_destination + 1);
    let info = pair.command(0, "info migrate")?;
    assert!(info.contains("completed"), "{info}");
    let list = pair.command(0, "vm list")?;
    assert!(!list.contains("hb "), "the source released the VM: {list}");
    assert_no_corruption(&mut pair);
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn wrong_key_leaves_the_vm_running_on_the_source() -> TestResult {
    let configs = [config(0, KEY, true), config(1, OTHER_KEY, false)];
    let mut pair = Pair::boot_with_configs(
        EmulatorKind::Bochs,
        "migration-wrong-key",
        &system_tests::work_root(),
        configs,
    )?;
    next_beat(&mut pair, 0)?;
    pair.command(0, &format!("migrate {}:4444 hb", host_ip(1)))?;
    let failure = pair.expect(0, "the VM keeps running on this host", TIMEOUT)?;
    assert!(failure.contains("migrate: failed"), "{failure}");
    let before = next_beat(&mut pair, 0)?;
    let after = next_beat(&mut pair, 0)?;
    assert_eq!(after, before + 1, "heartbeat goes on on the source");
    let list = pair.command(1, "vm list")?;
    assert!(!list.contains("hb"), "the destination kept nothing: {list}");
    assert_no_corruption(&mut pair);
    Ok(())
}
