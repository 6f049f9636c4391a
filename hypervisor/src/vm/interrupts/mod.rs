//! Interrupt plumbing between the device models and the vCPU: the message vocabulary
//! shared by the APICs ([`message`]), ISA IRQ to GSI routing as declared in the MADT
//! ([`routing`]), the per-vCPU event injector that decides what each VM entry delivers
//! ([`injector`], saved by [`injector_state`]), and their composition for a one-vCPU PC
//! ([`platform`]).
//!
//! Everything here is pure logic, tested on the host; the VMCS fields it reads and writes
//! (IDT-vectoring information, interruptibility state, VM-entry interruption information,
//! the window-exiting controls) are named in the docs so the wiring step can map them.

pub mod injector;
pub mod injector_state;
pub mod message;
pub mod platform;
pub mod routing;

#[cfg(test)]
mod tests;
