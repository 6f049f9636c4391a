//! Boot-time bring-up: find a supported NIC among the enumerated PCI functions, enable it,
//! start the driver and the stack, or explain in one line why networking is unavailable.
//!
//! Portable: the register window comes from a `map_registers` closure (MMIO through the
//! identity map on bare metal, a fake device in tests), so the decisions made here (which
//! function, which BAR, is it reachable) are host-tested. The hypervisor keeps running when
//! this fails; the console's `net` then reports the reason.

use alloc::boxed::Box;
use core::fmt;

use super::e1000::{self, DmaMemory, E1000, E1000Config, E1000Error, RegisterAccess};
use super::pci::{self, Bdf, ConfigSpace, PciDevice};
use super::stack::{NetConfig, NetError, NetStack};

/// Why the hypervisor runs without networking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BringUpError {
    /// No supported NIC on the PCI bus.
    NoNic,
    /// The NIC's register BAR (BAR0, memory) is not implemented or not assigned.
    NoRegisterBar(Bdf),
    /// BAR0 lies outside the identity-mapped range.
    BarNotMapped {
        /// The NIC.
        bdf: Bdf,
        /// BAR0 base address.
        address: u64,
    },
    /// The driver failed.
    Driver(Bdf, E1000Error),
    /// The stack refused the configuration.
    Stack(NetError),
}

impl fmt::Display for BringUpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoNic => write!(f, "net: no supported NIC found (need an e1000/82540EM)"),
            Self::NoRegisterBar(bdf) => write!(f, "net: {bdf}: e1000 BAR0 is not assigned"),
            Self::BarNotMapped { bdf, address } => {
                write!(
                    f,
                    "net: {bdf}: e1000 BAR0 at {address:#x} is outside the identity map"
                )
            }
            Self::Driver(bdf, error) => write!(f, "net: {bdf}: {error}"),
            Self::Stack(error) => write!(f, "net: {error}"),
        }
    }
}

/// The first supported NIC in `devices`.
pub fn find_nic(devices: &[PciDevice]) -> Option<&PciDevice> {
    devices
        .iter()
        .find(|d| e1000::is_supported(d.vendor_id, d.device_id))
}

/// Bring up the first supported NIC and a stack on it.
///
/// `map_registers(bar0)` turns BAR0's physical address into register access;
/// `identity_limit` is the end of the identity-mapped physical range.
#[allow(clippy::too_many_arguments)]
pub fn bring_up<R, D>(
    cfg: &mut dyn ConfigSpace,
    devices: &[PciDevice],
    identity_limit: u64,
    map_registers: impl FnOnce(u64) -> R,
    dma: D,
    config: &NetConfig,
    random_seed: u64,
    now_us: u64,
) -> Result<NetStack, BringUpError>
where
    R: RegisterAccess + 'static,
    D: DmaMemory + 'static,
{
    let nic = find_nic(devices).ok_or(BringUpError::NoNic)?;
    let bar = nic
        .memory_bar(0)
        .ok_or(BringUpError::NoRegisterBar(nic.bdf))?;
    if bar.address == 0 {
        return Err(BringUpError::NoRegisterBar(nic.bdf));
    }
    if bar.address.saturating_add(bar.size) > identity_limit {
        return Err(BringUpError::BarNotMapped {
            bdf: nic.bdf,
            address: bar.address,
        });
    }
    // Memory decoding for the registers, bus mastering for descriptor/buffer DMA.
    pci::enable_memory_and_bus_master(cfg, nic.bdf);
    let regs = map_registers(bar.address);
    let e1000_config = E1000Config {
        mac_override: config.mac,
        mtu: config.mtu,
        ..E1000Config::default()
    };
    let driver = E1000::new(regs, dma, e1000_config)
        .map_err(|error| BringUpError::Driver(nic.bdf, error))?;
    NetStack::new(Box::new(driver), config, random_seed, now_us).map_err(BringUpError::Stack)
}

