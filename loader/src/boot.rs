//! The boot sequence, step by step, with every failure reported and nothing half-started.

use crate::error::LoaderError;
use crate::esp::Esp;
use crate::{guest_images, handover, hypervisor_elf, memory_map, page_tables};
use alloc::string::ToString;
use boot_proto::{BootInfo, PhysSlice, memory_type};
use uefi::boot::{AllocateType, MemoryType};
use uefi::mem::memory_map::MemoryMap;
use uefi::{Status, println};

/// Where the config lives on the ESP.
pub const CONFIG_PATH: &str = "tern/tern.cfg";
/// Where the hypervisor lives on the ESP.
pub const HYPERVISOR_PATH: &str = "tern/hypervisor.elf";
/// Largest config file accepted.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Stack the hypervisor entry runs on until it switches to its own.
const HANDOVER_STACK_BYTES: usize = 64 * 1024;

/// Allocates `bytes` (rounded up to 4 KiB) of zeroed pages of the given tern memory type.
/// The memory is never freed: it belongs to the hypervisor after the hand-over.
// `what` is only a label for the error message; the returned memory is fresh, not borrowed.
#[allow(clippy::mut_from_ref)]
pub fn allocate_zeroed(
    ty: u32,
    bytes: usize,
    what: &'static str,
) -> Result<&'static mut [u8], LoaderError> {
    let pages = bytes.div_ceil(4096).max(1);
    let ptr = uefi::boot::allocate_pages(AllocateType::AnyPages, MemoryType::custom(ty), pages)
        .map_err(|_| LoaderError::OutOfMemory { what, bytes })?;
    // SAFETY: the firmware just gave us `pages` pages at `ptr`, identity-mapped, exclusively
    // ours and never freed, so a 'static mutable slice over them is sound once zeroed.
    unsafe {
        core::ptr::write_bytes(ptr.as_ptr(), 0, pages * 4096);
        Ok(core::slice::from_raw_parts_mut(ptr.as_ptr(), pages * 4096))
    }
}

/// Copies `bytes` into fresh pages of type `ty`.
fn place(ty: u32, bytes: &[u8], what: &'static str) -> Result<PhysSlice, LoaderError> {
    let dst = allocate_zeroed(ty, bytes.len(), what)?;
    dst[..bytes.len()].copy_from_slice(bytes);
    Ok(PhysSlice {
        phys: dst.as_ptr() as u64,
        len: bytes.len() as u64,
    })
}

/// Entry point of the boot sequence; only returns on failure.
pub fn run() -> Status {
    if let Err(e) = uefi::helpers::init() {
        return e.status();
    }
    println!("tern loader {}", env!("CARGO_PKG_VERSION"));
    match prepare() {
        Ok(prepared) => hand_over(prepared),
        Err(e) => {
            println!("tern loader: error: {e}");
            println!("tern loader: boot stopped; nothing was started. Fix the problem and reboot.");
            loop {
                uefi::boot::stall(core::time::Duration::from_secs(3600));
            }
        }
    }
}

/// Everything needed for the jump, built while boot services still exist.
struct Prepared {
    boot_info: &'static mut BootInfo,
    entry: u64,
    stack_top: u64,
    pml4: u64,
}

