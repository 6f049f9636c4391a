//! The host disk at boot and `block_migrate` on the console.
//!
//! At boot, before any VM is created: when `[host] host_disk` names a drive, probe it
//! (IDENTIFY through `storage::ata`), check every VM's `host_disk = SIZE@OFFSET` against its
//! size and against each other (`storage::region`), and keep the disk for the VMs. Any
//! failure is one log line naming the drive or the VMs and tern.cfg lines; the VMs that
//! wanted a region then get no host disk (and fail to be created if it was their only
//! disk), everything else boots.
//!
//! `block_migrate VM vda host|ram` starts moving a running VM's disk (`storage::mirror`);
//! the main loop advances it one chunk per disk poll; `info block` shows its progress and
//! `block_migrate_cancel VM` stops it with the source kept.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;

use alloc::vec::Vec;

use spin::Mutex;

use crate::arch::ata_ports::LegacyAtaPorts;
use crate::console::{CommandError, CommandSpec, Invocation};
use crate::storage::ata::{AtaDisk, DriveSlot};
use crate::storage::host_disk::{HostDiskRegion, SharedAtaDisk};
use crate::storage::region::{RegionClaim, check_claims};
use crate::storage::{DynAtaPorts, HostDisk, VmDisk};
use crate::vm::virtio_blk::{BlockBackend, RamDisk};

/// The probed host disk and the regions carved from it.
struct HostStorage {
    slot: DriveSlot,
    disk: SharedAtaDisk<DynAtaPorts>,
    claims: Vec<RegionClaim>,
}

static HOST_STORAGE: Mutex<Option<HostStorage>> = Mutex::new(None);

/// Why the host disk is not available (shown when a VM or a command needs it).
static HOST_STORAGE_ERROR: Mutex<Option<String>> = Mutex::new(None);

fn claims_of(config: &boot_proto::config::Config) -> Vec<RegionClaim> {
    config
        .vms
        .iter()
        .filter_map(|vm| {
            vm.host_disk.map(|h| RegionClaim {
                vm: vm.name.clone(),
                region: h.region,
                line: h.line,
            })
        })
        .collect()
}

/// Probes `[host] host_disk` and checks the VMs' regions; logs the outcome.
pub fn init(config: Option<&boot_proto::config::Config>) {
    let Some(config) = config else {
        return;
    };
    let claims = claims_of(config);
    let result = probe(config, claims);
    match result {
        Ok(Some(storage)) => {
            *HOST_STORAGE.lock() = Some(storage);
        }
        Ok(None) => {}
        Err(e) => {
            log::error!("host disk: {e}");
            *HOST_STORAGE_ERROR.lock() = Some(e);
        }
    }
}

fn probe(
    config: &boot_proto::config::Config,
    claims: Vec<RegionClaim>,
) -> Result<Option<HostStorage>, String> {
    let Some(drive) = &config.host.host_disk else {
        if let Some(first) = claims.first() {
            return Err(format!(
                "{}",
                crate::storage::region::CarveError::NoHostDisk {
                    vm: first.vm.clone(),
                    line: first.line,
                }
            ));
        }
        return Ok(None);
    };
    let slot = DriveSlot::parse(&drive.drive)
        .map_err(|e| format!("line {}: [host] host_disk: {e}", drive.line))?;
    // SAFETY: called once at boot, after the loader exited UEFI boot services (no firmware
    // driver touches the channel any more), and this is the only value for this channel.
    let ports: DynAtaPorts = Box::new(unsafe { LegacyAtaPorts::new(slot.channel) });
    let disk = AtaDisk::probe(ports, slot)
        .map_err(|e| format!("line {}: [host] host_disk = {slot}: {e}", drive.line))?;
    let bytes = disk.sectors().saturating_mul(512);
    check_claims(&claims, bytes).map_err(|e| format!("{e}"))?;
    log::info!(
        "host disk {slot}: \"{}\", {} MiB, {} VM region(s)",
        disk.identity().model,
        bytes >> 20,
        claims.len()
    );
    Ok(Some(HostStorage {
        slot,
        disk: Arc::new(Mutex::new(disk)),
        claims,
    }))
}

