//! The host's VMs: VT-x switched on at boot, one VM per `[vm]` section of the config, a
//! main-loop poller that runs them round-robin in preemption-timer slices, the `vm` and
//! `selfcheck` console commands.
//!
//! Why it looks like this:
//! - One global [`VmHost`] behind a spin lock: the poller and the console handlers run on the
//!   same (only) CPU one after the other, so the lock is never contended; it only proves to
//!   the compiler that nobody else holds the VMs while a slice runs.
//! - A slice is [`SLICE_DIVISOR`]-th of a second of TSC (2 ms), bounded by the VMX preemption
//!   timer, and the poller runs one slice per main-loop round: between two slices the console
//!   and the network get their turn, so a spinning guest never makes the host deaf.
//! - Guest lines go straight to COM1 as `[NAME] line`, not through the logger, so an operator
//!   (and a test) reads the guest's own words.
//! - Canary frames are allocated right before and after each VM's RAM and checked by
//!   `selfcheck` (see `kernel::selfcheck`).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::host::Host;
use super::main_loop::{PollResult, Poller};
use super::selfcheck::{CANARY_BYTES, fill_canary, first_canary_mismatch, write_line};
use crate::arch::serial;
use crate::console::attach::attach_banner;
use crate::console::{CommandError, CommandSpec, Invocation};
use crate::memory::{FRAME_SIZE, global, phys_to_ptr};
use crate::vm::console_out::LineOutput;
use crate::vm::machine::{GuestImage, Machine, MachineContext, ManagedMachine};
use crate::vm::state::{VmCommand, VmState};
use crate::vm::virtio_blk::placement::DISK_WINDOW_GPA;
use crate::vm::virtio_blk::{BlockBackend, RamDisk};
use crate::vm::vm_set::{SliceResult, VmSet};
use crate::vmx::frames::FrameSource;
use crate::vmx::hw;
use boot_proto::config::GuestBoot;

/// Block size of RAM disks made from images: the sector, the unit images are checked in.
const SECTOR_BYTES: u32 = 512;

/// A slice is 1/SLICE_DIVISOR s of host TSC: 2 ms.
pub const SLICE_DIVISOR: u64 = 500;

/// Guest RAM, VMCSs and EPT tables from the kernel's frame allocator, inside the identity
/// map (where `phys_to_virt` is the identity).
pub struct KernelFrames;

// SAFETY: `global::allocate_zeroed` returns exclusively owned, zeroed, 4 KiB-aligned frames
// inside the identity map, so `phys_to_virt` (the identity) reaches all of each frame.
unsafe impl FrameSource for KernelFrames {
    fn allocate_zeroed(&mut self) -> Option<u64> {
        global::allocate_zeroed(1, FRAME_SIZE).ok()
    }

    fn free(&mut self, phys: u64) {
        if let Err(e) = global::free(phys, 1) {
            log::error!("vm: freeing frame {phys:#x}: {e}");
        }
    }

    fn phys_to_virt(&self, phys: u64) -> *mut u8 {
        phys_to_ptr(phys)
    }
}

/// Guest serial lines to the console, `[NAME] line`.
pub struct ConsoleLines;

impl LineOutput for ConsoleLines {
    fn line(&mut self, vm: &str, line: &str) {
        let text = format!("[{vm}] {line}\n");
        serial::write_bytes(text.as_bytes());
    }

    fn is_attached(&self, vm: &str) -> bool {
        super::console_poller::ATTACHMENT.lock().is_attached(vm)
    }

    fn raw(&mut self, _vm: &str, bytes: &[u8]) {
        serial::write_bytes(bytes);
    }
}

pub(super) type HostVm = ManagedMachine<ConsoleLines, KernelFrames>;

/// Everything the VMs of this host need.
struct VmHost {
    set: VmSet<HostVm>,
    ctx: MachineContext<KernelFrames>,
    slice_ticks: u64,
    /// Canary frames (physical addresses), two per VM.
    canaries: Vec<u64>,
}

static VMS: spin::Mutex<Option<VmHost>> = spin::Mutex::new(None);
/// Why there are no VMs (set when VT-x could not be used).
static UNAVAILABLE: spin::Once<String> = spin::Once::new();