fn prepare() -> Result<Prepared, LoaderError> {
    let mut esp = Esp::open()?;
    let config_bytes = esp
        .read(CONFIG_PATH)
        .map_err(|status| LoaderError::FileRead {
            path: CONFIG_PATH.to_string(),
            status,
        })?;
    if config_bytes.len() > MAX_CONFIG_BYTES {
        return Err(LoaderError::ConfigTooLarge {
            path: CONFIG_PATH.to_string(),
            len: config_bytes.len(),
        });
    }
    let config_text =
        core::str::from_utf8(&config_bytes).map_err(|e| LoaderError::ConfigNotUtf8 {
            path: CONFIG_PATH.to_string(),
            offset: e.valid_up_to(),
        })?;
    let config = boot_proto::config::parse(config_text).map_err(|error| LoaderError::Config {
        path: CONFIG_PATH.to_string(),
        error,
    })?;
    println!(
        "tern loader: {CONFIG_PATH}: host '{}', {} VM(s)",
        config.host.name,
        config.vms.len()
    );
    if config.vms.len() > boot_proto::MAX_MODULES {
        return Err(LoaderError::TooManyVms {
            count: config.vms.len(),
        });
    }

    let boot_info_mem = allocate_zeroed(
        memory_type::BOOT_DATA,
        core::mem::size_of::<BootInfo>(),
        "boot info",
    )?;
    let boot_info_ptr = boot_info_mem.as_mut_ptr().cast::<BootInfo>();
    // SAFETY: the allocation is large enough, page aligned (>= BootInfo's alignment), ours
    // forever; we initialise it with a valid value before taking a reference.
    let boot_info: &'static mut BootInfo = unsafe {
        boot_info_ptr.write(BootInfo::new());
        &mut *boot_info_ptr
    };
    boot_info.config = place(memory_type::BOOT_DATA, &config_bytes, "config text")?;
    boot_info.config_path = place(
        memory_type::BOOT_DATA,
        CONFIG_PATH.as_bytes(),
        "config path",
    )?;

    let images: usize = config
        .vms
        .iter()
        .map(guest_images::module_count)
        .sum::<usize>()
        + config.vms.iter().filter(|v| v.disk.is_some()).count();
    if images > boot_proto::MAX_MODULES {
        return Err(LoaderError::TooManyImages { count: images });
    }
    let mut count = 0;
    for vm in &config.vms {
        for file in guest_images::read(&mut esp, CONFIG_PATH, vm)? {
            let placed = place(memory_type::MODULE, &file.bytes, "a guest image")?;
            boot_info.modules[count] = guest_images::module(&file, placed);
            count += 1;
            println!(
                "tern loader: VM '{}': {} ({} KiB)",
                vm.name,
                file.path,
                file.bytes.len() / 1024
            );
        }
        if let Some(disk) = &vm.disk {
            let placed = load_disk(&mut esp, vm, disk)?;
            let name = boot_proto::config::disk_module_name(&vm.name);
            boot_info.modules[count] = boot_proto::Module::new(&name, placed.phys, placed.len);
            count += 1;
        }
    }
    boot_info.module_count = count as u32;

    let elf_bytes = esp
        .read(HYPERVISOR_PATH)
        .map_err(|status| LoaderError::FileRead {
            path: HYPERVISOR_PATH.to_string(),
            status,
        })?;
    let image = hypervisor_elf::load(HYPERVISOR_PATH, &elf_bytes)?;
    drop(elf_bytes);
    boot_info.hypervisor_image = PhysSlice {
        phys: image.phys_base,
        len: image.len_bytes(),
    };
    println!(
        "tern loader: {HYPERVISOR_PATH}: {} KiB at {:#x}, entry {:#x}",
        image.len_bytes() / 1024,
        image.phys_base,
        image.entry
    );

    boot_info.acpi_rsdp = find_rsdp();
    boot_info.uefi_runtime_services = uefi::table::system_table_raw()
        .map(|st| {
            // SAFETY: the system table pointer from the firmware is valid while we run.
            unsafe { st.as_ref().runtime_services as u64 }
        })
        .unwrap_or(0);

    let map =
        uefi::boot::memory_map(MemoryType::LOADER_DATA).map_err(|_| LoaderError::OutOfMemory {
            what: "the memory map",
            bytes: 0,
        })?;
    // Leave head-room: the map grows by a few entries before ExitBootServices.
    if map.len() + 32 > boot_proto::MAX_MEMORY_REGIONS {
        return Err(LoaderError::MemoryMapTooLarge { entries: map.len() });
    }
    let identity = page_tables::identity_span(memory_map::highest_address(&map));
    drop(map);
    let pml4 = page_tables::build(identity, &image)?;
    boot_info.page_table_root = pml4;
    boot_info.identity_mapped_bytes = identity;
    let stack = allocate_zeroed(
        memory_type::BOOT_DATA,
        HANDOVER_STACK_BYTES,
        "hand-over stack",
    )?;
    let stack_top = stack.as_ptr() as u64 + HANDOVER_STACK_BYTES as u64;
    println!(
        "tern loader: identity map {} GiB; handing over to the hypervisor (output continues on COM1)",
        identity >> 30
    );
    Ok(Prepared {
        boot_info,
        entry: image.entry,
        stack_top,
        pml4,
    })
}

/// Reads VM `vm`'s disk image and places it as a module, after checking that it can be a
/// disk (whole sectors, not empty, not larger than a RAM disk may be).
fn load_disk(
    esp: &mut Esp,
    vm: &boot_proto::config::VmConfig,
    disk: &boot_proto::config::DiskConfig,
) -> Result<PhysSlice, LoaderError> {
    let bytes = esp
        .read(&disk.path)
        .map_err(|status| LoaderError::DiskRead {
            config: CONFIG_PATH.to_string(),
            line: disk.line,
            vm: vm.name.clone(),
            path: disk.path.clone(),
            status,
        })?;
    boot_proto::config::check_disk_image_len(bytes.len() as u64).map_err(|error| {
        LoaderError::DiskImage {
            config: CONFIG_PATH.to_string(),
            line: disk.line,
            vm: vm.name.clone(),
            path: disk.path.clone(),
            error,
        }
    })?;
    let placed = place(memory_type::MODULE, &bytes, "a disk image")?;
    println!(
        "tern loader: VM '{}': disk {} ({} KiB)",
        vm.name,
        disk.path,
        bytes.len() / 1024
    );
    Ok(placed)
}

/// ACPI 2.0 RSDP if the firmware has one, else ACPI 1.0, else 0.
fn find_rsdp() -> u64 {
    uefi::system::with_config_table(|entries| {
        let find = |guid| {
            entries
                .iter()
                .find(|e| e.guid == guid)
                .map(|e| e.address as u64)
        };
        find(uefi::table::cfg::ConfigTableEntry::ACPI2_GUID)
            .or_else(|| find(uefi::table::cfg::ConfigTableEntry::ACPI_GUID))
            .unwrap_or(0)
    })
}

fn hand_over(p: Prepared) -> ! {
    // SAFETY: nothing borrowed from boot services outlives this point: the ESP handle and
    // file buffers were dropped in `prepare`, and we print nothing after this.
    let map = unsafe { uefi::boot::exit_boot_services(None) };
    // On overflow (cannot print any more) the map is left empty, which the hypervisor
    // reports as a boot error.
    let count = memory_map::convert(&map, &mut p.boot_info.memory_regions).unwrap_or_default();
    p.boot_info.memory_region_count = count as u32;
    // SAFETY: reading the TSC has no side effects.
    p.boot_info.tsc_at_handover = unsafe { core::arch::x86_64::_rdtsc() };
    let boot_info = p.boot_info as *mut BootInfo as u64;
    // The memory map stays allocated (LoaderUsed) so the hypervisor never reuses it.
    core::mem::forget(map);
    // SAFETY: page tables identity-map all RAM (this code, the stack and the boot info
    // included) and map the hypervisor image at its link address (`build`).
    unsafe { handover::jump_to_hypervisor(p.pml4, p.stack_top, p.entry, boot_info) }
}
