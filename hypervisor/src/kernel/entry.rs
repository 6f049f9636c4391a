//! From the loader's jump to the main loop.
//!
//! Initialisation order, and why:
//! 1. TSC origin (uptime starts at entry), COM1 and the logger: everything after can report.
//! 2. GDT/TSS/IDT: from here a fault prints a register dump instead of triple-faulting
//!    through the firmware's tables (which live in memory we do not own).
//! 3. BootInfo validation: nothing else from the loader is trusted before this.
//! 4. TSC calibration, frame allocator, heap: `alloc` works from here on.
//! 5. Config, ACPI, CPU and VT-x probing, the banner, the main loop.
//!
//! Interrupts stay disabled for good: the design is single-core polling (console, NIC,
//! migration and vCPU slices take turns in [`MainLoop`]), so there is no interrupt handler
//! that could race with kernel state, and a vCPU's time slice is bounded by the VMX preemption
//! timer rather than by a host timer interrupt.

use alloc::boxed::Box;

use super::banner::{MemorySummary, write_memory_line, write_version};
use super::boot_info::{from_phys, slice_as_str};
use super::commands::registry;
use super::console_poller::ConsolePoller;
use super::host::{self, Host};
use super::main_loop::MainLoop;
use super::network;
use crate::acpi::power;
use crate::arch::{cpu, gdt, idt, paging, serial, tsc};
use crate::console::{Shell, serial_log};
use crate::memory::global::{self, FRAMES};
use crate::memory::heap;

/// Size of the boot stack static, guard page included: `_start` loads `rsp` with
/// `BOOT_STACK + BOOT_STACK_SIZE`. The kernel's only stack; exceptions that may come with a bad
/// stack (#DF, NMI, #MC) switch to IST stacks (see `arch::gdt`).
pub const BOOT_STACK_SIZE: usize = GUARD_SIZE + 256 * 1024;
const GUARD_SIZE: usize = 4096;

/// The boot stack in `.bss`: its lowest page is unmapped at boot as a guard, so an overflow
/// faults (#DF with a register dump) instead of overwriting `.data` below it.
#[repr(C, align(4096))]
pub struct BootStack([u8; BOOT_STACK_SIZE]);

/// Only the entry stub names it (to load `rsp`) and [`guard_boot_stack`] takes its address;
/// never referenced from Rust.
pub static mut BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);

/// Unmaps the boot stack's guard page.
fn guard_boot_stack() {
    let guard = (&raw const BOOT_STACK) as u64;
    // SAFETY: the guard page is the lowest page of BOOT_STACK, which the stack never reaches
    // unless it overflows; nothing else uses it. The tables are the loader's (identity map).
    match unsafe { paging::unmap_4k(guard) } {
        Ok(()) => {}
        Err(e) => log::warn!("boot stack guard page not installed: {e}"),
    }
}

/// Stops boot with a message on the console.
fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    log::error!("boot failed: {args}");
    log::error!("halted");
    cpu::halt_forever()
}

/// The kernel's Rust entry point, called by `_start` on the boot stack with the physical
/// address of the loader's `BootInfo`.
pub extern "C" fn kernel_main(boot_info_phys: u64) -> ! {
    tsc::set_origin();
    // Without a UART we keep going; there is just no one to tell.
    let serial = serial::init();
    serial_log::init();
    gdt::init();
    idt::init();
    guard_boot_stack();
    let mut version = alloc_free_version();
    log::info!("{} starting", version.as_str());
    if let Err(e) = serial {
        log::warn!("serial: {e}");
    }

    // SAFETY: `boot_info_phys` is what the loader passed in rdi, per the entry contract.
    let boot_info = match unsafe { from_phys(boot_info_phys) } {
        Ok(b) => b,
        Err(e) => fatal(format_args!("{e}")),
    };
    let identity = boot_info.identity_mapped_bytes;

    let (clock, source) = tsc::calibrate();
    log::info!(
        "tsc: {}.{:03} MHz, {}",
        clock.hz / 1_000_000,
        (clock.hz / 1000) % 1000,
        source.as_str()
    );

    global::set_identity_limit(identity);
    let mut frames = FRAMES.lock();
    frames.reset_from(boot_info.memory_regions());
    let heap = match heap::init(&mut frames, identity) {
        Ok(h) => h,
        Err(e) => fatal(format_args!("no memory for the kernel heap: {e}")),
    };
    let totals = frames.totals();
    drop(frames);

    let config_path = slice_as_str(boot_info.config_path, identity).unwrap_or("tern.cfg");
    let config_text = slice_as_str(boot_info.config, identity).unwrap_or_else(|| {
        log::error!("config: text is not readable UTF-8 inside the identity map; ignoring it");
        ""
    });
    let config = match boot_proto::config::parse(config_text) {
        Ok(c) => Some(c),
        Err(e) => {
            // The loader parsed the same bytes successfully, so this means the text was
            // damaged in the hand-over: report it and run without a config.
            log::error!("config: {config_path}: {e}; running without a config");
            None
        }
    };
    let name = config.as_ref().map(|c| c.host.name.clone());

    power::init(
        boot_info.acpi_rsdp,
        boot_info.uefi_runtime_services,
        identity,
    );
    let cpu_info = cpu::identify();
    let vmx = cpu::vmx_status();

    let memory = MemorySummary {
        totals,
        heap_bytes: heap.bytes,
        image_bytes: boot_info.hypervisor_image.len,
        module_count: boot_info.modules().len(),
    };
    version.clear();
    let _ = write_version(&mut version);
    log::info!(
        "{} on host '{}'",
        version.as_str(),
        name.as_deref().unwrap_or("(unnamed)")
    );
    let mut line = alloc::string::String::new();
    let _ = write_memory_line(&mut line, &memory);
    log::info!("{line}");
    log::info!("cpu: {} '{}'", cpu_info.vendor, cpu_info.brand);
    line.clear();
    let _ = vmx.write_summary(&mut line);
    log::info!("{line}");
    line.clear();
    let _ = vmx.write_details(&mut line);
    for detail in line.lines() {
        log::info!("  {}", detail.trim());
    }

    let host = host::set(Host {
        boot_info,
        config_text,
        config,
        cpu: cpu_info,
        vmx,
        tsc_hz: clock.hz,
        tsc_source: source,
        heap,
        memory,
    });
    network::init(host.config.as_ref());
    log::info!(
        "boot complete in {} ms; console ready",
        tsc::uptime_ns() / 1_000_000
    );

    let mut main_loop = MainLoop::new();
    // Future pollers (NIC/smoltcp, migration sessions) are added here.
    // VMs first, so their boot lines come before the first prompt.
    // The host disk before the VMs: VMs with a `host_disk` region boot from it.
    super::host_storage::init(host.config.as_ref());
    let vms = super::vms::start(host);
    main_loop.add(Box::new(ConsolePoller::new(Shell::new(registry()))));
    if let Some(vms) = vms {
        main_loop.add(vms);
    }
    if let Some(net) = network::poller() {
        main_loop.add(net);
    }
    if let Some(migration) = super::migration::start(host) {
        main_loop.add(migration);
    }
    loop {
        main_loop.run_round(tsc::uptime_ns());
    }
}

/// The version line without the heap (it is printed before the heap exists).
fn alloc_free_version() -> VersionLine {
    let mut v = VersionLine {
        buf: [0; 64],
        len: 0,
    };
    let _ = write_version(&mut v);
    v
}

struct VersionLine {
    buf: [u8; 64],
    len: usize,
}

impl VersionLine {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("tern hypervisor")
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

impl core::fmt::Write for VersionLine {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