/// Switch VT-x on, create the configured VMs, start those with `autostart`; returns the
/// poller that runs them, or `None` (with one line on the console) when VT-x is unusable.
pub fn start(host: &Host) -> Option<Box<dyn Poller>> {
    if !host.vmx.is_available() {
        refuse("VT-x not available: no VMs will run");
        return None;
    }
    // SAFETY: called once, on the boot CPU, at CPL 0 with paging and NE on.
    let vmx = match unsafe { hw::enable(&mut KernelFrames) } {
        Ok(v) => v,
        Err(e) => {
            refuse(&format!(
                "VT-x not available: VMXON failed: {e}; no VMs will run"
            ));
            return None;
        }
    };
    let mut vm_host = VmHost {
        set: VmSet::new(),
        ctx: MachineContext {
            vmx,
            frames: KernelFrames,
        },
        slice_ticks: (host.tsc_hz / SLICE_DIVISOR).max(1),
        canaries: Vec::new(),
    };
    let configs = host
        .config
        .as_ref()
        .map(|c| c.vms.as_slice())
        .unwrap_or(&[]);
    for (i, vm) in configs.iter().enumerate() {
        let vpid = u16::try_from(i + 1).unwrap_or(u16::MAX);
        if let Err(e) = create_vm(host, &mut vm_host, vm, vpid) {
            log::error!("vm {}: not created: {e}", vm.name);
        }
    }
    log::info!(
        "vm: {} VM(s), slices of {} TSC ticks",
        vm_host.set.iter().count(),
        vm_host.slice_ticks
    );
    *VMS.lock() = Some(vm_host);
    Some(Box::new(VmPoller))
}

fn refuse(reason: &str) {
    log::warn!("{reason}");
    UNAVAILABLE.call_once(|| reason.into());
}

fn create_vm(
    host: &Host,
    vm_host: &mut VmHost,
    vm: &boot_proto::config::VmConfig,
    vpid: u16,
) -> Result<(), String> {
    let image = match &vm.boot {
        GuestBoot::Pvh { .. } => GuestImage::Pvh(module_bytes(host, &vm.name)?),
        GuestBoot::Linux { initrd, .. } => GuestImage::Linux {
            kernel: module_bytes(host, &vm.name)?,
            initrd: match initrd {
                Some(_) => module_bytes(host, &format!("{}.initrd", vm.name))?,
                None => &[],
            },
        },
    };
    // The guest learns the TSC rate from CPUID 0x4000_0010 (`vm::cpuid`); its command line
    // is the operator's, untouched.
    let tsc_khz = u32::try_from(host.tsc_hz / 1000).unwrap_or(u32::MAX);
    let features = super::cpu_models::vm_features(&vm.cpu)?;
    let ctx = &mut vm_host.ctx;
    vm_host.canaries.push(new_canary(&mut ctx.frames)?);
    let mut machine = Machine::create(
        &mut ctx.vmx,
        &mut ctx.frames,
        &vm.name,
        image,
        vm.memory_bytes,
        &vm.cmdline,
        vpid,
        tsc_khz,
        ConsoleLines,
    )
    .map_err(|e| format!("{e}"))?;
    machine.set_cpu_features(features);
    vm_host.canaries.push(new_canary(&mut ctx.frames)?);
    if let Some(disk) = &vm.disk {
        let attached = ram_disk(host, &vm.name)
            .and_then(|d| machine.attach_disk(d).map_err(|e| format!("{e}")));
        if let Err(e) = attached {
            machine.destroy(&mut ctx.vmx, &mut ctx.frames);
            return Err(format!(
                "disk {} (tern.cfg line {}): {e}",
                disk.path, disk.line
            ));
        }
    } else if let Some(region) = &vm.host_disk {
        // No image: the VM's disk is its region of the host disk, as the last boot left it.
        let attached = super::host_storage::region_disk(&vm.name)
            .and_then(|d| machine.attach_disk(d).map_err(|e| format!("{e}")));
        if let Err(e) = attached {
            machine.destroy(&mut ctx.vmx, &mut ctx.frames);
            return Err(format!(
                "host_disk {} (tern.cfg line {}): {e}",
                region.region, region.line
            ));
        }
    }
    if vm.autostart {
        machine
            .command(&mut ctx.vmx, &mut ctx.frames, VmCommand::Start)
            .map_err(|e| format!("start: {e}"))?;
    }
    let disk_line = machine.disk().map(|d| {
        let sectors = d.device().backend().capacity_sectors();
        let kind = d.device().backend().kind();
        format!(
            ", disk vda {} KiB ({kind}) at {DISK_WINDOW_GPA:#x}",
            sectors / 2
        )
    });
    log::info!(
        "vm {}: {} MiB, cpu {}{}, {}",
        vm.name,
        vm.memory_bytes >> 20,
        vm.cpu,
        disk_line.unwrap_or_default(),
        machine.state().name()
    );
    vm_host
        .set
        .add(ManagedMachine::new(machine))
        .map_err(|vm| format!("a VM named '{}' exists already", vm.machine.name()))
}

