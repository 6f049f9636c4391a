//! VMs and vCPUs, guest memory, the exit handlers and device models.
//!
//! Everything here is portable and unit-tested on the host: device models are pure state
//! machines, guest images are parsed from bytes, and the policies applied at exits (which
//! CPUID bits a guest sees, which MSRs it may touch) are pure functions. Only `machine`,
//! the composition of all of it with a hardware vCPU, is bare-metal.
//!
//! Map: `board` (the PC board: interrupt controllers, PIT, RTC, their ports, MSRs, MMIO
//! windows and wiring before each entry), `pvh` (guest ELF + `hvm_start_info`),
//! `guest_ram` (frames backing guest RAM), `exit_handler` (what each `VmExit` does),
//! `mmio` (decoding and performing a guest's access to a device window: page walk,
//! instruction decode, the MMIO bus), `cpuid`, `cpu_model` and `msr` (policies),
//! `uart16550` + `console_out` (COM1 and its output to the console), `state` (life cycle),
//! `console_cmd` (`vm ...` grammar), `exit_counters`, `vpid`, `virtio` + `virtio_blk`
//! (virtio-mmio block device model), `xsave` (a vCPU's x87/SSE/AVX area and the checks on
//! one from a peer; `machine` switches it).
//! Interrupt and timer models (pure, saved as versioned device state): `lapic`, `ioapic`,
//! `pic`, `pit`, `rtc`, `interrupts` (routing, the event injector and their one-vCPU
//! composition), `device_state_codec` (their shared byte encoding); `board` wires them to
//! ports, MSRs, MMIO windows and VM entry.

pub mod acpi_pm;
pub mod board;
pub mod console_cmd;
pub mod console_out;
pub mod cpu_model;
pub mod cpuid;
pub mod device_state_codec;
pub mod exit_counters;
pub mod exit_handler;
pub mod guest_acpi;
pub mod guest_ram;
pub mod interrupts;
pub mod ioapic;
pub mod lapic;
pub mod linux_boot;
/// A VM on real VT-x (bare metal only).
#[cfg(target_os = "none")]
pub mod machine;
pub mod mmio;
pub mod msr;
pub mod pic;
pub mod pit;
pub mod pvh;
pub mod rtc;
pub mod state;
pub mod uart16550;
pub mod vcpu_state;
pub mod virtio;
pub mod virtio_blk;
pub mod vm_set;
pub mod vpid;
pub mod xsave;