/// Bare-metal bring-up: BAR0 through the identity map, DMA from `alloc_pages`.
///
/// # Safety
/// `identity_limit` must be the end of the identity map that covers RAM and the PCI MMIO
/// hole; `alloc_pages(n)` must return the physical address of `n` contiguous, unused,
/// identity-mapped 4 KiB frames that become the driver's forever (see
/// [`e1000::IdentityDma::new`]); no other code may drive the NIC found in `devices`.
#[cfg(target_os = "none")]
pub unsafe fn bring_up_bare_metal<F>(
    cfg: &mut dyn ConfigSpace,
    devices: &[PciDevice],
    identity_limit: u64,
    alloc_pages: F,
    config: &NetConfig,
    random_seed: u64,
    now_us: u64,
) -> Result<NetStack, BringUpError>
where
    F: FnMut(usize) -> Option<u64> + 'static,
{
    // SAFETY: the caller guarantees what `IdentityDma::new` requires (this function's
    // contract repeats it).
    let dma = unsafe { e1000::IdentityDma::new(alloc_pages, identity_limit) };
    let map = |bar0: u64| {
        // SAFETY: `bring_up` calls this only for a supported NIC's BAR0 that lies below
        // `identity_limit` (checked) after enabling memory decoding; the caller guarantees
        // exclusivity and that the MMIO hole is identity-mapped (uncached per the MTRRs).
        unsafe { e1000::MmioRegisters::new(bar0) }
    };
    bring_up(
        cfg,
        devices,
        identity_limit,
        map,
        dma,
        config,
        random_seed,
        now_us,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::e1000::fake_device::FakeE1000;
    use crate::net::e1000::fake_dma::FakeDma;
    use crate::net::pci::fake::{FakeBar, FakeConfigSpace, FakeFunction};
    use crate::net::pci::{command, enumerate};
    use crate::net::stack::NetMode;
    use core::net::Ipv4Addr;

    const CONFIG: NetConfig = NetConfig {
        mode: NetMode::Static {
            address: Ipv4Addr::new(10, 0, 0, 1),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(10, 0, 0, 254)),
        },
        mac: None,
        mtu: 1500,
    };

    fn space(bar0: FakeBar) -> FakeConfigSpace {
        let mut space = FakeConfigSpace::new();
        space.insert(
            Bdf::new(0, 0, 0),
            FakeFunction::endpoint(0x8086, 0x29c0, 0x06_00_00),
        );
        let mut nic = FakeFunction::endpoint(0x8086, 0x100e, 0x02_00_00);
        nic.bars[0] = bar0;
        space.insert(Bdf::new(0, 2, 0), nic);
        space
    }

    fn try_bring_up(space: &mut FakeConfigSpace) -> Result<NetStack, BringUpError> {
        let devices = enumerate(space);
        let memory = FakeDma::new();
        let device = FakeE1000::new([0x52, 0x54, 0, 1, 2, 3], memory.clone());
        bring_up(space, &devices, 4 << 30, |_| device, memory, &CONFIG, 7, 0)
    }

    #[test]
    fn brings_up_the_e1000_with_bus_mastering() {
        let bar0 = FakeBar::Mem32 {
            address: 0xfebc_0000,
            size: 128 << 10,
            prefetchable: false,
        };
        let mut space = space(bar0);
        let stack = try_bring_up(&mut space).expect("network");
        assert_eq!(
            stack.ipv4().map(|c| c.address()),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(stack.gateway(), Some(Ipv4Addr::new(10, 0, 0, 254)));
        let command = space.function(Bdf::new(0, 2, 0)).unwrap().command();
        assert_eq!(
            command & (command::MEMORY_SPACE | command::BUS_MASTER),
            command::MEMORY_SPACE | command::BUS_MASTER
        );
    }

    #[test]
    fn explains_why_there_is_no_network() {
        let mut empty = FakeConfigSpace::new();
        assert_eq!(try_bring_up(&mut empty).err(), Some(BringUpError::NoNic));

        let mut unassigned = space(FakeBar::None);
        assert_eq!(
            try_bring_up(&mut unassigned).err(),
            Some(BringUpError::NoRegisterBar(Bdf::new(0, 2, 0)))
        );

        let high = FakeBar::Mem64 {
            address: 0x80_0000_0000,
            size: 128 << 10,
            prefetchable: false,
        };
        let mut space = space(high);
        space.insert(Bdf::new(0, 2, 0), {
            let mut nic = FakeFunction::endpoint(0x8086, 0x100e, 0x02_00_00);
            nic.bars[0] = high;
            nic.bars[1] = FakeBar::Mem64High;
            nic
        });
        let error = try_bring_up(&mut space).err().unwrap();
        assert_eq!(
            alloc::format!("{error}"),
            "net: 00:02.0: e1000 BAR0 at 0x8000000000 is outside the identity map"
        );
    }
}
