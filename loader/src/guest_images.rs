//! Reading each VM's images from the ESP into boot modules: a PVH ELF (`image`), or a
//! Linux kernel and its initrd (`kernel`, `initrd`).
//!
//! Module names: the VM's name for its main image (ELF or kernel), `NAME.initrd` for the
//! initrd (`.` cannot occur in a VM name, so the two never collide). A Linux kernel is
//! checked here, before anything boots, with the same parser the hypervisor uses
//! (`boot_proto::bzimage`): a file that is not a 64-bit bzImage of protocol 2.12+, or a
//! kernel + initrd that do not fit the VM's `memory`, stops the boot with the config's file
//! and line, like any config error.

use crate::error::LoaderError;
use crate::esp::Esp;
use alloc::string::ToString;
use alloc::vec::Vec;
use boot_proto::bzimage::BzImage;
use boot_proto::config::{GuestBoot, VmConfig};
use boot_proto::{Module, PhysSlice};
use uefi::println;

/// Suffix of an initrd module's name.
pub const INITRD_SUFFIX: &str = ".initrd";

/// One file read for a VM, before it is placed.
pub struct GuestFile {
    /// Module name.
    pub module: alloc::string::String,
    /// Path on the ESP.
    pub path: alloc::string::String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// How many modules `vm` needs.
pub fn module_count(vm: &VmConfig) -> usize {
    match &vm.boot {
        GuestBoot::Linux {
            initrd: Some(_), ..
        } => 2,
        _ => 1,
    }
}

/// Read (and for Linux, check) the files of `vm`.
pub fn read(esp: &mut Esp, config: &str, vm: &VmConfig) -> Result<Vec<GuestFile>, LoaderError> {
    let mut read_key = |key: &'static str, path: &str, line: u32| {
        esp.read(path).map_err(|status| LoaderError::VmImage {
            config: config.to_string(),
            line,
            vm: vm.name.clone(),
            key,
            image: path.to_string(),
            status,
        })
    };
    match &vm.boot {
        GuestBoot::Pvh { image } => Ok(alloc::vec![GuestFile {
            module: vm.name.clone(),
            path: image.clone(),
            bytes: read_key("image", image, vm.line)?,
        }]),
        GuestBoot::Linux {
            kernel,
            kernel_line,
            initrd,
            initrd_line,
        } => {
            let kernel_bytes = read_key("kernel", kernel, *kernel_line)?;
            let initrd_bytes = match initrd {
                Some(path) => Some(read_key("initrd", path, *initrd_line)?),
                None => None,
            };
            let header = BzImage::parse(&kernel_bytes).map_err(|reason| LoaderError::VmKernel {
                config: config.to_string(),
                line: *kernel_line,
                vm: vm.name.clone(),
                kernel: kernel.clone(),
                reason,
            })?;
            let initrd_len = initrd_bytes.as_ref().map_or(0, |b| b.len() as u64);
            let need = header.memory_needed(initrd_len);
            if need > vm.memory_bytes {
                return Err(LoaderError::VmTooSmall {
                    config: config.to_string(),
                    line: vm.line,
                    vm: vm.name.clone(),
                    need,
                    have: vm.memory_bytes,
                });
            }
            println!(
                "tern loader: VM '{}': Linux boot protocol {}.{:02}, needs {} MiB of its {} MiB",
                vm.name,
                header.protocol >> 8,
                header.protocol & 0xff,
                need.div_ceil(1 << 20),
                vm.memory_bytes >> 20
            );
            let mut files = alloc::vec![GuestFile {
                module: vm.name.clone(),
                path: kernel.clone(),
                bytes: kernel_bytes,
            }];
            if let Some(bytes) = initrd_bytes {
                files.push(GuestFile {
                    module: alloc::format!("{}{INITRD_SUFFIX}", vm.name),
                    path: initrd.clone().unwrap_or_default(),
                    bytes,
                });
            }
            Ok(files)
        }
    }
}

/// The module entry for a placed file.
pub fn module(file: &GuestFile, placed: PhysSlice) -> Module {
    Module::new(&file.module, placed.phys, placed.len)
}
