//! A lost `Release` (issue 13, item 0): the source got the destination's `CommitAck` and
//! released the VM, but the connection is reset before its `Release` frame leaves (the
//! `fault-inject drop-release` testing switch places the cut exactly there). The VM must
//! survive on exactly one host: the destination keeps it paused and lists it `in-doubt`,
//! the source's last line says it committed, nothing runs the VM until the operator types
//! `migrate_resolve hb run` at the destination, and then the heartbeat continues there with
//! the next sequence number.

use std::time::Duration;
use system_tests::TestResult;
use system_tests::migration::{MigrationPair, TIMEOUT};

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn lost_release_leaves_the_vm_in_doubt_on_the_destination_until_resolved() -> TestResult {
    let mut pair = MigrationPair::builder("migration-in-doubt")
        .cmdline("hb.interval_ms=250 hb.wss_mib=1 hb.dirty_pages_per_sec=200")
        .boot()?;
    pair.set_parameters(0, &["fault-inject drop-release"])?;
    pair.migrate(0, "", "hb")?;
    let source = pair.expect(0, "migrate_resolve hb run' there", TIMEOUT)?;
    assert!(
        source.contains("connection reset before Release"),
        "{source}"
    );
    assert!(
        source.contains("committed (CommitAck received)")
            && source.contains("migrate_resolve hb run"),
        "the source's last line says who owns the VM:\n{source}"
    );
    let kept = pair.expect(1, "migrate_resolve hb discard'", TIMEOUT)?;
    assert!(kept.contains("IN DOUBT"), "{kept}");
    assert!(!kept.contains("is running on this host"), "{kept}");
    let last_on_source = *pair.beats(0).last().expect("beats on the source");

    // Visible, paused, untouchable by `vm` commands.
    let list = pair.command(1, "vm list")?;
    assert!(list.contains("hb") && list.contains("in-doubt"), "{list}");
    let info = pair.command(1, "info migrate")?;
    assert!(info.contains("in-doubt: VM 'hb'"), "{info}");
    let resume = pair.command(1, "vm resume hb")?;
    assert!(resume.contains("migrate_resolve"), "{resume}");
    let list = pair.command(0, "vm list")?;
    assert!(!list.contains("hb "), "the source released it: {list}");
    // Nothing runs it in the meantime.
    pair.hosts[1]
        .console()
        .expect_absent("[hb] HB seq=", Duration::from_secs(20))?;

    let resolved = pair.command(1, "migrate_resolve hb run")?;
    assert!(resolved.contains("running on this host"), "{resolved}");
    let next = pair.next_beat(1)?;
    assert_eq!(
        next,
        last_on_source + 1,
        "the heartbeat continues on the destination without a gap"
    );
    let list = pair.command(1, "vm list")?;
    assert!(
        list.contains("running") && !list.contains("in-doubt"),
        "{list}"
    );
    Ok(())
}
