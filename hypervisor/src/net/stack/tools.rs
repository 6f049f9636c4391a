//! The operator tools on the stack: ping, nettest, and TCP connections for other users.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::iface::{Interface, SocketHandle};
use smoltcp::socket::{icmp, tcp};
use smoltcp::wire::{IpAddress, IpEndpoint};

use super::{EPHEMERAL_BASE, NetError, NetStack};
use crate::net::nettest::{self, Receiver, Sender, SenderPoll};
use crate::net::ping::{self, Ping};

impl NetStack {
    /// Open a TCP connection to `remote` on `socket` from the next ephemeral port (for
    /// migration and tests); the socket stays in [`NetStack::sockets`] under the handle.
    pub fn tcp_connect(
        &mut self,
        mut socket: tcp::Socket<'static>,
        remote: IpEndpoint,
    ) -> Result<SocketHandle, NetError> {
        self.ensure_ready()?;
        let port = self.take_port();
        socket
            .connect(self.iface.context(), remote, port)
            .map_err(|e| NetError::Socket(format!("{e}")))?;
        Ok(self.sockets.add(socket))
    }

    pub(super) fn take_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port == u16::MAX {
            EPHEMERAL_BASE
        } else {
            port + 1
        };
        port
    }

    /// Status lines of running nettests.
    pub fn nettest_status(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.extend(self.receiver.as_ref().map(Receiver::status));
        lines.extend(self.sender.as_ref().map(Sender::status));
        lines
    }

    /// Whether a ping or nettest is still running.
    pub fn busy(&self) -> bool {
        self.ping.is_some() || self.sender.is_some()
    }

    /// Start `ping target` with `count` requests.
    pub fn start_ping(&mut self, target: Ipv4Addr, count: u16) -> Result<(), NetError> {
        if let Some(ping) = &self.ping {
            return Err(NetError::PingRunning(ping.target()));
        }
        self.ensure_ready()?;
        self.ping_ident = self.ping_ident.wrapping_add(1);
        let mut socket = ping::icmp_socket();
        socket
            .bind(icmp::Endpoint::Ident(self.ping_ident))
            .map_err(|e| NetError::Socket(format!("{e}")))?;
        let handle = self.sockets.add(socket);
        self.say(format!("PING {target}: {} data bytes", ping::DATA_LEN));
        self.ping = Some(Ping::new(
            target,
            count,
            self.ping_ident,
            handle,
            self.now_us,
        ));
        Ok(())
    }

    /// Stop a running ping early (its summary is printed).
    pub fn cancel_ping(&mut self) -> bool {
        match self.ping.take() {
            Some(mut ping) => {
                ping.cancel(&mut self.output);
                self.sockets.remove(ping.handle());
                true
            }
            None => false,
        }
    }

    pub(super) fn ctx(&mut self) -> (nettest::Ctx<'_>, &mut Interface) {
        (
            nettest::Ctx {
                sockets: &mut self.sockets,
                lingering: &mut self.lingering,
                out: &mut self.output,
                now_us: self.now_us,
            },
            &mut self.iface,
        )
    }

    /// Start `nettest listen PORT`.
    pub fn nettest_listen(&mut self, port: u16) -> Result<(), NetError> {
        if self.receiver.is_some() {
            return Err(NetError::NettestBusy("listener"));
        }
        let address = self.ipv4().ok_or(NetError::NoAddress)?;
        let (mut ctx, _) = self.ctx();
        let receiver =
            Receiver::start(port, &mut ctx).map_err(|e| NetError::Socket(format!("{e}")))?;
        self.receiver = Some(receiver);
        self.say(format!(
            "nettest: listening on {}:{port}",
            address.address()
        ));
        Ok(())
    }

    /// Start `nettest send IP:PORT` of `bytes` payload bytes.
    pub fn nettest_send(&mut self, remote: IpEndpoint, bytes: u64) -> Result<(), NetError> {
        if self.sender.is_some() {
            return Err(NetError::NettestBusy("sender"));
        }
        self.ensure_ready()?;
        let port = self.take_port();
        let seed = self.now_us ^ u64::from(port) << 48 ^ 0x5eed;
        let (mut ctx, iface) = self.ctx();
        let sender = Sender::start(remote, port, bytes, seed, iface.context(), &mut ctx)
            .map_err(|e| NetError::Socket(format!("{e}")))?;
        self.sender = Some(sender);
        self.say(format!(
            "nettest: sending {} to {remote}",
            nettest::report::Mib(bytes)
        ));
        Ok(())
    }

    /// Stop the listener and any sender.
    pub fn nettest_stop(&mut self) -> Result<(), NetError> {
        let receiver = self.receiver.take();
        let sender = self.sender.take();
        if receiver.is_none() && sender.is_none() {
            return Err(NetError::NettestIdle);
        }
        let (mut ctx, _) = self.ctx();
        if let Some(receiver) = receiver {
            receiver.stop(&mut ctx);
        }
        if let Some(sender) = sender {
            sender.stop(&mut ctx);
        }
        self.say(String::from("nettest: stopped"));
        Ok(())
    }

    pub(super) fn poll_tools(&mut self) {
        // Free sockets that have closed. This runs before the tools so that a socket aborted
        // below survives the next interface poll, which sends its reset.
        let sockets = &mut self.sockets;
        self.lingering.retain(|&handle| {
            let closed = sockets.get::<tcp::Socket>(handle).state() == tcp::State::Closed;
            if closed {
                sockets.remove(handle);
            }
            !closed
        });
        if let Some(ping) = &mut self.ping {
            let socket = self.sockets.get_mut::<icmp::Socket>(ping.handle());
            if ping.poll(socket, self.now_us, &mut self.output) {
                self.sockets.remove(ping.handle());
                self.ping = None;
            }
        }
        let mut receiver = self.receiver.take();
        let sender = self.sender.take();
        let (mut ctx, _) = self.ctx();
        if let Some(receiver) = &mut receiver {
            receiver.poll(&mut ctx);
        }
        let sender = match sender.map(|s| s.poll(&mut ctx)) {
            Some(SenderPoll::Running(sender)) => Some(sender),
            Some(SenderPoll::Finished(_)) | None => None,
        };
        self.receiver = receiver;
        self.sender = sender;
    }

    /// Whether a nettest sender is running.
    pub fn sending(&self) -> bool {
        self.sender.is_some()
    }

    /// Whether a nettest listener is running.
    pub fn listening(&self) -> bool {
        self.receiver.is_some()
    }
}

/// Parse `a.b.c.d`.
pub fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    text.parse().ok()
}

/// Parse `a.b.c.d:port` into a TCP endpoint.
pub fn parse_endpoint(text: &str) -> Option<IpEndpoint> {
    let (host, port) = text.rsplit_once(':')?;
    let address = parse_ipv4(host)?;
    let port: u16 = port.parse().ok()?;
    (port != 0).then_some(IpEndpoint::new(IpAddress::Ipv4(address), port))
}
