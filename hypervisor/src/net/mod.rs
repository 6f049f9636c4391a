//! Networking: PCI discovery, the e1000 driver behind the [`nic::Nic`] trait, the smoltcp
//! glue and the network stack with its console commands.
pub mod e1000;
pub mod nic;
pub mod pci;
