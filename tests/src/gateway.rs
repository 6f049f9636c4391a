//! A gateway between the test machine's loopback and a bxhub Ethernet segment, so that an
//! ordinary std TCP program (`tern-snapshot`) can talk to tern hosts running in Bochs.
//!
//! Why it exists: Bochs hosts reach each other through bxhub's UDP ports, a segment the
//! Linux host is not on (no tap without root and a namespace). The gateway joins the hub
//! as one more port with its own MAC and IPv4 address, runs a smoltcp interface there, and
//! relays TCP connections: **inbound** (a tern host connects to the gateway's address on
//! the segment; the gateway connects to a loopback address) and **outbound** (a program
//! connects to a loopback listener; the gateway connects to a tern host on the segment).
//!
//! Protocol v3 binds the migration handshake to the connection's endpoints, and a relay is
//! exactly what that binding detects. So the gateway writes the segment-side connection's
//! endpoints as the first 12 bytes it gives the loopback program (source IPv4, source port
//! LE, destination IPv4, destination port LE), which `tern-snapshot` uses under its testing
//! switch `--testing-relay endpoints`.
//!
//! bxhub port k: the hub receives on UDP `base + 2k + 1` and sends to `base + 2k`, one
//! Ethernet frame per datagram.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address};

use crate::HarnessError;

/// Largest Ethernet frame relayed (no jumbo frames on the test segment).
const FRAME_MAX: usize = 1514;
/// TCP buffers per relayed connection.
const TCP_BUFFER: usize = 64 * 1024;

/// One Ethernet frame per UDP datagram, to and from a bxhub port.
struct HubPort {
    socket: UdpSocket,
    hub: SocketAddr,
    rx: VecDeque<Vec<u8>>,
}

impl HubPort {
    fn pull(&mut self) -> bool {
        let mut got = false;
        let mut buf = [0u8; 2048];
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.rx.push_back(buf[..n].to_vec());
            got = true;
        }
        got
    }
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a UdpSocket, SocketAddr);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        // A lost frame is a lost frame: TCP retransmits.
        let _ = self.0.send_to(&frame, self.1);
        r
    }
}

impl phy::Device for HubPort {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((Rx(frame), Tx(&self.socket, self.hub)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&self.socket, self.hub))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME_MAX;
        caps
    }
}

/// A TCP connection relayed between a smoltcp socket and a loopback stream.
struct Relay {
    segment: SocketHandle,
    local: TcpStream,
    /// The tern host dialed the gateway (else the gateway dialed the tern host).
    inbound: bool,
    /// The 12-byte endpoints preamble is written once the segment side is established.
    preamble_sent: bool,
    to_local: Vec<u8>,
    local_eof: bool,
}

/// What the gateway relays.
#[derive(Clone, Debug, Default)]
pub struct GatewayPlan {
    /// Inbound: connections to the gateway's `port` on the segment go to this loopback
    /// address.
    pub inbound: Vec<(u16, SocketAddr)>,
    /// Outbound: one loopback listener per segment address; the gateway dials it.
    pub outbound: Vec<([u8; 4], u16)>,
}

/// A running gateway; stops on drop.
pub struct Gateway {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The loopback address of each `outbound` entry, in order.
    pub outbound_listeners: Vec<SocketAddr>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn io(what: &str, e: std::io::Error) -> HarnessError {
    HarnessError::io(what.to_string(), e)
}

impl Gateway {
    /// Joins bxhub port `hub_port` (its UDP base is `hub_base`) as `ip`/24 with `mac`.
    pub fn start(
        hub_base: u16,
        hub_port: u8,
        mac: [u8; 6],
        ip: [u8; 4],
        plan: GatewayPlan,
    ) -> Result<Gateway, HarnessError> {
        let listen = hub_base + 2 * u16::from(hub_port);
        let socket = UdpSocket::bind(("127.0.0.1", listen)).map_err(|e| io("gateway udp", e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| io("gateway udp", e))?;
        let device = HubPort {
            socket,
            hub: SocketAddr::from(([127, 0, 0, 1], listen + 1)),
            rx: VecDeque::new(),
        };
        let mut listeners = Vec::new();
        for &(addr, port) in &plan.outbound {
            let l = TcpListener::bind("127.0.0.1:0").map_err(|e| io("gateway listener", e))?;
            l.set_nonblocking(true)
                .map_err(|e| io("gateway listener", e))?;
            listeners.push((
                l,
                IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::from(addr)), port),
            ));
        }
        let outbound_listeners = listeners
            .iter()
            .map(|(l, _)| l.local_addr())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io("gateway listener", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread =
            std::thread::spawn(move || run(device, mac, ip, plan.inbound, listeners, &flag));
        Ok(Gateway {
            stop,
            thread: Some(thread),
            outbound_listeners,
        })
    }
}

/// A gratuitous ARP request (sender = target = our address), broadcast. Observed: until
/// the gateway has sent a frame, none of the hosts' frames reach it (bxhub appears to
/// forward only to ports it has heard from); it also fills the hosts' ARP caches.
fn gratuitous_arp(mac: [u8; 6], ip: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06]); // ARP
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]); // Ethernet/IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip);
    f.resize(60, 0);
    f
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
    )
}

