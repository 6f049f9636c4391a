//! ARP announcements (RFC 5227 section 2.3): broadcast "IP is at MAC" when an address is
//! configured and when the link comes up.
//!
//! Why: a host that only ever answers (ARP replies and ICMP/TCP replies are unicast) never
//! sends a broadcast, and some segments learn where a MAC lives only from broadcasts. Bochs'
//! `bxhub` is one: it forwards a unicast frame only to a port whose MAC it learned from a
//! broadcast or hub-addressed frame and silently drops the rest, so without announcements a
//! passive tern host behind bxhub cannot be reached. Real switches learn from any frame, and
//! on them the announcement just refreshes peers' ARP caches (useful after a migration
//! moves an address to another host).

use core::net::Ipv4Addr;

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};

/// Announcements per trigger (RFC 5227 ANNOUNCE_NUM).
pub const ANNOUNCE_COUNT: u8 = 2;
/// Time between announcements (RFC 5227 ANNOUNCE_INTERVAL, 2 s).
pub const ANNOUNCE_INTERVAL_US: u64 = 2_000_000;

/// Length of an ARP-over-Ethernet frame without padding.
pub const ANNOUNCEMENT_LEN: usize = 14 + 28;

/// Builds the announcement frame for `address` at `mac`: an ARP request whose sender and
/// target protocol addresses are both ours, sent to the broadcast MAC.
pub fn announcement(mac: [u8; 6], address: Ipv4Addr) -> [u8; ANNOUNCEMENT_LEN] {
    let mut frame = [0u8; ANNOUNCEMENT_LEN];
    let ethernet = EthernetRepr {
        src_addr: EthernetAddress(mac),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: address,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: address,
    };
    let mut eth_frame = EthernetFrame::new_unchecked(&mut frame[..]);
    ethernet.emit(&mut eth_frame);
    arp.emit(&mut ArpPacket::new_unchecked(eth_frame.payload_mut()));
    frame
}

/// When the next announcements are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcer {
    remaining: u8,
    next_us: u64,
}

impl Announcer {
    /// Nothing scheduled.
    pub const fn idle() -> Self {
        Self {
            remaining: 0,
            next_us: 0,
        }
    }

    /// Schedule a fresh series starting at `now_us`.
    pub fn trigger(&mut self, now_us: u64) {
        self.remaining = ANNOUNCE_COUNT;
        self.next_us = now_us;
    }

    /// Whether an announcement is due at `now_us`; if so, it counts as sent.
    pub fn due(&mut self, now_us: u64) -> bool {
        if self.remaining == 0 || now_us < self.next_us {
            return false;
        }
        self.remaining -= 1;
        self.next_us = now_us.saturating_add(ANNOUNCE_INTERVAL_US);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_a_broadcast_arp_request_for_our_own_address() {
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        let frame = announcement(mac, Ipv4Addr::new(10, 0, 0, 1));
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(eth.src_addr(), EthernetAddress(mac));
        assert_eq!(eth.ethertype(), EthernetProtocol::Arp);
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        match arp {
            ArpRepr::EthernetIpv4 {
                operation,
                source_protocol_addr,
                target_protocol_addr,
                source_hardware_addr,
                ..
            } => {
                assert_eq!(operation, ArpOperation::Request);
                assert_eq!(source_hardware_addr, EthernetAddress(mac));
                assert_eq!(source_protocol_addr, Ipv4Addr::new(10, 0, 0, 1));
                assert_eq!(target_protocol_addr, Ipv4Addr::new(10, 0, 0, 1));
            }
            other => panic!("not an Ethernet/IPv4 ARP: {other:?}"),
        }
    }

    #[test]
    fn announces_twice_two_seconds_apart() {
        let mut a = Announcer::idle();
        assert!(!a.due(0));
        a.trigger(100);
        assert!(!a.due(99));
        assert!(a.due(100));
        assert!(!a.due(100 + ANNOUNCE_INTERVAL_US - 1));
        assert!(a.due(100 + ANNOUNCE_INTERVAL_US));
        assert!(!a.due(100 + 10 * ANNOUNCE_INTERVAL_US));
    }
}