/// The bytes of the loader's module named `name` (a guest image, kernel or initrd).
fn module_bytes(host: &Host, name: &str) -> Result<&'static [u8], String> {
    let module = host
        .boot_info
        .modules()
        .iter()
        .find(|m| m.name() == Some(name))
        .ok_or_else(|| format!("the loader passed no image module named '{name}'"))?;
    let end = module.phys.checked_add(module.len);
    if end.is_none_or(|end| end > global::identity_limit()) {
        return Err(format!(
            "image module '{name}' at {:#x} is outside the identity map",
            module.phys
        ));
    }
    // SAFETY: the loader placed the module in memory it reserved for it (never handed to the
    // frame allocator) and inside the identity map (checked above); it is never written.
    Ok(unsafe { core::slice::from_raw_parts(phys_to_ptr::<u8>(module.phys), module.len as usize) })
}

/// The RAM disk of VM `vm`, seeded from its `NAME.disk` module (copied into the heap: the
/// module stays as the loader placed it).
fn ram_disk(host: &Host, vm: &str) -> Result<RamDisk, String> {
    let name = boot_proto::config::disk_module_name(vm);
    let image = module_bytes(host, &name)?;
    boot_proto::config::check_disk_image_len(image.len() as u64).map_err(|e| format!("{e}"))?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(image.len())
        .map_err(|_| format!("out of heap for a {} KiB RAM disk", image.len() / 1024))?;
    bytes.extend_from_slice(image);
    RamDisk::from_image(bytes, SECTOR_BYTES, false).map_err(|e| format!("{e}"))
}

fn new_canary(frames: &mut KernelFrames) -> Result<u64, String> {
    let phys = frames
        .allocate_zeroed()
        .ok_or_else(|| String::from("out of memory for a canary frame"))?;
    // SAFETY: a fresh frame from the allocator, exclusively ours and inside the identity map;
    // this is its only reference while it is filled.
    let frame = unsafe { core::slice::from_raw_parts_mut(phys_to_ptr::<u8>(phys), CANARY_BYTES) };
    fill_canary(phys, frame);
    Ok(phys)
}

/// The bytes of a canary frame, for checking.
fn canary_bytes(phys: u64) -> &'static [u8] {
    // SAFETY: `phys` is a canary frame filled by `new_canary`, owned by the VM host for good
    // (never freed), inside the identity map, and never written by the hypervisor again (no
    // guest can reach it either: that is what `selfcheck` verifies).
    unsafe { core::slice::from_raw_parts(phys_to_ptr::<u8>(phys), CANARY_BYTES) }
}

/// Runs `f` on the VM set and the VMX context (for migration); `None` without VT-x.
pub(super) fn with_vms<R>(
    f: impl FnOnce(&mut VmSet<HostVm>, &mut MachineContext<KernelFrames>) -> R,
) -> Option<R> {
    let mut guard = VMS.lock();
    let h = guard.as_mut()?;
    Some(f(&mut h.set, &mut h.ctx))
}

/// `info block`: one line per VM disk (`vm::virtio_blk::info`).
pub fn info_block(out: &mut dyn core::fmt::Write) -> Result<(), CommandError> {
    let mut guard = VMS.lock();
    let h = guard.as_mut().ok_or_else(unavailable)?;
    let mut any = false;
    for vm in h.set.iter_mut() {
        let name = alloc::string::String::from(vm.machine.name());
        let outcome = vm.machine.block_migrate_outcome().cloned();
        if let Some(disk) = vm.machine.disk_mut() {
            let kind = disk.device().backend().kind();
            let progress = disk.device().backend().mirror_progress();
            writeln!(out, "{}", disk.block_info(&name, kind))?;
            if let Some(p) = progress {
                writeln!(out, "  {p}")?;
            } else if let Some(o) = outcome {
                writeln!(out, "  last {o}")?;
            }
            any = true;
        }
    }
    if !any {
        writeln!(
            out,
            "no VM has a disk ([vm NAME] disk = or host_disk = in tern.cfg)"
        )?;
    }
    Ok(())
}

/// Runs one VM slice per main-loop round.
pub struct VmPoller;

impl Poller for VmPoller {
    fn name(&self) -> &'static str {
        "vms"
    }

    fn poll(&mut self, _now_ns: u64) -> PollResult {
        let mut guard = VMS.lock();
        let Some(h) = guard.as_mut() else {
            return PollResult::Idle;
        };
        let ticks = h.slice_ticks;
        let report = |vm: &str, e: &dyn core::fmt::Display| log::error!("vm {vm}: stopped: {e}");
        match h.set.run_next_slice(&mut h.ctx, ticks, report) {
            SliceResult::Idle => PollResult::Idle,
            SliceResult::Ran | SliceResult::Crashed => PollResult::Busy,
        }
    }
}

