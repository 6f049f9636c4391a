//! Starting outgoing migrations, and the two commands built on them besides `migrate`:
//! `snapshot` (a migration whose source keeps its VM) and `evacuate` (every VM in turn).
//!
//! All three go through [`start_outgoing`]: find the VM, connect, hold the VM, start the
//! source engine. What differs is only what happens at the end (`poll_outgoing`): a
//! migrated VM is destroyed here, a snapshotted one runs on, an evacuated one lets the
//! evacuation start the next VM.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use migration_proto::crypto::PreSharedKey;
use smoltcp::wire::{IpAddress, IpEndpoint};

use super::adapters::SourceVm;
use super::commands::{failed, with_migrations};
use super::{Migrations, Outgoing, now};
use crate::arch::tsc;
use crate::console::{CommandError, Invocation};
use crate::kernel::network::{network_unavailable_reason, with_net_stack};
use crate::kernel::vms::with_vms;
use crate::migration::cpu_budget::CpuBudget;
use crate::migration::evacuation::{Evacuation, RETRY_DELAY_US};
use crate::migration::params::{ArgError, FaultInjection, parse_host_port, parse_migrate};
use crate::migration::source::SourceEngine;
use crate::migration::source::{SourceError, SourceOutcome};
use crate::migration::tcp::new_socket;
use crate::vm::state::VmState;
use crate::vm::vm_set::VmHold;

/// What an outgoing migration is for: decides what happens to the VM at `Completed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutgoingPurpose {
    /// `migrate`: the VM moves; the local copy is destroyed.
    Migrate,
    /// `snapshot`: the receiver commits a copy; the VM runs on here.
    Snapshot,
    /// One VM of `evacuate`: moves like `Migrate`, then the next VM starts.
    Evacuate,
}

impl OutgoingPurpose {
    fn word(self) -> &'static str {
        match self {
            OutgoingPurpose::Migrate | OutgoingPurpose::Evacuate => "migration",
            OutgoingPurpose::Snapshot => "snapshot",
        }
    }
}

/// A running `evacuate`.
pub struct EvacuationRun {
    /// What moved, what is moving, what waits.
    pub evacuation: Evacuation,
    /// The peer.
    to: ([u8; 4], u16),
    /// When to try the current VM again after its connection was refused (uptime µs).
    retry_at_us: Option<u64>,
}

/// The VMs an outgoing migration may take: running or paused, not held by anything.
fn movable_vms() -> Result<Vec<String>, CommandError> {
    with_vms(|set, _| {
        set.iter()
            .filter(|v| matches!(v.machine.state(), VmState::Running | VmState::Paused))
            .filter(|v| set.hold_of(v.machine.name()).is_none())
            .map(|v| String::from(v.machine.name()))
            .collect()
    })
    .ok_or_else(|| failed("VT-x not available: no VMs"))
}

/// The VM named, or the only one that could be meant.
pub(super) fn choose_vm(name: Option<&str>, command: &str) -> Result<String, CommandError> {
    if let Some(name) = name
        && let Some(Some(hold)) = with_vms(|set, _| set.hold_of(name))
    {
        return Err(failed(format!("VM '{name}' is {}", hold.refusal())));
    }
    let movable = movable_vms()?;
    match name {
        Some(name) if movable.iter().any(|n| n == name) => Ok(String::from(name)),
        Some(name) => Err(failed(format!("no running VM named '{name}'"))),
        None if movable.len() == 1 => Ok(movable[0].clone()),
        None if movable.is_empty() => Err(failed(format!("no running VM to {command}"))),
        None => Err(failed(format!(
            "several VMs run here: name one ({command} HOST:PORT VM)"
        ))),
    }
}

