//! Intel 8254x ("e1000") NIC driver, as emulated by QEMU (`-device e1000`) and Bochs
//! (`e1000:`): both model the 82540EM, PCI ID 8086:100e.
//!
//! Layout: `regs` and `desc` are the hardware layouts (SDM section 13 and 3), `rings` the
//! descriptor ownership rules, `frame_size` the buffer sizes and long-packet mode per MTU,
//! `driver` the bring-up and the [`crate::net::nic::Nic`] implementation, `hal` the two
//! traits the driver needs from a platform. The host tests
//! run the driver against `fake_device`, which processes descriptors the way the hardware
//! does, over `fake_dma` memory.

mod desc;
mod driver;
mod frame_size;
mod hal;
pub mod regs;
mod rings;
mod stats;

#[cfg(test)]
pub mod fake_device;
#[cfg(test)]
pub mod fake_dma;
#[cfg(target_os = "none")]
mod mmio;
#[cfg(test)]
mod tests;

pub use desc::{rx_errors, rx_status};
pub use driver::{E1000, E1000Config, E1000Error, MacSource};
pub use frame_size::{FrameSize, RxBufferSize};
pub use hal::{DmaError, DmaMemory, DmaRegion, RegisterAccess};
#[cfg(target_os = "none")]
pub use mmio::{IdentityDma, MmioRegisters};
pub use stats::HwStats;

/// PCI device IDs (vendor 8086) of 8254x parts that share the 82540EM programming model
/// this driver uses (legacy descriptors, EERD with done at bit 4).
pub const SUPPORTED_DEVICE_IDS: [u16; 6] = [0x100e, 0x100f, 0x1011, 0x1015, 0x1016, 0x1017];

/// Whether a PCI function is an e1000 this driver can run.
pub fn is_supported(vendor_id: u16, device_id: u16) -> bool {
    vendor_id == 0x8086 && SUPPORTED_DEVICE_IDS.contains(&device_id)
}