/// VM `vm`'s region of the host disk as a disk backend.
pub fn region_disk(vm: &str) -> Result<HostDisk, String> {
    let guard = HOST_STORAGE.lock();
    let Some(storage) = guard.as_ref() else {
        let why = HOST_STORAGE_ERROR
            .lock()
            .clone()
            .unwrap_or_else(|| String::from("no host disk: set [host] host_disk in tern.cfg"));
        return Err(why);
    };
    let claim = storage
        .claims
        .iter()
        .find(|c| c.vm == vm)
        .ok_or_else(|| format!("[vm {vm}] has no host_disk = SIZE@OFFSET in tern.cfg"))?;
    HostDiskRegion::new(storage.disk.clone(), claim.region).ok_or_else(|| {
        format!(
            "[vm {vm}] host_disk = {} does not lie on {}",
            claim.region, storage.slot
        )
    })
}

/// A zeroed RAM disk of `bytes` bytes (the target of `block_migrate VM vda ram`).
fn blank_ram_disk(bytes: u64) -> Result<RamDisk, String> {
    let len = usize::try_from(bytes).map_err(|_| String::from("disk too large"))?;
    if bytes > boot_proto::config::MAX_DISK_BYTES {
        return Err(format!(
            "a RAM disk holds at most {} MiB; this disk has {} MiB",
            boot_proto::config::MAX_DISK_BYTES >> 20,
            bytes >> 20
        ));
    }
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| format!("out of heap for a {} KiB RAM disk", len / 1024))?;
    v.resize(len, 0);
    RamDisk::from_image(v, 512, false).map_err(|e| format!("{e}"))
}

fn block_migrate(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let [vm, disk, backend] = inv.args else {
        return Err(CommandError::BadArgument(
            "usage: block_migrate VM vda host|ram".into(),
        ));
    };
    if disk != "vda" {
        return Err(CommandError::BadArgument(format!(
            "disk '{disk}': a VM has one disk, vda"
        )));
    }
    let result = super::vms::with_vms(|set, _ctx| {
        let managed = set
            .get_mut(vm)
            .ok_or_else(|| format!("no VM named '{vm}'"))?;
        let machine = &mut managed.machine;
        let size = machine
            .disk()
            .map(|d| d.device().backend().capacity_sectors() * 512)
            .ok_or_else(|| format!("VM {vm} has no disk"))?;
        let current = machine.disk().map(|d| d.device().backend().kind());
        if current == Some(backend.as_str()) {
            return Err(format!("{vm}/vda is on the {backend} backend already"));
        }
        let target: VmDisk = match backend.as_str() {
            "host" => region_disk(vm)?.into(),
            "ram" => blank_ram_disk(size)?.into(),
            other => return Err(format!("backend '{other}': expected host or ram")),
        };
        machine.start_block_migrate(target)?;
        Ok(size)
    });
    match result {
        None => Err(CommandError::Failed("no VMs run on this host".into())),
        Some(Err(e)) => Err(CommandError::Failed(format!("block_migrate: {e}"))),
        Some(Ok(size)) => {
            writeln!(
                inv.out,
                "block_migrate {vm}/vda -> {backend}: started ({} KiB to copy; `info block` \
                 shows progress)",
                size / 1024
            )?;
            Ok(())
        }
    }
}

fn block_migrate_cancel(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let [vm] = inv.args else {
        return Err(CommandError::BadArgument(
            "usage: block_migrate_cancel VM".into(),
        ));
    };
    let result = super::vms::with_vms(|set, _ctx| {
        let managed = set
            .get_mut(vm)
            .ok_or_else(|| format!("no VM named '{vm}'"))?;
        managed.machine.cancel_block_migrate()
    });
    match result {
        None => Err(CommandError::Failed("no VMs run on this host".into())),
        Some(Err(e)) => Err(CommandError::Failed(format!("block_migrate_cancel: {e}"))),
        Some(Ok(())) => {
            writeln!(
                inv.out,
                "block_migrate {vm}/vda: cancelling; the source disk stays"
            )?;
            Ok(())
        }
    }
}

