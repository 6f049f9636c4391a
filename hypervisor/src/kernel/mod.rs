//! The kernel proper: entry from the loader, initialisation order, the main loop, the
//! kernel's own console commands, panic handling.
//!
//! Portable (host-tested): [`banner`] (the boot banner format), [`host_config`] (host name
//! lookup until the real config parser lands), [`main_loop`] (the poller round). Bare metal:
//! everything else; see [`entry`] for the boot order and the polling design.

pub mod banner;
pub mod host_config;
pub mod main_loop;

#[cfg(target_os = "none")]
pub mod boot_info;
#[cfg(target_os = "none")]
pub mod commands;
#[cfg(target_os = "none")]
pub mod console_poller;
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
pub mod host;
#[cfg(target_os = "none")]
mod panic;

#[cfg(target_os = "none")]
pub use entry::{BOOT_STACK, BOOT_STACK_SIZE, kernel_main};
