//! smoltcp's `phy::Device` over any [`Nic`].
//!
//! Why an adapter and not `Device` on the driver: smoltcp's token API borrows the device for
//! the lifetime of a token pair, and wants a buffer it can hand to a closure. Keeping that
//! here means a driver implements four plain methods and never sees smoltcp.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use super::bench::BENCH_ETHERTYPE;
use super::nic::Nic;

/// A [`Nic`] as a smoltcp device.
pub struct NicDevice {
    nic: Box<dyn Nic>,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    /// Raw benchmark frames received (frames, bytes) since the stack last took them.
    bench_rx: (u64, u64),
}

impl NicDevice {
    /// Wrap a NIC; the buffers hold its largest frame.
    pub fn new(nic: Box<dyn Nic>) -> Self {
        let max_frame_len = nic.max_frame_len();
        Self {
            nic,
            rx_buf: vec![0; max_frame_len],
            tx_buf: vec![0; max_frame_len],
            bench_rx: (0, 0),
        }
    }

    /// The NIC underneath.
    pub fn nic(&mut self) -> &mut dyn Nic {
        &mut *self.nic
    }

    /// The NIC underneath, shared.
    /// Benchmark frames (EtherType [`BENCH_ETHERTYPE`]) received since the last call.
    pub fn take_bench_rx(&mut self) -> (u64, u64) {
        core::mem::take(&mut self.bench_rx)
    }

    pub fn nic_ref(&self) -> &dyn Nic {
        &*self.nic
    }
}

/// A frame already copied out of the NIC.
pub struct NicRxToken<'a> {
    frame: &'a [u8],
}

/// Permission to build one frame and hand it to the NIC.
pub struct NicTxToken<'a> {
    nic: &'a mut dyn Nic,
    buf: &'a mut Vec<u8>,
}

impl phy::RxToken for NicRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

impl phy::TxToken for NicTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        // smoltcp never asks for more than the MTU we advertise; if it did, the NIC refuses
        // the frame and counts it as dropped.
        self.buf.resize(len, 0);
        let result = f(&mut self.buf[..len]);
        // A refused frame is counted by the NIC; TCP retransmits, ICMP/ARP are best effort.
        let _ = self.nic.transmit(&self.buf[..len]);
        result
    }
}

impl phy::Device for NicDevice {
    type RxToken<'a> = NicRxToken<'a>;
    type TxToken<'a> = NicTxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let len = self.nic.receive(&mut self.rx_buf)?;
        if self.rx_buf.get(12..14) == Some(&BENCH_ETHERTYPE.to_be_bytes()[..]) {
            self.bench_rx.0 += 1;
            self.bench_rx.1 += len as u64;
        }
        Some((
            NicRxToken {
                frame: &self.rx_buf[..len],
            },
            NicTxToken {
                nic: &mut *self.nic,
                buf: &mut self.tx_buf,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        if !self.nic.can_transmit() {
            return None;
        }
        Some(NicTxToken {
            nic: &mut *self.nic,
            buf: &mut self.tx_buf,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // For Ethernet, smoltcp's "MTU" is the whole frame without FCS; it derives the IP MTU
        // (minus the 14-byte header) and from that the MSS every TCP SYN advertises. TCP
        // sends min(our MSS, the peer's), so hosts with different `[net] mtu` still agree
        // per connection.
        caps.max_transmission_unit = self.nic.max_frame_len();
        caps.max_burst_size = None;
        caps
    }
}
