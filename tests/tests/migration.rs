//! Migration between two tern hosts in Bochs (issue 6), driven from the consoles like an
//! operator would: the heartbeat guest moves from `alpha` to `beta` and continues its
//! sequence with no gap and no `CORRUPT` line; a peer with the wrong key leaves the VM
//! running on the source. The scenario (boot, first beat, parameters, `migrate`, outcome
//! lines, the after-checks) is `system_tests::migration::MigrationPair`.

use system_tests::TestResult;
use system_tests::heartbeat::complete_lines;
use system_tests::migration::{HB_CMDLINE, MigrationPair, TIMEOUT};

const OTHER_KEY: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn live_migration_moves_the_heartbeat_guest_without_a_gap() -> TestResult {
    live_migration("wp", "EPT write-protection")
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn live_migration_with_pml_dirty_tracking() -> TestResult {
    live_migration("pml", "page-modification logging (PML)")
}

fn live_migration(mode: &str, tracking_line: &str) -> TestResult {
    let mut pair = MigrationPair::boot(&format!("migration-live-{mode}"))?;
    pair.set_parameters(
        0,
        &["downtime-limit 500", &format!("dirty-tracking {mode}")],
    )?;
    let answer = pair.migrate(0, "", "hb")?;
    assert!(answer.contains("live migration of 'hb'"), "{answer}");
    let completed = pair.expect_completed(0)?;
    let progress = &completed.transcript;
    assert!(progress.contains("migrate: round 1 sent"), "{progress}");
    assert!(
        progress.contains(&format!("migrate: dirty tracking by {tracking_line}")),
        "{progress}"
    );
    pair.assert_arrived(1, &completed)?;
    eprintln!("{}", completed.stats);
    let list = pair.command(0, "vm list")?;
    assert!(!list.contains("hb "), "the source released the VM: {list}");
    pair.assert_no_corruption();
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn wrong_key_leaves_the_vm_running_on_the_source() -> TestResult {
    let mut pair = MigrationPair::builder("migration-wrong-key")
        .key(1, OTHER_KEY)
        .boot()?;
    pair.migrate(0, "", "hb")?;
    pair.expect_rolled_back()?;
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn cold_migration_pauses_and_resumes_on_the_destination() -> TestResult {
    let mut pair = MigrationPair::boot("migration-cold")?;
    let answer = pair.migrate(0, "-c", "")?;
    assert!(answer.contains("cold migration of 'hb'"), "{answer}");
    let completed = pair.expect_completed(0)?;
    assert!(completed.stats.contains("rounds 1"), "{}", completed.stats);
    pair.assert_arrived(1, &completed)?;
    pair.assert_no_corruption();
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn cancel_leaves_the_vm_running_on_the_source() -> TestResult {
    let mut pair = MigrationPair::boot("migration-cancel")?;
    pair.start_slow_migration()?;
    let answer = pair.command(0, "migrate_cancel")?;
    assert!(answer.contains("cancelling"), "{answer}");
    pair.expect_nothing_kept()?;
    let failure = pair.expect_rolled_back()?;
    assert!(failure.contains("cancel"), "{failure}");
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn destination_killed_mid_transfer_leaves_the_vm_running_on_the_source() -> TestResult {
    let mut pair = MigrationPair::boot("migration-kill")?;
    pair.start_slow_migration()?;
    pair.hosts[1].kill();
    // The source notices (idle timeout or retransmissions giving up) and resumes the VM.
    pair.expect_failure_on_source()?;
    pair.assert_source_kept_running()
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn back_and_forth_alpha_beta_alpha() -> TestResult {
    let mut pair = MigrationPair::boot("migration-back-forth")?;
    pair.migrate(0, "", "hb")?;
    let there = pair.expect_completed(0)?;
    pair.assert_arrived(1, &there)?;
    // And back, from beta's console.
    pair.migrate(1, "", "hb")?;
    let back = pair.expect_completed(1)?;
    assert!(
        back.transcript.contains("released on this host"),
        "no way back"
    );
    pair.assert_arrived(0, &back)?;
    pair.assert_no_corruption();
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn one_of_two_vms_migrates_the_other_keeps_beating() -> TestResult {
    let hb2 = format!(
        "\n[vm hb2]\nimage = tern/guests/heartbeat.elf\nmemory = 16M\ncmdline = \"{HB_CMDLINE}\"\nautostart = yes\n"
    );
    let mut pair = MigrationPair::builder("migration-two-vms")
        .extra_config(0, &hb2)
        .boot()?;
    let refused = pair.migrate(0, "", "")?;
    assert!(refused.contains("several VMs"), "{refused}");
    pair.migrate(0, "", "hb")?;
    let completed = pair.expect_completed(0)?;
    pair.assert_arrived(1, &completed)?;
    // hb2 stayed and never skipped a number.
    pair.expect(0, "[hb2] HB seq=", TIMEOUT)?;
    let transcript = pair.hosts[0].console().transcript();
    let hb2: Vec<u64> = complete_lines(&transcript)
        .split("[hb2] HB seq=")
        .skip(1)
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        hb2.len() >= 2 && hb2.windows(2).all(|w| w[1] == w[0] + 1),
        "{hb2:?}"
    );
    let list = pair.command(0, "vm list")?;
    assert!(list.contains("hb2"), "{list}");
    pair.assert_no_corruption();
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn network_cut_leaves_the_vm_on_the_source_and_nothing_on_the_destination() -> TestResult {
    let mut pair = MigrationPair::boot("migration-cut")?;
    // The destination can also listen on another port on request.
    pair.listen_on(1, 5555)?;
    pair.start_slow_migration()?;
    assert!(pair.cut_network(), "Bochs pairs have a hub");
    pair.expect_nothing_kept()?;
    pair.expect_rolled_back()?;
    Ok(())
}
