//! The migration console commands.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::outgoing::{OutgoingPurpose, choose_vm, evacuate, snapshot, start_outgoing};
use super::{MIGRATION, Migrations, now};
use crate::console::{CommandError, CommandSpec, Invocation};
use crate::kernel::network::with_net_stack;
use crate::kernel::vms::with_vms;
use crate::migration::in_doubt::{Resolution, parse_resolve};
use crate::migration::params::parse_migrate;
use crate::vm::state::VmCommand;
use crate::vm::vm_set::VmHold;

/// `migrate`, `snapshot`, `evacuate`, `migrate_cancel`, `migrate_set_parameter`,
/// `migrate_resolve`, `migrate_incoming`.
pub static MIGRATION_COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "migrate",
        usage: "[-c] [-b] HOST:PORT [VM]",
        help: "migrate a VM to another tern host (live; -c: cold; -b: with its disk) and return to the prompt",
        min_args: 1,
        max_args: 4,
        handler: migrate,
    },
    CommandSpec {
        name: "snapshot",
        usage: "[-c] [-b] HOST:PORT [VM]",
        help: "save a copy of a VM, with its disk, to a snapshot receiver or tern host; the VM keeps running here (-c: paused while copying; -b: accepted, a snapshot always includes the disk)",
        min_args: 1,
        max_args: 4,
        handler: snapshot,
    },
    CommandSpec {
        name: "evacuate",
        usage: "HOST:PORT",
        help: "migrate every VM of this host to another tern host, one after another",
        min_args: 1,
        max_args: 1,
        handler: evacuate,
    },
    CommandSpec {
        name: "migrate_cancel",
        usage: "",
        help: "cancel the outgoing migration (the VM keeps running here)",
        min_args: 0,
        max_args: 0,
        handler: migrate_cancel,
    },
    CommandSpec {
        name: "migrate_set_parameter",
        usage: "downtime-limit MS | max-bandwidth MIB | max-rounds N | dirty-tracking wp|pml | verify sample|full | delta-cache MIB | convergence auto-converge|dirty-limit | cpu-budget PERCENT",
        help: "set a parameter of the next migrations",
        min_args: 2,
        max_args: 2,
        handler: migrate_set_parameter,
    },
    CommandSpec {
        name: "migrate_resolve",
        usage: "VM run|discard",
        help: "settle a VM left in doubt by an interrupted commit (run it here or free it)",
        min_args: 2,
        max_args: 2,
        handler: migrate_resolve,
    },
    CommandSpec {
        name: "migrate_incoming",
        usage: "PORT",
        help: "accept incoming migrations on PORT (instead of [migration] port)",
        min_args: 1,
        max_args: 1,
        handler: migrate_incoming,
    },
];

pub(super) fn failed(text: impl Into<String>) -> CommandError {
    CommandError::Failed(text.into())
}

pub(super) fn with_migrations<R>(
    f: impl FnOnce(&mut Migrations) -> Result<R, CommandError>,
) -> Result<R, CommandError> {
    let mut guard = MIGRATION.lock();
    let m = guard
        .as_mut()
        .ok_or_else(|| failed("migration is not available (no host config)"))?;
    f(m)
}

fn migrate(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let args = parse_migrate(inv.args.iter().map(String::as_str))
        .map_err(|e| CommandError::BadArgument(e.to_string()))?;
    let message = with_migrations(|m| {
        m.refuse_while_evacuating()?;
        let vm_name = choose_vm(args.vm.as_deref(), "migrate")?;
        start_outgoing(
            m,
            &vm_name,
            (args.host, args.port),
            args.cold,
            args.block,
            OutgoingPurpose::Migrate,
        )
    })?;
    writeln!(inv.out, "{message}")?;
    Ok(())
}

fn migrate_cancel(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let lines = with_migrations(|m| {
        if let Some(out) = m.outgoing.as_mut() {
            out.engine.cancel(now());
            return Ok(alloc::vec![String::from("migrate: cancelling")]);
        }
        // An evacuation between two attempts at a refused VM: stop it here.
        let lines = m.cancel_evacuation_retry();
        if lines.is_empty() {
            return Err(failed("no outgoing migration"));
        }
        Ok(lines)
    })?;
    for line in lines {
        writeln!(inv.out, "{line}")?;
    }
    Ok(())
}

