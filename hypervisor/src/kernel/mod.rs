//! The kernel proper: entry from the loader, initialisation order, the main loop, the
//! kernel's own console commands, panic handling.
//!
//! Portable (host-tested): [`banner`] (the boot banner format), [`boot_info`] (checking the
//! loader's hand-over), [`main_loop`] (the poller round) and [`selfcheck`] (digests and
//! canaries). Bare metal: everything else, among it `vms` (VT-x at boot, the configured VMs,
//! their poller, `vm` and `selfcheck`); see `entry` for the boot order and the polling design.
//! The host config is parsed with `boot_proto::config::parse`, the loader's own parser.

pub mod banner;
pub mod boot_info;
pub mod main_loop;
pub mod selfcheck;

#[cfg(target_os = "none")]
pub mod commands;
#[cfg(target_os = "none")]
pub mod console_poller;
#[cfg(target_os = "none")]
pub mod cpu_models;
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
pub mod host;
#[cfg(target_os = "none")]
pub mod host_storage;
#[cfg(target_os = "none")]
pub mod migration;
#[cfg(target_os = "none")]
pub mod network;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
pub mod vms;

#[cfg(target_os = "none")]
pub use entry::{BOOT_STACK, BOOT_STACK_SIZE, kernel_main};
