//! Networking: PCI discovery, the e1000 driver behind the `nic::Nic` trait, the smoltcp glue
//! (`nic_device`), and the network stack (`stack`) with its operator tools (ping, nettest, a
//! raw transmit benchmark) and console commands.
//!
//! Layering, bottom up: `pci` finds the NIC and decodes its BARs; `e1000` drives it through
//! the `RegisterAccess`/`DmaMemory` traits; `nic` is the only thing the layers above know
//! about a NIC; `nic_device` adapts it to smoltcp; `stack` owns the interface and sockets
//! and is polled by the main loop; `bringup` ties them together at boot. Everything except
//! the port-I/O/ECAM/MMIO glue (`target_os = "none"`) is host-tested, including two stacks
//! talking TCP over fake e1000s (`tests`).
//!
//! Wiring into the kernel (done in `kernel::network`: ECAM from ACPI MCFG when present, else
//! ports; the stack behind a global for the command handlers; a main-loop poller):
//! ```text
//! boot:   let mut cfg = unsafe { pci::PortConfigSpace::new() };   // or EcamConfigSpace (MCFG)
//!         let devices = pci::enumerate(&mut cfg);
//!         let net = unsafe { bringup::bring_up_bare_metal(&mut cfg, &devices, identity_limit,
//!                              alloc_pages, &net_config, tsc_seed, now_us) };
//!         // Err(e): print `e` (one line), keep running with `None` for the stack.
//! loop:   if let Some(stack) = &mut net { stack.poll(clock.micros(rdtsc())); }
//!         stack.drain_output(&mut serial);                        // ping/nettest/link lines
//! shell:  net / ping / nettest / netbench / pci -> commands::cmd_* (stack.as_mut(), out, args)
//! ```

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
mod testbed;
#[cfg(test)]
mod tests;