/// `vm ...` and `selfcheck`.
pub static VM_COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "vm",
        usage: "list | info NAME | start|pause|resume|stop NAME",
        help: "list the VMs, show one (state, memory, exits, slices), or change its state",
        min_args: 0,
        max_args: 8,
        handler: vm_command,
    },
    CommandSpec {
        name: "vm console",
        usage: "NAME",
        help: "attach this console to VM NAME's serial port (Ctrl-] returns to tern>)",
        min_args: 1,
        max_args: 1,
        handler: vm_console,
    },
    CommandSpec {
        name: "selfcheck",
        usage: "",
        help: "BLAKE3 digests of the hypervisor's code, the canaries and idle VMs' RAM",
        min_args: 0,
        max_args: 0,
        handler: selfcheck,
    },
];

/// Why this host runs no VMs (for migration's refusal), or a generic reason.
pub(super) fn unavailable_reason() -> String {
    UNAVAILABLE
        .get()
        .cloned()
        .unwrap_or_else(|| String::from("VT-x not available"))
}

fn unavailable() -> CommandError {
    CommandError::Failed(
        UNAVAILABLE
            .get()
            .cloned()
            .unwrap_or_else(|| String::from("VT-x not available")),
    )
}

fn vm_command(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let args = inv.args.join(" ");
    let mut guard = VMS.lock();
    let h = guard.as_mut().ok_or_else(unavailable)?;
    h.set.execute(&mut h.ctx, &args, inv.out)?;
    Ok(())
}

fn vm_console(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let name = inv.args.first().map(String::as_str).unwrap_or("");
    {
        let mut guard = VMS.lock();
        let h = guard.as_mut().ok_or_else(unavailable)?;
        if h.set.get_mut(name).is_none() {
            return Err(CommandError::Failed(format!("no VM named '{name}'")));
        }
    }
    writeln!(inv.out, "{}", attach_banner(name))?;
    super::console_poller::ATTACHMENT.lock().attach(name);
    Ok(())
}

/// Console keystrokes for VM `name`'s UART; how many it took, or `None` if there is no
/// such VM (any more).
pub(super) fn serial_input(name: &str, bytes: &[u8]) -> Option<usize> {
    let mut guard = VMS.lock();
    let vm = guard.as_mut()?.set.get_mut(name)?;
    Some(vm.machine.serial_input(bytes))
}

unsafe extern "C" {
    static __image_start: u8;
    static __readonly_end: u8;
}

fn selfcheck(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let out = &mut *inv.out;
    let start = core::ptr::addr_of!(__image_start);
    let end = core::ptr::addr_of!(__readonly_end);
    let len = (end as usize).saturating_sub(start as usize);
    // SAFETY: the linker script puts text, rodata and eh_frame between these two symbols; the
    // loader maps them readable (and not writable) for the kernel's whole life.
    let image = unsafe { core::slice::from_raw_parts(start, len) };
    write_line(
        out,
        "image",
        &blake3::hash(image),
        format_args!(
            "text+rodata {:#x}-{:#x} bytes={len}",
            start as usize, end as usize
        ),
    )?;
    let guard = VMS.lock();
    let Some(h) = guard.as_ref() else {
        return Ok(());
    };
    let mut hasher = blake3::Hasher::new();
    let mut damaged = 0usize;
    for &phys in &h.canaries {
        let bytes = canary_bytes(phys);
        if let Some(offset) = first_canary_mismatch(phys, bytes) {
            damaged += 1;
            writeln!(
                out,
                "selfcheck CANARY-DAMAGED frame={phys:#x} offset={offset:#x}"
            )?;
        }
        hasher.update(&phys.to_le_bytes());
        hasher.update(bytes);
    }
    write_line(
        out,
        "canaries",
        &hasher.finalize(),
        format_args!("frames={} damaged={damaged}", h.canaries.len()),
    )?;
    for vm in h.set.iter() {
        let m = &vm.machine;
        if m.state() == VmState::Running {
            writeln!(
                out,
                "selfcheck vm {} skipped: running (its RAM is its own to change)",
                m.name()
            )?;
            continue;
        }
        let mut hasher = blake3::Hasher::new();
        m.hash_ram(&h.ctx.frames, &mut hasher);
        write_line(
            out,
            &format!("vm {}", m.name()),
            &hasher.finalize(),
            format_args!("state={} bytes={}", m.state().name(), m.ram_bytes()),
        )?;
    }
    Ok(())
}
