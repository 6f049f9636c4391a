//! Snapshots in simulation: a migration whose source keeps its VM after the commit.
//!
//! What must hold: the destination (a tern host or `tern-snapshot receive`) sees exactly
//! the stream and outcome of an ordinary migration; the copy it committed is the VM as it
//! was at the pause; the source's VM runs on unpaused, untracked and unthrottled; and a
//! failed snapshot leaves the source exactly as a failed migration does.

use std::string::String;
use std::vec::Vec;

use super::guest::FakeGuest;
use super::{Fault, Run, Setup, migrate};
use crate::migration::destination::DestinationOutcome;
use crate::migration::source::SourceOutcome;

const PAGES: usize = 1024; // 4 MiB

/// The snapshot committed and the source's VM still runs, intact.
fn assert_snapshot_kept_running(source: &mut FakeGuest, run: Run) -> FakeGuest {
    let dump = run.lines.join("\n");
    assert!(
        matches!(run.source, SourceOutcome::Completed(_)),
        "not completed: {:?}\n{dump}",
        run.source
    );
    assert_eq!(run.destination, Some(DestinationOutcome::Ready), "{dump}");
    // The VM ran again once the copy was queued, before the receiver's commit came back.
    let position = |text: &str| run.lines.iter().position(|l| l.contains(text));
    let resumed = position("the VM runs on while the receiver commits");
    let completed = position("migrate: completed in");
    assert!(
        matches!((resumed, completed), (Some(r), Some(c)) if r < c),
        "resumed before the commit:\n{dump}"
    );
    if let SourceOutcome::Completed(stats) = &run.source {
        assert!(stats.downtime_us < stats.total_us, "{stats:?}");
    }
    assert!(!source.paused, "a snapshot's source VM runs on");
    assert!(!source.is_tracking(), "tracking stopped");
    assert_eq!(source.throttle, 0, "throttle removed");
    let copy = run.moved.expect("the destination holds the copy");
    // The source ran on while the destination settled, so memories may differ by now;
    // the copy is a consistent VM (its own check) from no later than the source is.
    copy.verify().unwrap();
    assert!(copy.heartbeat() <= source.heartbeat());
    let beat = source.heartbeat();
    for _ in 0..100 {
        source.tick();
    }
    assert_eq!(
        source.heartbeat(),
        beat + 100,
        "the source's heartbeat continues"
    );
    source.verify().unwrap();
    copy
}

#[test]
fn a_live_snapshot_leaves_the_vm_running_on_the_source() {
    let mut guest = FakeGuest::new(PAGES, 30);
    let run = migrate(
        &mut guest,
        Setup {
            keep_vm: true,
            ..Setup::new()
        },
    );
    let mut copy = assert_snapshot_kept_running(&mut guest, run);
    // The copy runs too, on its own.
    let beat = copy.heartbeat();
    copy.tick();
    assert_eq!(copy.heartbeat(), beat + 1);
}

#[test]
fn a_cold_snapshot_pauses_while_copying_then_resumes() {
    let mut guest = FakeGuest::new(PAGES, 30);
    let run = migrate(
        &mut guest,
        Setup {
            keep_vm: true,
            cold: true,
            ..Setup::new()
        },
    );
    assert!(
        !guest.tracking_ever,
        "a cold snapshot needs no dirty tracking"
    );
    assert_snapshot_kept_running(&mut guest, run);
}

/// The destination's side of a run: its outcome and its console lines.
fn destination_view(run: &Run) -> (Option<DestinationOutcome>, Vec<String>) {
    let lines = run
        .lines
        .iter()
        .filter(|l| l.starts_with("[dst]"))
        .cloned()
        .collect();
    (run.destination.clone(), lines)
}

#[test]
fn the_destination_cannot_tell_a_snapshot_from_a_migration() {
    // Cold runs are deterministic: same guest, same link, same nonces.
    let mut migrated = FakeGuest::new(PAGES, 30);
    let migration = migrate(
        &mut migrated,
        Setup {
            cold: true,
            ..Setup::new()
        },
    );
    let mut snapshotted = FakeGuest::new(PAGES, 30);
    let snapshot = migrate(
        &mut snapshotted,
        Setup {
            cold: true,
            keep_vm: true,
            ..Setup::new()
        },
    );
    assert_eq!(destination_view(&migration), destination_view(&snapshot));
    assert!(
        migration.moved.as_ref().map(|g| &g.memory) == snapshot.moved.as_ref().map(|g| &g.memory),
        "both destinations hold the same VM"
    );
    // Only the source differs: it gave its VM up, or kept it running.
    assert!(migrated.paused);
    assert!(!snapshotted.paused);
}

#[test]
fn a_failed_snapshot_leaves_the_vm_running_as_before() {
    for cold in [false, true] {
        let mut guest = FakeGuest::new(PAGES, 30);
        let run = migrate(
            &mut guest,
            Setup {
                keep_vm: true,
                cold,
                fault: Fault::CutAt(40),
                ..Setup::new()
            },
        );
        let dump = run.lines.join("\n");
        assert!(matches!(run.source, SourceOutcome::Failed(_)), "{dump}");
        assert!(!guest.paused, "resumed (cold: {cold})");
        assert!(!guest.is_tracking());
        assert_eq!(run.factory.created, run.factory.discarded, "no copy kept");
        guest.verify().unwrap();
        let beat = guest.heartbeat();
        guest.tick();
        assert_eq!(guest.heartbeat(), beat + 1);
    }
}
