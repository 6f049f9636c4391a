//! tern hypervisor: portable logic (host-tested) and, on bare metal, the kernel itself.
//!
//! Layering (see `docs/ARCHITECTURE.md`): `arch` and `vmx` touch hardware and hold all raw
//! asm; everything else is portable and compiled and unit-tested on the host too. Modules that
//! only make sense on bare metal are gated on `target_os = "none"`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

/// CPU, descriptor tables, interrupts, port I/O, MSRs, serial, TSC: the only home of raw asm
/// outside `vmx`.
#[cfg(target_os = "none")]
pub mod arch;
/// Serial console: line editing, command parsing (portable) and the command shell.
pub mod console;
/// Physical frame allocator (portable), heap, address helpers.
pub mod memory;
/// Migration glue: dirty tracking and sessions bound to VMs and sockets.
pub mod migration;
/// PCI, NIC drivers behind a trait, the smoltcp interface.
pub mod net;
/// VMs, vCPUs, guest memory, exit handlers and device models.
pub mod vm;
/// VMXON, typed VMCS access, EPT structures, entry/exit; the portable `VmExit` boundary.
pub mod vmx;

/// The kernel proper: entry from the loader, initialisation order, the main loop.
#[cfg(target_os = "none")]
pub mod kernel;
