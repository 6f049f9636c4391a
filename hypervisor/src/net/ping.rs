//! `ping IP`: ICMP echo requests one second apart, replies with round-trip times, a summary.
//!
//! A non-blocking state machine over an smoltcp ICMP socket bound to our identifier; the
//! stack advances it on every poll, so the console stays usable while it runs. Each request
//! carries 56 bytes of data (64 bytes of ICMP, like the classic `ping`).

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::iface::SocketHandle;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::icmp;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};

use crate::net::nettest::report::Millis;

/// Bytes of echo data after the 8-byte ICMP header.
pub const DATA_LEN: usize = 56;
/// Time between requests.
pub const INTERVAL_US: u64 = 1_000_000;
/// A request unanswered this long is reported lost.
pub const REPLY_TIMEOUT_US: u64 = 2_000_000;

/// An ICMP socket with room for a few echo packets each way.
pub fn icmp_socket() -> icmp::Socket<'static> {
    let buffer =
        || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0u8; 8 * 128]);
    icmp::Socket::new(buffer(), buffer())
}

/// A running `ping`.
pub struct Ping {
    target: Ipv4Addr,
    ident: u16,
    count: u16,
    handle: SocketHandle,
    next_seq: u16,
    next_send_us: u64,
    outstanding: Vec<(u16, u64)>,
    transmitted: u16,
    received: u16,
    rtt_min_us: u64,
    rtt_max_us: u64,
    rtt_sum_us: u64,
}

impl Ping {
    /// Start pinging `target` `count` times; the socket must be bound to `Ident(ident)`.
    pub fn new(target: Ipv4Addr, count: u16, ident: u16, handle: SocketHandle, now: u64) -> Self {
        Self {
            target,
            ident,
            count,
            handle,
            next_seq: 0,
            next_send_us: now,
            outstanding: Vec::new(),
            transmitted: 0,
            received: 0,
            rtt_min_us: u64::MAX,
            rtt_max_us: 0,
            rtt_sum_us: 0,
        }
    }

    /// The socket this ping uses (to be removed by the stack once finished).
    pub fn handle(&self) -> SocketHandle {
        self.handle
    }

    /// The target address.
    pub fn target(&self) -> Ipv4Addr {
        self.target
    }

    fn send(&mut self, socket: &mut icmp::Socket<'_>, now: u64, out: &mut VecDeque<String>) {
        let seq = self.next_seq;
        let mut data = [0u8; DATA_LEN];
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = i as u8;
        }
        data[..8].copy_from_slice(&now.to_le_bytes());
        let repr = Icmpv4Repr::EchoRequest {
            ident: self.ident,
            seq_no: seq,
            data: &data,
        };
        match socket.send(repr.buffer_len(), IpAddress::Ipv4(self.target)) {
            Ok(buf) => {
                let mut packet = Icmpv4Packet::new_unchecked(buf);
                repr.emit(&mut packet, &ChecksumCapabilities::default());
                self.outstanding.push((seq, now));
            }
            Err(error) => out.push_back(format!("ping: icmp_seq={seq} not sent: {error}")),
        }
        self.transmitted += 1;
        self.next_seq += 1;
        self.next_send_us = self.next_send_us.saturating_add(INTERVAL_US).max(now);
    }

    fn take_replies(
        &mut self,
        socket: &mut icmp::Socket<'_>,
        now: u64,
        out: &mut VecDeque<String>,
    ) {
        while let Ok((payload, from)) = socket.recv() {
            if from != IpAddress::Ipv4(self.target) {
                continue;
            }
            let Ok(packet) = Icmpv4Packet::new_checked(payload) else {
                continue;
            };
            let Ok(Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            }) = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default())
            else {
                continue;
            };
            if ident != self.ident {
                continue;
            }
            let Some(index) = self.outstanding.iter().position(|&(seq, _)| seq == seq_no) else {
                // A duplicate or a reply that arrived after its timeout was reported.
                continue;
            };
            let (_, sent) = self.outstanding.swap_remove(index);
            let rtt = now.saturating_sub(sent);
            self.received += 1;
            self.rtt_min_us = self.rtt_min_us.min(rtt);
            self.rtt_max_us = self.rtt_max_us.max(rtt);
            self.rtt_sum_us += rtt;
            out.push_back(format!(
                "{} bytes from {}: icmp_seq={seq_no} time={}",
                data.len() + 8,
                self.target,
                Millis(rtt)
            ));
        }
    }

    /// Advance; returns `true` once finished (summary printed).
    pub fn poll(
        &mut self,
        socket: &mut icmp::Socket<'_>,
        now: u64,
        out: &mut VecDeque<String>,
    ) -> bool {
        self.take_replies(socket, now, out);
        self.outstanding.retain(|&(seq, sent)| {
            let lost = now.saturating_sub(sent) > REPLY_TIMEOUT_US;
            if lost {
                out.push_back(format!("ping: no reply for icmp_seq={seq}"));
            }
            !lost
        });
        if self.next_seq < self.count && now >= self.next_send_us {
            self.send(socket, now, out);
        }
        let finished = self.next_seq >= self.count && self.outstanding.is_empty();
        if finished {
            self.summary(out);
        }
        finished
    }

    /// Stop early (the summary is printed).
    pub fn cancel(&mut self, out: &mut VecDeque<String>) {
        self.summary(out);
    }

    fn summary(&self, out: &mut VecDeque<String>) {
        let sent = u32::from(self.transmitted);
        let got = u32::from(self.received);
        let loss = ((sent - got) * 100).checked_div(sent).unwrap_or(0);
        out.push_back(format!("--- {} ping statistics ---", self.target));
        out.push_back(format!(
            "{sent} packets transmitted, {got} received, {loss}% packet loss"
        ));
        if got > 0 {
            out.push_back(format!(
                "rtt min/avg/max = {}/{}/{}",
                Millis(self.rtt_min_us),
                Millis(self.rtt_sum_us / u64::from(got)),
                Millis(self.rtt_max_us)
            ));
        }
    }
}
