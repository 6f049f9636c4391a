//! The kernel's own console commands and the registry of all command tables.

use crate::acpi::power;
use crate::arch::serial::SerialWriter;
use crate::arch::tsc;
use crate::console::commands_builtin::HELP_COMMANDS;
use crate::console::{CommandError, CommandRegistry, CommandSpec, Invocation};
use crate::memory::global::FRAMES;
use crate::memory::heap;

use super::banner::{Size, write_memory_line, write_version};
use super::host;

/// Every command table tern knows. Subsystems add theirs here with one line each.
pub fn registry() -> CommandRegistry {
    let mut r = CommandRegistry::new();
    r.register(HELP_COMMANDS);
    r.register(KERNEL_COMMANDS);
    r.register(super::vms::VM_COMMANDS);
    r.register(super::host_storage::BLOCK_COMMANDS);
    r.register(super::network::COMMANDS);
    r.register(super::migration::MIGRATION_COMMANDS);
    r
}

/// `info`, `reboot`, `shutdown`.
pub static KERNEL_COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "info",
        usage: "[migrate | cpu-models | block]",
        help: "host, CPU, VT-x, memory and uptime; `info migrate`: migration status; `info cpu-models`: the CPU models VMs can have here; `info block`: VM disks",
        min_args: 0,
        max_args: 1,
        handler: info,
    },
    CommandSpec {
        name: "reboot",
        usage: "",
        help: "reset the machine (all VMs are lost)",
        min_args: 0,
        max_args: 0,
        handler: reboot,
    },
    CommandSpec {
        name: "shutdown",
        usage: "",
        help: "power the machine off (ACPI S5)",
        min_args: 0,
        max_args: 0,
        handler: shutdown,
    },
];

fn info(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    match inv.args.first().map(alloc::string::String::as_str) {
        None => {}
        Some("migrate") => return super::migration::commands::info_migrate(inv.out),
        Some("cpu-models") => return super::cpu_models::info_cpu_models(inv.out),
        Some("block") => return super::vms::info_block(inv.out),
        Some(other) => {
            return Err(CommandError::BadArgument(alloc::format!(
                "info {other}: unknown (try `info`, `info migrate`, `info cpu-models` or `info block`)"
            )));
        }
    }
    let out = &mut *inv.out;
    let host = host::get().ok_or_else(|| CommandError::Failed("still booting".into()))?;
    write_version(out)?;
    writeln!(out, " on host '{}'", host.name().unwrap_or("(unnamed)"))?;
    let up = tsc::uptime_ns();
    writeln!(
        out,
        "uptime: {}.{:03} s",
        up / 1_000_000_000,
        (up / 1_000_000) % 1000
    )?;
    let cpu = &host.cpu;
    writeln!(
        out,
        "cpu: {} '{}' family {:#x} model {:#x} stepping {}{}",
        cpu.vendor,
        cpu.brand,
        cpu.family,
        cpu.model,
        cpu.stepping,
        if cpu.hypervisor_present {
            " (running under a hypervisor/emulator)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "tsc: {}.{:03} MHz, {}",
        host.tsc_hz / 1_000_000,
        (host.tsc_hz / 1_000) % 1000,
        host.tsc_source.as_str()
    )?;
    host.vmx.write_summary(out)?;
    writeln!(out)?;
    host.vmx.write_details(out)?;
    write_memory_line(out, &host.memory)?;
    writeln!(out)?;
    let totals = FRAMES.lock().totals();
    let (heap_used, heap_size) = heap::usage();
    writeln!(
        out,
        "memory now: {} free of {} allocatable; heap {} used of {}",
        Size(totals.free_bytes),
        Size(totals.managed_bytes),
        Size(heap_used as u64),
        Size(heap_size as u64)
    )?;
    let modules = host.boot_info.modules();
    for m in modules {
        writeln!(
            out,
            "module '{}': {} bytes at {:#x}",
            m.name().unwrap_or("(bad name)"),
            m.len,
            m.phys
        )?;
    }
    power::describe(out)?;
    Ok(())
}

fn reboot(_: &mut Invocation<'_>) -> Result<(), CommandError> {
    power::reboot(&mut SerialWriter)
}

fn shutdown(_: &mut Invocation<'_>) -> Result<(), CommandError> {
    power::shutdown(&mut SerialWriter)
}