/// Most MiB `host_disk_bench` moves.
const MAX_BENCH_MIB: u64 = 64;

/// `host_disk_bench MIB`: the backends' raw rates, for `cargo xtask bench storage`. Reads
/// MIB from the start of the host disk, writes the same bytes back (contents unchanged: the
/// command runs to completion before any VM runs again), and copies as many bytes in RAM.
fn host_disk_bench(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let mib: u64 = inv
        .args
        .first()
        .and_then(|a| a.parse().ok())
        .filter(|&m| (1..=MAX_BENCH_MIB).contains(&m))
        .ok_or_else(|| {
            CommandError::BadArgument(format!("MIB: a number from 1 to {MAX_BENCH_MIB}"))
        })?;
    let guard = HOST_STORAGE.lock();
    let storage = guard
        .as_ref()
        .ok_or_else(|| CommandError::Failed("no host disk ([host] host_disk)".into()))?;
    let bytes = mib << 20;
    let chunk = 128 * 1024usize;
    let mut buf = Vec::new();
    buf.try_reserve_exact(chunk)
        .map_err(|_| CommandError::Failed("out of heap for the buffer".into()))?;
    buf.resize(chunk, 0);
    let mut disk = storage.disk.lock();
    if disk.sectors().saturating_mul(512) < bytes {
        return Err(CommandError::Failed(format!(
            "the host disk is smaller than {mib} MiB"
        )));
    }
    let (mut read_ticks, mut write_ticks) = (0u64, 0u64);
    let mut at = 0u64;
    while at < bytes {
        let lba = at / 512;
        let t0 = crate::arch::tsc::rdtsc();
        disk.read(lba, &mut buf)
            .map_err(|e| CommandError::Failed(format!("{e}")))?;
        let t1 = crate::arch::tsc::rdtsc();
        disk.write(lba, &buf)
            .map_err(|e| CommandError::Failed(format!("{e}")))?;
        let t2 = crate::arch::tsc::rdtsc();
        read_ticks += t1.saturating_sub(t0);
        write_ticks += t2.saturating_sub(t1);
        at += chunk as u64;
    }
    drop(disk);
    drop(guard);
    let mut ram = Vec::new();
    ram.try_reserve_exact(chunk)
        .map_err(|_| CommandError::Failed("out of heap for the buffer".into()))?;
    ram.resize(chunk, 0u8);
    let t0 = crate::arch::tsc::rdtsc();
    at = 0;
    while at < bytes {
        ram.copy_from_slice(core::hint::black_box(&buf));
        core::hint::black_box(&mut ram);
        at += chunk as u64;
    }
    let ram_ticks = crate::arch::tsc::rdtsc().saturating_sub(t0);
    let hz = u128::from(crate::arch::tsc::clock().hz.max(1));
    let us = |ticks: u64| (u128::from(ticks) * 1_000_000 / hz) as u64;
    writeln!(
        inv.out,
        "host_disk_bench {mib} MiB: read_us={} write_us={} ram_copy_us={}",
        us(read_ticks),
        us(write_ticks),
        us(ram_ticks)
    )?;
    Ok(())
}

/// `block_migrate` and `block_migrate_cancel`.
pub static BLOCK_COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "block_migrate",
        usage: "VM vda host|ram",
        help: "move a running VM's disk to the host disk or to RAM (copy, mirror writes, verify, cut over)",
        min_args: 3,
        max_args: 3,
        handler: block_migrate,
    },
    CommandSpec {
        name: "block_migrate_cancel",
        usage: "VM",
        help: "stop a running block_migrate; the source disk stays authoritative",
        min_args: 1,
        max_args: 1,
        handler: block_migrate_cancel,
    },
    CommandSpec {
        name: "host_disk_bench",
        usage: "MIB",
        help: "raw rates: read and rewrite MIB of the host disk's start, copy MIB in RAM (pauses the VMs meanwhile)",
        min_args: 1,
        max_args: 1,
        handler: host_disk_bench,
    },
];