/// Connects to `to` and starts the source engine for `vm_name`; returns the console line.
/// `block`: storage migration (`migrate -b`; evacuation always): the VM's disk moves too. A
/// VM with a disk is refused without it, before connecting (a refused command must leave
/// no connection behind: the destination serves one at a time).
pub(super) fn start_outgoing(
    m: &mut Migrations,
    vm_name: &str,
    to: ([u8; 4], u16),
    cold: bool,
    block: bool,
    purpose: OutgoingPurpose,
) -> Result<String, CommandError> {
    let key = m
        .key
        .ok_or_else(|| failed("no [migration] key configured: migration is disabled"))?;
    if m.outgoing.is_some() {
        return Err(failed("a migration is already running (info migrate)"));
    }
    if let Some(Some(hold)) = with_vms(|set, _| set.hold_of(vm_name)) {
        return Err(failed(format!("VM '{vm_name}' is {}", hold.refusal())));
    }
    let has_disk = with_vms(|set, _| {
        set.iter()
            .any(|v| v.machine.name() == vm_name && v.machine.disk().is_some())
    })
    .unwrap_or(false);
    if has_disk && !block {
        return Err(failed(format!(
            "VM '{vm_name}' has a disk: migrate it with -b (its disk moves with it)"
        )));
    }
    let remote = IpEndpoint::new(IpAddress::Ipv4(Ipv4Addr::from(to.0)), to.1);
    let socket = with_net_stack(|stack| stack.tcp_connect(new_socket(), remote))
        .ok_or_else(|| failed(network_unavailable_reason()))?
        .map_err(|e| failed(format!("{e}")))?;
    let nonce = m.nonce();
    let mut params = m.params;
    params.block_migration = block && has_disk;
    let mut paused_here = false;
    let engine = with_vms(|set, ctx| {
        // Until the migration ends the operator's `vm` commands leave this VM alone.
        set.hold(vm_name, VmHold::MigratingOut);
        let hv = set.get_mut(vm_name)?;
        // The offer describes the VM's CPU model, not this host: a baseline VM can go to any
        // host offering the baseline.
        let cpu = super::adapters::cpu_descriptor(hv.machine.cpu_features());
        let mut vm = SourceVm {
            machine: &mut hv.machine,
            ctx,
            paused_here: &mut paused_here,
        };
        Some(SourceEngine::new(
            &mut vm,
            PreSharedKey::new(key),
            cpu,
            params,
            cold,
            nonce,
            now(),
        ))
    })
    .flatten();
    let Some(mut engine) = engine else {
        with_vms(|set, _| set.release_hold(vm_name));
        with_net_stack(|stack| {
            stack.sockets().remove(socket);
        });
        return Err(failed(format!("VM '{vm_name}' vanished")));
    };
    if purpose == OutgoingPurpose::Snapshot {
        engine.keep_vm_after_commit();
    }
    match Migrations::endpoints(socket, true) {
        Some(endpoints) => engine.set_endpoints(endpoints),
        None => log::warn!("migration: outgoing connection without IPv4 endpoints"),
    }
    m.outgoing = Some(Outgoing {
        engine,
        budget: CpuBudget::new(params.cpu_budget_percent, tsc::uptime_ns() / 1000),
        socket,
        vm: String::from(vm_name),
        paused_here,
        drop_release: params.fault_inject == FaultInjection::DropRelease,
        purpose,
    });
    let prefix = match purpose {
        OutgoingPurpose::Snapshot => "snapshot",
        OutgoingPurpose::Migrate | OutgoingPurpose::Evacuate => "migrate",
    };
    Ok(format!(
        "{prefix}: {} {} of '{vm_name}'{} to {remote} started ({})",
        if cold { "cold" } else { "live" },
        purpose.word(),
        if params.block_migration {
            " with its disk"
        } else {
            ""
        },
        params
    ))
}

/// `snapshot [-c] [-b] HOST:PORT [VM]`. A snapshot always takes the VM's disk (storage
/// migration, as `migrate -b`): a copy of memory without the disk it was written against is
/// no backup, and unlike `migrate` nothing is left behind that could be meant to stay (the
/// VM and its disk run on here). `-b` is accepted for symmetry with `migrate` and changes
/// nothing. The receiver must take disks (`tern-snapshot receive` does, up to
/// `--max-disk`; a tern host needs room for them), else it refuses and the VM runs on.
pub(super) fn snapshot(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let args = parse_migrate(inv.args.iter().map(String::as_str)).map_err(|e| match e {
        ArgError::Usage(_) => {
            CommandError::BadArgument(String::from("usage: snapshot [-c] [-b] HOST:PORT [VM]"))
        }
        other => CommandError::BadArgument(other.to_string()),
    })?;
    let message = with_migrations(|m| {
        m.refuse_while_evacuating()?;
        let vm_name = choose_vm(args.vm.as_deref(), "snapshot")?;
        start_outgoing(
            m,
            &vm_name,
            (args.host, args.port),
            args.cold,
            true,
            OutgoingPurpose::Snapshot,
        )
    })?;
    writeln!(inv.out, "{message}")?;
    Ok(())
}

