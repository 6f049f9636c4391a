//! Networking: PCI discovery, the e1000 driver behind the [`nic::Nic`] trait, the smoltcp
//! glue ([`nic_device`]), and the network stack ([`stack`]) with its operator tools (ping,
//! nettest, a raw transmit benchmark) and console commands.
//!
//! Layering, bottom up: `pci` finds the NIC and maps its BAR; `e1000` drives it through the
//! `RegisterAccess`/`DmaMemory` traits; `nic` is the only thing the layers above know about
//! a NIC; `nic_device` adapts it to smoltcp; `stack` owns the interface and sockets and is
//! polled by the main loop. Everything but the port-I/O/MMIO glue is host-tested.

pub mod bench;
pub mod bringup;
pub mod clock;
pub mod commands;
pub mod e1000;
pub mod nettest;
pub mod nic;
pub mod nic_device;
pub mod pci;
pub mod ping;
pub mod stack;

#[cfg(test)]
mod dhcp_tests;
#[cfg(test)]
mod stack_tests;
#[cfg(test)]
mod testbed;
