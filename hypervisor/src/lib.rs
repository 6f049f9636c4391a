//! tern hypervisor: portable logic (host-tested) and, on bare metal, the kernel itself.
//!
//! Layering (see `docs/ARCHITECTURE.md`): `arch` and `vmx` touch hardware and hold all raw
//! asm; everything else is portable and compiled and unit-tested on the host too. Modules that
//! only make sense on bare metal are gated on `target_os = "none"` (inside `arch`, `memory`,
//! `acpi`, `console` and `kernel` only the hardware-facing submodules are gated, so their
//! decoding and bookkeeping logic is tested on the host).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

/// ACPI table parsing (portable) and power control: S5 soft-off and the reset register.
pub mod acpi;
/// CPU, descriptor tables, exceptions, port I/O, MSRs, serial, TSC: the only home of raw asm
/// outside `vmx`. The VT-x capability decoder is portable.
pub mod arch;
/// Serial console: line editing, command parsing, the command table (portable) and the shell.
pub mod console;
/// The kernel proper: entry from the loader, initialisation order, the main loop.
pub mod kernel;
/// Physical frame allocator (portable), heap, address helpers.
pub mod memory;
/// Migration glue: dirty tracking and sessions bound to VMs and sockets.
pub mod migration;
/// PCI, NIC drivers behind a trait, the smoltcp interface.
pub mod net;
/// The host's own disk: an ATA PIO driver and VM regions carved from it.
pub mod storage;
/// VMs, vCPUs, guest memory, exit handlers and device models.
pub mod vm;
/// VMXON, typed VMCS access, EPT structures, entry/exit; the portable `VmExit` boundary.
pub mod vmx;