/// `evacuate HOST:PORT`.
pub(super) fn evacuate(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let target = inv.args[0].clone();
    let to = parse_host_port(&target).map_err(|e| CommandError::BadArgument(e.to_string()))?;
    let lines = with_migrations(|m| {
        if m.key.is_none() {
            return Err(failed(
                "no [migration] key configured: migration is disabled",
            ));
        }
        m.refuse_while_evacuating()?;
        if m.outgoing.is_some() {
            return Err(failed("a migration is already running (info migrate)"));
        }
        let evacuation = Evacuation::new(target, movable_vms()?)
            .ok_or_else(|| failed("no running VM to evacuate"))?;
        let mut lines = alloc::vec![evacuation.start_line()];
        m.evacuation = Some(EvacuationRun {
            evacuation,
            to,
            retry_at_us: None,
        });
        lines.extend(m.advance_evacuation(None));
        Ok(lines)
    })?;
    for line in lines {
        writeln!(inv.out, "{line}")?;
    }
    Ok(())
}

impl Migrations {
    pub(super) fn refuse_while_evacuating(&self) -> Result<(), CommandError> {
        match &self.evacuation {
            Some(run) => Err(failed(format!(
                "an evacuation is running (now: '{}'; migrate_cancel stops it)",
                run.evacuation.current().unwrap_or("-")
            ))),
            None => Ok(()),
        }
    }

    /// The current evacuated VM's migration ended: a refused connection is tried again
    /// shortly (the peer may still be settling the previous VM), anything else is its
    /// result. Returns the lines to print.
    pub(super) fn evacuation_vm_ended(
        &mut self,
        outcome: SourceOutcome,
        now_us: u64,
    ) -> Vec<String> {
        let refused = matches!(
            outcome,
            SourceOutcome::Failed(SourceError::ConnectionRefused)
        );
        if refused && let Some(run) = self.evacuation.as_mut() {
            let first = run.retry_at_us.is_none();
            if run.evacuation.retry_refused(now_us) {
                run.retry_at_us = Some(now_us + RETRY_DELAY_US);
                let vm = run.evacuation.current().unwrap_or("-");
                return if first {
                    alloc::vec![format!(
                        "evacuate: '{vm}' refused by the peer (it takes one incoming migration \
                         at a time); trying again"
                    )]
                } else {
                    Vec::new()
                };
            }
        }
        let result = match outcome {
            SourceOutcome::Completed(_) => Ok(()),
            SourceOutcome::Failed(why) => Err(why.to_string()),
        };
        self.advance_evacuation(Some(result))
    }

    /// Starts the current VM again once its retry is due.
    pub(super) fn retry_evacuation(&mut self, now_us: u64) -> Vec<String> {
        let Some(mut run) = self.evacuation.take() else {
            return Vec::new();
        };
        match run.retry_at_us {
            Some(at) if now_us >= at => {}
            _ => {
                self.evacuation = Some(run);
                return Vec::new();
            }
        }
        let Some(vm) = run.evacuation.current().map(String::from) else {
            self.evacuation = Some(run);
            return Vec::new();
        };
        let to = run.to;
        match start_outgoing(self, &vm, to, false, true, OutgoingPurpose::Evacuate) {
            Ok(_) => {
                // Its "started" line was printed on the first attempt.
                self.evacuation = Some(run);
                Vec::new()
            }
            Err(e) => {
                let line = run.evacuation.finished(Err(e.to_string()));
                run.retry_at_us = None;
                self.evacuation = Some(run);
                let mut lines = alloc::vec![line];
                lines.extend(self.advance_evacuation(None));
                lines
            }
        }
    }

    /// `migrate_cancel` while an evacuation waits to retry a refused VM: it stops there.
    pub(super) fn cancel_evacuation_retry(&mut self) -> Vec<String> {
        match self.evacuation.as_mut() {
            Some(run) if run.retry_at_us.is_some() => {
                run.retry_at_us = None;
                self.advance_evacuation(Some(Err(String::from("cancelled by the operator"))))
            }
            _ => Vec::new(),
        }
    }

    /// Records the last evacuated VM's result and starts the next one; returns the lines
    /// to print (with the summary once it is over).
    pub(super) fn advance_evacuation(&mut self, result: Option<Result<(), String>>) -> Vec<String> {
        let mut lines = Vec::new();
        let Some(mut run) = self.evacuation.take() else {
            return lines;
        };
        run.retry_at_us = None;
        if let Some(result) = result {
            lines.push(run.evacuation.finished(result));
        }
        while let Some(vm) = run.evacuation.next_vm() {
            match start_outgoing(self, &vm, run.to, false, true, OutgoingPurpose::Evacuate) {
                Ok(line) => {
                    lines.push(line);
                    self.evacuation = Some(run);
                    return lines;
                }
                Err(e) => lines.push(run.evacuation.finished(Err(e.to_string()))),
            }
        }
        lines.push(run.evacuation.summary());
        lines
    }
}
