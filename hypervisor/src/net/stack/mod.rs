//! The hypervisor's network stack: one NIC, one smoltcp interface, its sockets, and the
//! operator tools (ping, nettest) running on them.
//!
//! Everything is advanced by [`NetStack::poll`] from the main loop with the current
//! monotonic time; nothing blocks. Lines meant for the operator (ping replies, nettest
//! reports, link changes, DHCP leases) are queued and written out by
//! [`NetStack::drain_output`], so a command returns at once and its results appear as they
//! happen. Migration sessions will add their own TCP sockets through [`NetStack::sockets`].

mod announce;
mod tools;

pub use tools::{parse_endpoint, parse_ipv4};

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::net::Ipv4Addr;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};

use super::bench::RxSink;
use super::nettest::{Receiver, Sender};
use super::nic::{Nic, NicCounters};
use super::nic_device::NicDevice;
use super::ping::Ping;
use announce::Announcer;

/// How the interface gets its IPv4 address (mapped from the boot configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetMode {
    /// A fixed address.
    Static {
        /// Our address.
        address: Ipv4Addr,
        /// Prefix length (0..=32).
        prefix_len: u8,
        /// Default gateway, if any.
        gateway: Option<Ipv4Addr>,
    },
    /// Ask a DHCPv4 server.
    Dhcp,
    /// No IPv4 configuration: the NIC is up but the stack has no address.
    Disabled,
}

/// Network configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// Address assignment.
    pub mode: NetMode,
    /// Station MAC to use instead of the NIC's own.
    pub mac: Option<[u8; 6]>,
    /// MTU the NIC is set up for (`[net] mtu`); TCP's MSS follows from it.
    pub mtu: usize,
}

/// Why a network operation could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The prefix length is above 32.
    InvalidPrefix(u8),
    /// The PHY reports no link.
    LinkDown,
    /// The interface has no IPv4 address (DHCP pending or networking disabled).
    NoAddress,
    /// Only one ping at a time.
    PingRunning(Ipv4Addr),
    /// Only one nettest listener / sender at a time.
    NettestBusy(&'static str),
    /// Nothing to stop.
    NettestIdle,
    /// smoltcp refused to open the socket.
    Socket(String),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPrefix(len) => write!(f, "invalid prefix length /{len}"),
            Self::LinkDown => write!(f, "link is down (check the cable / emulator netdev)"),
            Self::NoAddress => write!(f, "no IPv4 address configured yet"),
            Self::PingRunning(target) => write!(f, "a ping to {target} is already running"),
            Self::NettestBusy(what) => write!(f, "a nettest {what} is already running"),
            Self::NettestIdle => write!(f, "no nettest is running"),
            Self::Socket(error) => write!(f, "cannot open socket: {error}"),
        }
    }
}

/// How often the PHY link state is sampled (an MMIO read per sample).
const LINK_POLL_US: u64 = 100_000;
/// First ephemeral port for outgoing connections (RFC 6335 dynamic range).
const EPHEMERAL_BASE: u16 = 49152;

/// The network stack.
pub struct NetStack {
    device: NicDevice,
    iface: Interface,
    sockets: SocketSet<'static>,
    mode: NetMode,
    gateway: Option<Ipv4Addr>,
    dhcp: Option<SocketHandle>,
    ping: Option<Ping>,
    receiver: Option<Receiver>,
    sender: Option<Sender>,
    lingering: Vec<SocketHandle>,
    output: VecDeque<String>,
    now_us: u64,
    link: bool,
    last_link_check_us: u64,
    next_port: u16,
    ping_ident: u16,
    announcer: Announcer,
    bench_rx: RxSink,
}

fn instant(now_us: u64) -> Instant {
    Instant::from_micros(i64::try_from(now_us).unwrap_or(i64::MAX))
}

