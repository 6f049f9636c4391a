//! The connection dies between `CommitAck` and `Release` (issue 13, item 0): whatever is
//! lost, the VM survives on exactly one host once the operator follows the source's last
//! line, and nothing runs twice before that.

use super::guest::FakeGuest;
use super::{Fault, Run, Setup, migrate};
use crate::migration::destination::DestinationOutcome;
use crate::migration::in_doubt::{Resolution, parse_resolve, source_verdict};
use crate::migration::source::SourceOutcome;

const PAGES: usize = 1024;
const VM: &str = "sim";

/// What the operator at the destination does after reading the source's last line.
fn operator_decision(run: &Run) -> Resolution {
    let verdict = source_verdict(VM, matches!(run.source, SourceOutcome::Completed(_)));
    let command = verdict
        .split('\'')
        .find(|part| part.starts_with("migrate_resolve "))
        .expect("the verdict names a command");
    let words: std::vec::Vec<&str> = command.split_whitespace().skip(1).collect();
    parse_resolve(&words).expect("a valid command").1
}

fn in_doubt_run(fault: Fault) -> (FakeGuest, Run) {
    let mut guest = FakeGuest::new(PAGES, 20);
    let run = migrate(
        &mut guest,
        Setup {
            fault,
            ..Setup::new()
        },
    );
    assert!(
        matches!(run.destination, Some(DestinationOutcome::InDoubt(_))),
        "{:?}\n{}",
        run.destination,
        run.lines.join("\n")
    );
    assert!(
        run.lines.iter().any(|l| l.contains("in doubt")),
        "{}",
        run.lines.join("\n")
    );
    (guest, run)
}

#[test]
fn lost_release_keeps_the_vm_paused_at_the_destination_and_run_resolves_it() {
    let (source, run) = in_doubt_run(Fault::CutWhenSourceCompletes);
    // The source completed: its copy is released (paused, destroyed by the kernel).
    assert!(matches!(run.source, SourceOutcome::Completed(_)));
    assert!(source.paused);
    assert_eq!(run.factory.discarded, 0, "the destination kept the VM");
    assert_eq!(operator_decision(&run), Resolution::Run);
    let mut kept = run.moved.expect("the in-doubt VM is kept");
    assert!(
        kept.paused,
        "an in-doubt VM must not run before it is resolved"
    );
    assert_eq!(kept.memory, source.memory);
    kept.paused = false;
    let beat = kept.heartbeat();
    assert_eq!(
        beat,
        source.heartbeat(),
        "continues where the source stopped"
    );
    for _ in 0..50 {
        kept.tick();
    }
    assert_eq!(kept.heartbeat(), beat + 50);
    kept.verify().unwrap();
}

#[test]
fn lost_commit_ack_resumes_on_the_source_and_discard_resolves_the_destination() {
    let (mut source, run) = in_doubt_run(Fault::CutWhenDestinationAcks);
    // The source never saw the acknowledgement: it resumed its VM.
    assert!(matches!(run.source, SourceOutcome::Failed(_)));
    assert!(!source.paused);
    let kept = run.moved.as_ref().expect("the in-doubt VM is kept");
    assert!(kept.paused, "it must not run next to the source's copy");
    assert_eq!(operator_decision(&run), Resolution::Discard);
    let beat = source.heartbeat();
    for _ in 0..50 {
        source.tick();
    }
    assert_eq!(source.heartbeat(), beat + 50);
    source.verify().unwrap();
}