fn preamble(source: IpEndpoint, destination: IpEndpoint) -> [u8; 12] {
    let mut out = [0u8; 12];
    let v4 = |e: IpEndpoint| match e.addr {
        IpAddress::Ipv4(a) => a.octets(),
    };
    out[..4].copy_from_slice(&v4(source));
    out[4..6].copy_from_slice(&source.port.to_le_bytes());
    out[6..10].copy_from_slice(&v4(destination));
    out[10..].copy_from_slice(&destination.port.to_le_bytes());
    out
}

fn run(
    mut device: HubPort,
    mac: [u8; 6],
    ip: [u8; 4],
    inbound: Vec<(u16, SocketAddr)>,
    outbound: Vec<(TcpListener, IpEndpoint)>,
    stop: &AtomicBool,
) {
    let clock = std::time::Instant::now();
    let now = || Instant::from_micros(clock.elapsed().as_micros() as i64);
    let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    let mut iface = Interface::new(config, &mut device, now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(Ipv4Address::from(ip)), 24));
    });
    let mut sockets = SocketSet::new(vec![]);
    // One listening socket per inbound port, replaced once it is taken.
    let mut listening: Vec<(SocketHandle, u16, SocketAddr)> = Vec::new();
    let mut relays: Vec<Relay> = Vec::new();
    let mut next_port: u16 = 49152;
    let announce = gratuitous_arp(mac, ip);
    let mut announced_at: Option<std::time::Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if announced_at.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
            let _ = device.socket.send_to(&announce, device.hub);
            announced_at = Some(std::time::Instant::now());
        }
        let mut busy = device.pull();
        for &(port, to) in &inbound {
            if !listening.iter().any(|(_, p, _)| *p == port) {
                let mut s = tcp_socket();
                if s.listen(port).is_ok() {
                    listening.push((sockets.add(s), port, to));
                }
            }
        }
        for (listener, remote) in &outbound {
            if let Ok((stream, _)) = listener.accept() {
                let mut s = tcp_socket();
                next_port = if next_port == u16::MAX {
                    49152
                } else {
                    next_port + 1
                };
                if s.connect(iface.context(), *remote, next_port).is_ok()
                    && stream.set_nonblocking(true).is_ok()
                {
                    relays.push(Relay {
                        segment: sockets.add(s),
                        local: stream,
                        inbound: false,
                        preamble_sent: false,
                        to_local: Vec::new(),
                        local_eof: false,
                    });
                }
                busy = true;
            }
        }
        iface.poll(now(), &mut device, &mut sockets);
        // Inbound connections that arrived: connect to the loopback side.
        let mut taken = Vec::new();
        for (i, (handle, _, to)) in listening.iter().enumerate() {
            let s = sockets.get_mut::<tcp::Socket>(*handle);
            if matches!(s.state(), tcp::State::Listen) {
                continue;
            }
            taken.push(i);
            match TcpStream::connect(to).and_then(|st| st.set_nonblocking(true).map(|()| st)) {
                Ok(stream) => relays.push(Relay {
                    segment: *handle,
                    local: stream,
                    inbound: true,
                    preamble_sent: false,
                    to_local: Vec::new(),
                    local_eof: false,
                }),
                Err(_) => s.abort(),
            }
        }
        for i in taken.into_iter().rev() {
            listening.remove(i);
        }
        for relay in &mut relays {
            busy |= pump(relay, &mut sockets);
        }
        relays.retain(|r| {
            let s = sockets.get::<tcp::Socket>(r.segment);
            let done = matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait)
                && r.to_local.is_empty();
            if done {
                let _ = r.local.shutdown(std::net::Shutdown::Both);
            }
            !done
        });
        iface.poll(now(), &mut device, &mut sockets);
        if !busy {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Moves bytes both ways for one relay; returns whether anything moved.
fn pump(relay: &mut Relay, sockets: &mut SocketSet<'_>) -> bool {
    let s = sockets.get_mut::<tcp::Socket>(relay.segment);
    let mut moved = false;
    if !relay.preamble_sent {
        if s.state() != tcp::State::Established {
            return false;
        }
        let (Some(local), Some(remote)) = (s.local_endpoint(), s.remote_endpoint()) else {
            return false;
        };
        // Inbound: the tern host is the source; outbound: the gateway dialed.
        let (source, destination) = if relay.inbound {
            (remote, local)
        } else {
            (local, remote)
        };
        relay
            .to_local
            .extend_from_slice(&preamble(source, destination));
        relay.preamble_sent = true;
    }
    // Segment -> loopback.
    while s.can_recv() && relay.to_local.len() < TCP_BUFFER {
        let before = relay.to_local.len();
        let _ = s.recv(|data| {
            relay.to_local.extend_from_slice(data);
            (data.len(), ())
        });
        if relay.to_local.len() == before {
            break;
        }
    }
    if !relay.to_local.is_empty() {
        match relay.local.write(&relay.to_local) {
            Ok(n) => {
                relay.to_local.drain(..n);
                moved |= n > 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                s.abort();
                relay.to_local.clear();
            }
        }
    }
    // Loopback -> segment.
    if !relay.local_eof && s.can_send() {
        let mut buf = [0u8; 16 * 1024];
        let room = s.send_capacity() - s.send_queue();
        let take = room.min(buf.len());
        if take > 0 {
            match relay.local.read(&mut buf[..take]) {
                Ok(0) => {
                    relay.local_eof = true;
                    s.close();
                }
                Ok(n) => {
                    let _ = s.send_slice(&buf[..n]);
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    relay.local_eof = true;
                    s.abort();
                }
            }
        }
    }
    if !s.may_recv() && relay.to_local.is_empty() && s.state() != tcp::State::Established {
        let _ = relay.local.shutdown(std::net::Shutdown::Write);
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-port stand-in for bxhub: what port 0 sends reaches port 1 and back.
    fn fake_hub(base: u16, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        let a = UdpSocket::bind(("127.0.0.1", base + 1)).expect("hub port 0");
        let b = UdpSocket::bind(("127.0.0.1", base + 3)).expect("hub port 1");
        a.set_nonblocking(true).expect("nonblocking");
        b.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let mut moved = false;
                if let Ok(n) = a.recv(&mut buf) {
                    let _ = b.send_to(&buf[..n], ("127.0.0.1", base + 2));
                    moved = true;
                }
                if let Ok(n) = b.recv(&mut buf) {
                    let _ = a.send_to(&buf[..n], ("127.0.0.1", base));
                    moved = true;
                }
                if !moved {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    }

    #[test]
    fn two_gateways_relay_a_tcp_stream_with_the_segment_endpoints_first() {
        let base = crate::net::free_udp_range(4).expect("udp ports");
        let stop = Arc::new(AtomicBool::new(false));
        let hub = fake_hub(base, stop.clone());
        // Echo server on loopback behind gateway 0 (10.0.0.9:4444 on the segment).
        let echo = TcpListener::bind("127.0.0.1:0").expect("echo");
        let echo_addr = echo.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, _) = echo.accept().expect("accept");
            let mut preamble = [0u8; 12];
            s.read_exact(&mut preamble).expect("preamble");
            let mut buf = vec![0u8; 100_000];
            s.read_exact(&mut buf).expect("payload");
            s.write_all(&buf).expect("echo");
            preamble
        });
        let inbound = Gateway::start(
            base,
            0,
            [2, 0, 0, 0, 0, 9],
            [10, 0, 0, 9],
            GatewayPlan {
                inbound: vec![(4444, echo_addr)],
                outbound: Vec::new(),
            },
        )
        .expect("gateway 0");
        let outbound = Gateway::start(
            base,
            1,
            [2, 0, 0, 0, 0, 8],
            [10, 0, 0, 8],
            GatewayPlan {
                inbound: Vec::new(),
                outbound: vec![([10, 0, 0, 9], 4444)],
            },
        )
        .expect("gateway 1");
        let mut client = TcpStream::connect(outbound.outbound_listeners[0]).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut preamble = [0u8; 12];
        client.read_exact(&mut preamble).expect("preamble");
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        client.write_all(&payload).expect("send");
        let mut back = vec![0u8; payload.len()];
        client.read_exact(&mut back).expect("echo back");
        assert!(back == payload, "the stream arrives intact both ways");
        let server_preamble = server.join().expect("server");
        // Both ends were told the segment connection: 10.0.0.8:port -> 10.0.0.9:4444.
        assert_eq!(preamble, server_preamble);
        assert_eq!(&preamble[..4], &[10, 0, 0, 8]);
        assert_eq!(&preamble[6..10], &[10, 0, 0, 9]);
        assert_eq!(u16::from_le_bytes([preamble[10], preamble[11]]), 4444);
        drop((inbound, outbound));
        stop.store(true, Ordering::Relaxed);
        hub.join().expect("hub");
    }
}
