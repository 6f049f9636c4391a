//! The hardware edge: descriptor tables, exceptions, port I/O, MSRs, CPUID, the serial port,
//! the TSC, hardware random numbers and reset. The only home of raw asm outside `vmx`.
//!
//! Two portable decoders live here too because they are pure functions of register values
//! and are tested on the host: [`vmx_capabilities`] and [`tsc_clock`]. Everything else is
//! bare metal only.

pub mod tsc_clock;
pub mod vmx_capabilities;

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