impl NetStack {
    /// Bring up the stack on `nic`. `random_seed` should differ per boot (e.g. from the TSC)
    /// so TCP sequence numbers and ports do not repeat.
    pub fn new(
        nic: Box<dyn Nic>,
        config: &NetConfig,
        random_seed: u64,
        now_us: u64,
    ) -> Result<Self, NetError> {
        let mut device = NicDevice::new(nic);
        let mac = EthernetAddress(device.nic().mac());
        let link = device.nic().link_up();
        let mut iface_config = Config::new(HardwareAddress::Ethernet(mac));
        iface_config.random_seed = random_seed;
        let mut iface = Interface::new(iface_config, &mut device, instant(now_us));
        let mut sockets = SocketSet::new(vec![]);
        let mut gateway = None;
        let mut dhcp = None;
        match config.mode {
            NetMode::Static {
                address,
                prefix_len,
                gateway: gw,
            } => {
                if prefix_len > 32 {
                    return Err(NetError::InvalidPrefix(prefix_len));
                }
                iface.update_ip_addrs(|addrs| {
                    // A fresh interface has room for at least one address.
                    let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(address, prefix_len)));
                });
                if let Some(gw) = gw {
                    iface
                        .routes_mut()
                        .add_default_ipv4_route(gw)
                        .map_err(|_| NetError::Socket(String::from("route table full")))?;
                    gateway = Some(gw);
                }
            }
            NetMode::Dhcp => dhcp = Some(sockets.add(dhcpv4::Socket::new())),
            NetMode::Disabled => {}
        }
        let mut output = VecDeque::new();
        if !link {
            output.push_back(String::from("net: link is down"));
        }
        let mut announcer = Announcer::idle();
        if link {
            announcer.trigger(now_us);
        }
        Ok(Self {
            device,
            iface,
            sockets,
            mode: config.mode,
            gateway,
            dhcp,
            ping: None,
            receiver: None,
            sender: None,
            lingering: Vec::new(),
            output,
            now_us,
            link,
            last_link_check_us: now_us,
            next_port: EPHEMERAL_BASE + (random_seed % 8192) as u16,
            ping_ident: (random_seed >> 16) as u16,
            announcer,
            bench_rx: RxSink::default(),
        })
    }

    /// The NIC.
    pub fn nic(&mut self) -> &mut dyn Nic {
        self.device.nic()
    }

    /// NIC counters.
    pub fn counters(&mut self) -> NicCounters {
        self.device.nic().counters()
    }

    /// Link state as last sampled.
    pub fn link_up(&self) -> bool {
        self.link
    }

    /// The configured address mode.
    pub fn mode(&self) -> NetMode {
        self.mode
    }

    /// Our IPv4 address and prefix, if any.
    pub fn ipv4(&self) -> Option<Ipv4Cidr> {
        self.iface.ip_addrs().iter().find_map(|cidr| match cidr {
            IpCidr::Ipv4(v4) => Some(*v4),
            // Other families exist once smoltcp's proto-ipv6 is enabled.
            #[allow(unreachable_patterns)]
            _ => None,
        })
    }

    /// The default gateway, if any.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway
    }

    /// What arrived of raw benchmark frames since the last call (`netbench rx`); resets.
    pub fn take_bench_rx(&mut self) -> RxSink {
        core::mem::take(&mut self.bench_rx)
    }

    /// The socket set, for other users of the stack (migration).
    pub fn sockets(&mut self) -> &mut SocketSet<'static> {
        &mut self.sockets
    }

    /// Write queued operator lines (each followed by `\n`) to `out`.
    pub fn drain_output(&mut self, out: &mut dyn Write) -> fmt::Result {
        while let Some(line) = self.output.pop_front() {
            out.write_str(&line)?;
            out.write_str("\n")?;
        }
        Ok(())
    }

    /// Queue a line for the operator.
    fn say(&mut self, line: String) {
        self.output.push_back(line);
    }

    fn ensure_ready(&mut self) -> Result<Ipv4Cidr, NetError> {
        if !self.device.nic().link_up() {
            self.link = false;
            return Err(NetError::LinkDown);
        }
        self.ipv4().ok_or(NetError::NoAddress)
    }

    fn poll_link(&mut self) {
        if self.now_us.saturating_sub(self.last_link_check_us) < LINK_POLL_US {
            return;
        }
        self.last_link_check_us = self.now_us;
        let link = self.device.nic().link_up();
        if link != self.link {
            self.link = link;
            if link {
                self.announcer.trigger(self.now_us);
            }
            self.say(String::from(if link {
                "net: link is up"
            } else {
                "net: link is down"
            }));
        }
    }

    fn poll_dhcp(&mut self) {
        let Some(handle) = self.dhcp else { return };
        let event = self.sockets.get_mut::<dhcpv4::Socket>(handle).poll();
        match event {
            None => {}
            Some(dhcpv4::Event::Configured(config)) => {
                let address = config.address;
                let router = config.router;
                self.iface.update_ip_addrs(|addrs| {
                    addrs.clear();
                    let _ = addrs.push(IpCidr::Ipv4(address));
                });
                self.iface.routes_mut().remove_default_ipv4_route();
                if let Some(router) = router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(router);
                }
                self.gateway = router;
                self.announcer.trigger(self.now_us);
                let via = router.map(|r| format!(" via {r}")).unwrap_or_default();
                self.say(format!("net: DHCP lease {address}{via}"));
            }
            Some(dhcpv4::Event::Deconfigured) => {
                self.iface.update_ip_addrs(|addrs| addrs.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                self.gateway = None;
                self.say(String::from("net: DHCP lease lost"));
            }
        }
    }

    /// Broadcast an ARP announcement of our address when one is due (see [`announce`]).
    fn poll_announce(&mut self) {
        if !self.link || !self.announcer.due(self.now_us) {
            return;
        }
        let Some(cidr) = self.ipv4() else { return };
        let mac = self.device.nic().mac();
        let frame = announce::announcement(mac, cidr.address());
        // A full ring or a link that just went down skips this one; the series has another.
        let _ = self.device.nic().transmit(&frame);
    }

    /// Advance everything to `now_us` (monotonic microseconds): NIC, smoltcp, DHCP, ping,
    /// nettest. Call it from the main loop as often as possible.
    pub fn poll(&mut self, now_us: u64) {
        self.now_us = self.now_us.max(now_us);
        self.poll_link();
        let now = instant(self.now_us);
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        let (frames, bytes) = self.device.take_bench_rx();
        self.bench_rx.record(frames, bytes, self.now_us);
        self.poll_dhcp();
        self.poll_announce();
        self.poll_tools();
        // Send what the tools just queued without waiting for the next round.
        self.iface.poll(now, &mut self.device, &mut self.sockets);
    }

    /// How long the main loop may wait before the stack needs polling again (microseconds),
    /// `None` if only an incoming frame can create work.
    pub fn poll_delay_us(&mut self) -> Option<u64> {
        let delay = self.iface.poll_delay(instant(self.now_us), &self.sockets);
        let tools = (self.ping.is_some() || self.sender.is_some() || self.receiver.is_some())
            .then_some(10_000);
        match (delay.map(|d| d.total_micros()), tools) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
