//! Failures before commit that need more than a killed process or a cut cable (issue 6): the
//! destination rebooted mid-transfer, a destination too small to back the VM, a page
//! corrupted in flight (the source's `fault-inject corrupt-page` testing knob) that the page
//! digest at commit catches, and a dirty bit lost at switch-over (`fault-inject
//! drop-dirty-bit`) that `verify full` catches. In each
//! the VM keeps running on the source with its own verification quiet (no `CORRUPT` line)
//! and its heartbeat sequence unbroken, and the destination keeps nothing.

use system_tests::TestResult;
use system_tests::migration::{MigrationPair, TIMEOUT};
use system_tests::tern::{BANNER, PROMPT};

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn destination_rebooted_mid_transfer_leaves_the_vm_running_on_the_source() -> TestResult {
    let mut pair = MigrationPair::boot("migration-reboot")?;
    pair.start_slow_migration()?;
    pair.expect(1, "migrate: incoming VM 'hb' (16 MiB), receiving", TIMEOUT)?;
    pair.hosts[1].console().send_line("reboot")?;
    // Beta comes back through firmware and boot to an empty prompt.
    let boot_timeout = pair.kind().boot_timeout();
    pair.expect(1, BANNER, boot_timeout)?;
    pair.expect(1, PROMPT, boot_timeout)?;
    pair.expect_rolled_back()?;
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn destination_out_of_memory_refuses_before_memory_moves() -> TestResult {
    // Beta's whole machine is smaller than the VM: it cannot build it and says so.
    let mut pair = MigrationPair::builder("migration-oom")
        .vm_memory("256M")
        .host_memory_mib([768, 128])
        .boot()?;
    pair.migrate(0, "", "")?;
    let refused = pair.expect_nothing_kept()?;
    assert!(refused.contains("cannot build VM 'hb'"), "{refused}");
    assert!(
        !refused.contains("receiving"),
        "refused before any page: {refused}"
    );
    let failure = pair.expect_rolled_back()?;
    assert!(failure.contains("cannot build VM 'hb'"), "{failure}");
    assert!(
        !failure.contains("round 1 sent"),
        "no memory moved: {failure}"
    );
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn digest_mismatch_discards_on_the_destination_and_resumes_on_the_source() -> TestResult {
    let mut pair = MigrationPair::boot("migration-digest")?;
    pair.set_parameters(0, &["fault-inject corrupt-page"])?;
    pair.migrate(0, "", "hb")?;
    let refused = pair.expect_nothing_kept()?;
    assert!(refused.contains("receiving"), "pages did move: {refused}");
    // Protocol v3: the page digest (hashed as pages were sent and where they landed)
    // catches the page that went on the wire wrong, without a whole-memory pass.
    assert!(
        refused
            .contains("page digest mismatch: destination memory differs from what the source sent"),
        "{refused}"
    );
    assert!(!refused.contains("is running on this host"), "{refused}");
    let failure = pair.expect_rolled_back()?;
    assert!(failure.contains("digest"), "{failure}");
    assert!(!failure.contains("migrate: completed"), "{failure}");

    // Same pair: dirty tracking that loses a write at switch-over. The page digest cannot
    // see it (both sides hash the stale copy); `verify full` hashes all memory and must.
    pair.set_parameters(0, &["fault-inject drop-dirty-bit", "verify full"])?;
    pair.migrate(0, "", "hb")?;
    let refused = pair.expect_nothing_kept()?;
    assert!(
        refused.contains("memory digest mismatch: destination memory differs from the source"),
        "{refused}"
    );
    pair.expect_rolled_back()?;
    Ok(())
}