fn migrate_set_parameter(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let params = with_migrations(|m| {
        m.params
            .set(&inv.args[0], &inv.args[1])
            .map_err(|e| CommandError::BadArgument(e.to_string()))?;
        Ok(m.params)
    })?;
    writeln!(inv.out, "migration parameters: {params}")?;
    Ok(())
}

/// `migrate_resolve VM run|discard`: the operator settles an in-doubt VM after reading the
/// source's last line (`migration::in_doubt`).
fn migrate_resolve(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let args: Vec<&str> = inv.args.iter().map(String::as_str).collect();
    let (name, resolution) =
        parse_resolve(&args).map_err(|e| CommandError::BadArgument(e.to_string()))?;
    let message = with_vms(|set, ctx| {
        let hold = set.hold_of(name);
        if !matches!(hold, Some(VmHold::InDoubt | VmHold::Unrunnable)) {
            return Err(failed(format!("no in-doubt VM named '{name}' (vm list)")));
        }
        match resolution {
            Resolution::Run if hold == Some(VmHold::Unrunnable) => Err(failed(format!(
                "VM '{name}' cannot run: its vCPU state was not loaded after the commit"
            ))),
            Resolution::Run => {
                set.release_hold(name);
                let vm = set
                    .get_mut(name)
                    .ok_or_else(|| failed(format!("VM '{name}' vanished")))?;
                vm.machine
                    .command(&mut ctx.vmx, &mut ctx.frames, VmCommand::Resume)
                    .map_err(|e| {
                        failed(format!(
                            "VM '{name}' cannot run: {e}; it stays paused with its state"
                        ))
                    })?;
                Ok(format!(
                    "migrate: VM '{name}' resolved: running on this host"
                ))
            }
            Resolution::Discard => {
                if let Some(vm) = set.remove(name) {
                    vm.machine.destroy(&mut ctx.vmx, &mut ctx.frames);
                }
                Ok(format!(
                    "migrate: VM '{name}' resolved: discarded here (the source runs it)"
                ))
            }
        }
    })
    .ok_or_else(|| failed("VT-x not available: no VMs"))??;
    writeln!(inv.out, "{message}")?;
    Ok(())
}

fn migrate_incoming(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let port = inv.args[0]
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| CommandError::BadArgument(format!("'{}' is not a port", inv.args[0])))?;
    with_migrations(|m| {
        if m.key.is_none() {
            return Err(failed(
                "no [migration] key configured: migration is disabled",
            ));
        }
        if m.incoming.is_some() {
            return Err(failed("an incoming migration is running"));
        }
        if let Some((handle, _)) = m.listener.take() {
            with_net_stack(|stack| {
                stack.sockets().remove(handle);
            });
        }
        m.listen_port = Some(port);
        m.ensure_listener();
        if m.listener.is_none() {
            return Err(failed(format!("cannot listen on port {port}")));
        }
        Ok(())
    })?;
    writeln!(
        inv.out,
        "migrate: listening for incoming migrations on port {port}"
    )?;
    Ok(())
}

/// `info migrate`.
pub fn info_migrate(out: &mut dyn core::fmt::Write) -> Result<(), CommandError> {
    with_migrations(|m| {
        match (&m.outgoing, &m.last) {
            (Some(o), _) => {
                writeln!(out, "{}", o.engine.info(now()))?;
                for line in o.engine.disk_progress() {
                    writeln!(out, "  {line}")?;
                }
            }
            (None, Some(last)) => writeln!(out, "{last}")?,
            (None, None) => writeln!(out, "migration: none yet")?,
        }
        if let Some(run) = &m.evacuation {
            writeln!(out, "{}", run.evacuation.status_line())?;
        }
        match &m.incoming {
            Some(i) => writeln!(out, "incoming: {}", i.engine.state_name())?,
            None => match m.listener {
                Some((_, port)) => writeln!(out, "incoming: listening on port {port}")?,
                None => writeln!(out, "incoming: not listening")?,
            },
        }
        let in_doubt = with_vms(|set, _| {
            set.iter()
                .map(|v| String::from(v.machine.name()))
                .filter(|n| set.hold_of(n) == Some(VmHold::InDoubt))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
        for name in in_doubt {
            writeln!(
                out,
                "in-doubt: VM '{name}' (commit acknowledged, release not received): paused; \
                 the source's last line says who owns it: migrate_resolve {name} run|discard"
            )?;
        }
        writeln!(out, "parameters: {}", m.params)?;
        Ok(())
    })
}
