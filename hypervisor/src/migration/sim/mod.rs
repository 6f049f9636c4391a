//! Host simulation of whole migrations: a guest that dirties its memory at a set rate and
//! checks itself, an in-memory link with a bandwidth and fault injection, and a driver that
//! advances both engines one simulated millisecond at a time.

mod disk;
mod guest;
mod in_doubt;
mod link;
mod scenarios;
mod snapshot;
mod storage;

use std::string::String;
use std::vec::Vec;

use crate::migration::transport::Transport;

use migration_proto::cpu::CpuDescriptor;
use migration_proto::crypto::PreSharedKey;
use migration_proto::session::Instant;

use self::guest::{FakeFactory, FakeGuest, FakeIncoming};
use self::link::{Endpoint, link_pair};
use super::destination::{DestinationEngine, DestinationOutcome};
use super::params::MigrationParams;
use super::source::{SourceEngine, SourceOutcome};

/// Something that goes wrong during a simulated migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// The link is cut at this millisecond.
    CutAt(u64),
    /// The destination host dies (its engine vanishes, its socket closes) at this ms.
    KillDestinationAt(u64),
    /// The operator cancels at this ms.
    CancelAt(u64),
    /// The link is cut the moment the source completes: its `Release` is lost.
    CutWhenSourceCompletes,
    /// The link is cut the moment the destination acknowledges the commit: its
    /// `CommitAck` is lost.
    CutWhenDestinationAcks,
}

struct Setup {
    params: MigrationParams,
    cold: bool,
    /// A snapshot: the source keeps its VM after the commit.
    keep_vm: bool,
    source_key: [u8; 32],
    destination_key: [u8; 32],
    source_cpu: CpuDescriptor,
    destination_cpu: CpuDescriptor,
    bytes_per_ms: usize,
    factory: FakeFactory,
    fault: Fault,
    /// Give up after this much simulated time.
    limit_ms: u64,
}

impl Setup {
    fn new() -> Self {
        Setup {
            params: MigrationParams {
                downtime_limit_ms: 50,
                ..MigrationParams::default()
            },
            cold: false,
            keep_vm: false,
            source_key: [7; 32],
            destination_key: [7; 32],
            source_cpu: CpuDescriptor::default(),
            destination_cpu: CpuDescriptor::default(),
            bytes_per_ms: 4096,
            factory: FakeFactory::default(),
            fault: Fault::None,
            limit_ms: 120_000,
        }
    }
}

struct Run {
    source: SourceOutcome,
    destination: Option<DestinationOutcome>,
    /// The guest as it continues on the destination, when it moved.
    moved: Option<FakeGuest>,
    lines: Vec<String>,
    factory: FakeFactory,
}

/// Migrates `guest` (which keeps running on the source unless it moved).
fn migrate(guest: &mut FakeGuest, mut setup: Setup) -> Run {
    let (mut src_link, mut dst_link): (Endpoint, Endpoint) = link_pair(setup.bytes_per_ms);
    let mut now_ms = 0u64;
    let at = |ms: u64| Instant::from_millis(ms);
    let mut source = SourceEngine::new(
        guest,
        PreSharedKey::new(setup.source_key),
        setup.source_cpu.clone(),
        setup.params,
        setup.cold,
        [1; 32],
        at(0),
    );
    if setup.keep_vm {
        source.keep_vm_after_commit();
    }
    let mut destination: Option<DestinationEngine<FakeIncoming>> = Some(DestinationEngine::new(
        PreSharedKey::new(setup.destination_key),
        setup.destination_cpu.clone(),
        setup.factory.limit_bytes,
        setup.factory.disk_limit_bytes,
        [2; 32],
        at(0),
    ));
    let mut lines = Vec::new();
    let mut dst_outcome = None;
    let mut moved = None;
    let source_outcome = loop {
        now_ms += 1;
        assert!(now_ms < setup.limit_ms, "migration did not end: {lines:#?}");
        src_link.tick();
        guest.tick();
        match setup.fault {
            Fault::CutAt(t) if t == now_ms => src_link.cut(),
            Fault::KillDestinationAt(t) if t == now_ms => {
                // Whatever the dead host had is gone with it (a reboot starts empty).
                destination = None;
                dst_link.close();
                setup.factory = FakeFactory::default();
            }
            Fault::CancelAt(t) if t == now_ms => source.cancel(at(now_ms)),
            _ => {}
        }
        let src_done = source.poll(guest, &mut src_link, at(now_ms)).cloned();
        if setup.fault == Fault::CutWhenSourceCompletes
            && matches!(src_done, Some(SourceOutcome::Completed(_)))
        {
            src_link.cut();
        }
        while let Some(line) = source.take_line() {
            lines.push(line);
        }
        if let Some(dst) = destination.as_mut() {
            if let Some(outcome) = dst.poll(&mut setup.factory, &mut dst_link, at(now_ms))
                && dst_outcome.is_none()
            {
                dst_outcome = Some(outcome.clone());
                if let Some(vm) = dst.take_vm() {
                    let mut kept = FakeGuest::from_incoming(vm);
                    // An in-doubt VM is kept paused until the operator resolves it.
                    kept.paused = matches!(dst_outcome, Some(DestinationOutcome::InDoubt(_)));
                    moved = Some(kept);
                }
            }
            while let Some(line) = dst.take_line() {
                lines.push(std::format!("[dst] {line}"));
            }
            if setup.fault == Fault::CutWhenDestinationAcks && dst.state_name() == "AwaitingRelease"
            {
                src_link.cut();
            }
        }
        let dst_settled = destination.is_none() || dst_outcome.is_some();
        if let Some(outcome) = src_done
            && dst_settled
        {
            break outcome;
        }
    };
    Run {
        source: source_outcome,
        destination: dst_outcome,
        moved,
        lines,
        factory: setup.factory,
    }
}
