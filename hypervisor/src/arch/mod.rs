//! The hardware edge: descriptor tables, exceptions, port I/O, MSRs, CPUID, the serial port,
//! the TSC, hardware random numbers and reset. The only home of raw asm outside `vmx`.
//!
//! One portable decoder lives here too because it is a pure function of register values
//! and is tested on the host: [`tsc_clock`]. (The VMX capability MSRs are decoded in
//! `vmx::caps`.) Everything else is bare metal only.

pub mod tsc_clock;

#[cfg(target_os = "none")]
pub mod ata_ports;
#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod exceptions;
#[cfg(target_os = "none")]
pub mod gdt;
#[cfg(target_os = "none")]
pub mod idt;
#[cfg(target_os = "none")]
pub mod paging;
#[cfg(target_os = "none")]
pub mod port;
#[cfg(target_os = "none")]
pub mod random;
#[cfg(target_os = "none")]
pub mod reset;
#[cfg(target_os = "none")]
pub mod serial;
#[cfg(target_os = "none")]
pub mod tsc;
