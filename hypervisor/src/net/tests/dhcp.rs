//! DHCP mode against a minimal fake DHCP server that answers DISCOVER with OFFER and
//! REQUEST with ACK.

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

use crate::net::stack::{NetConfig, NetMode};
use crate::net::testbed::Host;

const SERVER_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0, 0, 0x99]);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const OFFERED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);

/// The server's answer to one client frame, if it is a DHCP DISCOVER or REQUEST.
fn answer(frame: &[u8]) -> Option<Vec<u8>> {
    let caps = ChecksumCapabilities::default();
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ip_repr = Ipv4Repr::parse(&ip, &caps).ok()?;
    if ip_repr.next_header != IpProtocol::Udp {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if udp.dst_port() != 67 {
        return None;
    }
    let dhcp = DhcpPacket::new_checked(udp.payload()).ok()?;
    let request = DhcpRepr::parse(&dhcp).ok()?;
    let message_type = match request.message_type {
        DhcpMessageType::Discover => DhcpMessageType::Offer,
        DhcpMessageType::Request => DhcpMessageType::Ack,
        _ => return None,
    };
    let reply = DhcpRepr {
        message_type,
        transaction_id: request.transaction_id,
        secs: 0,
        client_hardware_address: request.client_hardware_address,
        client_ip: Ipv4Addr::UNSPECIFIED,
        your_ip: OFFERED,
        server_ip: SERVER_IP,
        router: Some(SERVER_IP),
        subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        relay_agent_ip: Ipv4Addr::UNSPECIFIED,
        broadcast: false,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(SERVER_IP),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: Some(3600),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let dhcp_len = reply.buffer_len();
    let udp_repr = UdpRepr {
        src_port: 67,
        dst_port: 68,
    };
    let ip_reply = Ipv4Repr {
        src_addr: SERVER_IP,
        dst_addr: Ipv4Addr::BROADCAST,
        next_header: IpProtocol::Udp,
        payload_len: 8 + dhcp_len,
        hop_limit: 64,
    };
    let mut out = vec![0u8; 14 + ip_reply.buffer_len() + 8 + dhcp_len];
    let mut eth_out = EthernetFrame::new_unchecked(&mut out[..]);
    EthernetRepr {
        src_addr: SERVER_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth_out);
    let mut ip_out = Ipv4Packet::new_unchecked(eth_out.payload_mut());
    ip_reply.emit(&mut ip_out, &caps);
    let mut udp_out = UdpPacket::new_unchecked(ip_out.payload_mut());
    udp_repr.emit(
        &mut udp_out,
        &IpAddress::Ipv4(SERVER_IP),
        &IpAddress::Ipv4(Ipv4Addr::BROADCAST),
        dhcp_len,
        |payload| {
            let mut packet = DhcpPacket::new_unchecked(payload);
            reply.emit(&mut packet).expect("room for the reply");
        },
        &caps,
    );
    Some(out)
}

#[test]
fn dhcp_lease_configures_address_and_gateway() {
    let config = NetConfig {
        mode: NetMode::Dhcp,
        mac: None,
        mtu: crate::net::nic::STANDARD_MTU,
    };
    let mut host = Host::with_config([0x52, 0x54, 0, 0, 0, 0x0c], &config, 3);
    assert_eq!(host.stack.ipv4(), None);
    let mut now = 0;
    let mut answered = 0;
    while host.stack.ipv4().is_none() && now < 30_000_000 {
        now += 10_000;
        host.poll(now);
        for frame in host.device.take_sent() {
            if let Some(reply) = answer(&frame) {
                host.device.deliver(&reply);
                answered += 1;
            }
        }
    }
    assert!(answered >= 2, "DISCOVER and REQUEST answered");
    host.poll(now + 10_000);
    assert_eq!(
        host.stack.ipv4().map(|c| (c.address(), c.prefix_len())),
        Some((OFFERED, 24))
    );
    assert_eq!(host.stack.gateway(), Some(SERVER_IP));
    assert!(
        host.said("net: DHCP lease 10.0.0.50/24 via 10.0.0.1"),
        "{:?}",
        host.lines
    );
}
