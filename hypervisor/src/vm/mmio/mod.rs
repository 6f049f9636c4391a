//! Guest accesses to device registers in guest-physical memory (MMIO).
//!
//! Why tern emulates instructions: a device window (the I/O APIC page, a virtio-mmio
//! transport) is a guest-physical range left out of the VM's EPT, so the guest's load or
//! store to it ends in an EPT violation that reports the address and whether it was a
//! write, but not the value, the size or the register (SDM Vol. 3C §29.3.3.2, §28.2.1
//! Table 28-7). tern reads the faulting instruction from guest memory through the guest's
//! own page tables (`paging`), decodes it (`decode`: the moves guests use on MMIO, nothing
//! else), performs the access on the device that owns the address (`bus`) and finishes the
//! instruction (`access`: register write-back, RIP advance). An instruction it cannot
//! decode stops the VM with a reason naming the bytes; the host is never at risk.
//!
//! Map: `paging` (linear -> physical walk, instruction fetch), `decode` (prefixes, ModRM/
//! SIB/displacement, operand sizes), `bus` ([`MmioBus`] and the [`MmioHandler`] trait a
//! device implements), `access` ([`emulate_mmio_access`], the exit path).

pub mod access;
pub mod bus;
pub mod decode;
pub mod paging;

pub use access::{MmioAccess, MmioError, emulate_mmio_access};
pub use bus::{MmioBus, MmioBusError, MmioHandler, MmioRegion};

#[cfg(test)]
mod tests;
