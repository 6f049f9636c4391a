//! ATA disks through the legacy command-block registers, polled PIO with 48-bit LBA
//! (ATA/ATAPI-8 ACS, "7.x" commands; register model in ATA8-ATA/ATAPI Architecture Model).
//!
//! Why PIO and polling: the hypervisor is one polled loop with no host interrupt routing
//! for storage, and PIO needs no DMA memory or bus-master set-up. It is slow (every word
//! crosses an `in`/`out`), which the storage bench measures; it is the controller Bochs
//! emulates, so it is the one we can test end to end here.
//!
//! Map: `regs` (register offsets, status bits, commands, the LBA48 register sequence),
//! `ports` (the port-access trait; the real one is `arch::ata_ports`), `identify` (decoding
//! IDENTIFY DEVICE), `driver` (probe, read, write, flush with bounded waits), `fake_device`
//! (a host-test ATA drive behind the same trait).

pub mod driver;
pub mod identify;
pub mod ports;
pub mod regs;

#[cfg(test)]
pub mod fake_device;
#[cfg(test)]
mod tests;

pub use driver::{AtaDisk, AtaError};
pub use ports::{AtaPorts, DrivePosition, DriveSlot};
