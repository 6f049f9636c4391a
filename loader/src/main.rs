//! tern's UEFI loader.
//!
//! It does the few things only firmware can help with and then gets out of the way:
//! read `\tern\tern.cfg` from the ESP it was started from and validate it completely (a bad
//! line stops the boot with `tern.cfg:LINE: what is wrong`, so nothing boots half-configured);
//! load the hypervisor ELF and every configured guest image; find the ACPI RSDP; build page
//! tables (identity map of physical memory + the hypervisor at its link address); exit boot
//! services; convert the final memory map into [`boot_proto::BootInfo`]; jump.
//!
//! Every allocation that outlives the loader uses a tern memory type from
//! [`boot_proto::memory_type`], so the memory map itself tells the hypervisor what is whose.
#![cfg_attr(target_os = "uefi", no_std, no_main)]

#[cfg(target_os = "uefi")]
extern crate alloc;

#[cfg(target_os = "uefi")]
mod boot;
#[cfg(target_os = "uefi")]
mod error;
#[cfg(target_os = "uefi")]
mod esp;
#[cfg(target_os = "uefi")]
mod guest_images;
#[cfg(target_os = "uefi")]
mod handover;
#[cfg(target_os = "uefi")]
mod hypervisor_elf;
#[cfg(target_os = "uefi")]
mod memory_map;
#[cfg(target_os = "uefi")]
mod page_tables;

#[cfg(target_os = "uefi")]
#[uefi::entry]
fn efi_main() -> uefi::Status {
    boot::run()
}

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!("the tern loader is a UEFI application: build it with `cargo xtask build`");
    std::process::exit(2);
}
