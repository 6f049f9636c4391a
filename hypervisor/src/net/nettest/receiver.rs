//! The listening side of nettest: accept, checksum the payload, answer with the verdict,
//! report, and listen again for the next transfer.

use alloc::format;
use alloc::string::String;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::IpEndpoint;

use super::report::{Mib, MibPerSec, Seconds};
use super::stream::Crc32;
use super::wire::{self, HEADER_LEN, Header, RESULT_LEN, TRAILER_LEN};
use super::{BULK_BUFFER, CONTROL_BUFFER, Ctx, PROGRESS_TIMEOUT_US, tcp_socket};

enum Phase {
    Listening,
    Header {
        buf: [u8; HEADER_LEN],
        have: usize,
    },
    Payload {
        header: Header,
        received: u64,
        crc: Crc32,
    },
    Trailer {
        header: Header,
        crc: u32,
        buf: [u8; TRAILER_LEN],
        have: usize,
    },
    Reply {
        result: [u8; RESULT_LEN],
        sent: usize,
        summary: String,
    },
}

/// A `nettest listen PORT` in progress.
pub struct Receiver {
    port: u16,
    handle: SocketHandle,
    phase: Phase,
    peer: Option<IpEndpoint>,
    started_us: u64,
    last_progress_us: u64,
    now_us: u64,
    completed: u32,
}

/// Why a transfer in progress ended badly.
enum Failure {
    Wire(wire::WireError),
}

fn listening_socket(port: u16) -> Result<tcp::Socket<'static>, tcp::ListenError> {
    let mut socket = tcp_socket(BULK_BUFFER, CONTROL_BUFFER);
    socket.listen(port)?;
    Ok(socket)
}

impl Receiver {
    /// Listen on `port`.
    pub fn start(port: u16, ctx: &mut Ctx<'_>) -> Result<Self, tcp::ListenError> {
        let handle = ctx.sockets.add(listening_socket(port)?);
        Ok(Self {
            port,
            handle,
            phase: Phase::Listening,
            peer: None,
            started_us: ctx.now_us,
            last_progress_us: ctx.now_us,
            now_us: ctx.now_us,
            completed: 0,
        })
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// One-line status for `nettest status`.
    pub fn status(&self) -> String {
        let state = match &self.phase {
            Phase::Listening => String::from("waiting for a sender"),
            Phase::Header { .. } => String::from("receiving header"),
            Phase::Payload {
                header, received, ..
            } => {
                format!("receiving {} of {}", Mib(*received), Mib(header.length))
            }
            Phase::Trailer { .. } | Phase::Reply { .. } => String::from("finishing"),
        };
        format!(
            "nettest: listening on port {}, {state}, {} transfer(s) done",
            self.port, self.completed
        )
    }

    /// Stop listening, aborting any transfer in progress.
    pub fn stop(self, ctx: &mut Ctx<'_>) {
        // Aborted sockets linger for one poll so that their reset reaches the peer.
        ctx.sockets.get_mut::<tcp::Socket>(self.handle).abort();
        ctx.lingering.push(self.handle);
    }

    fn payload_received(&self) -> u64 {
        match &self.phase {
            Phase::Payload { received, .. } => *received,
            Phase::Trailer { header, .. } => header.length,
            _ => 0,
        }
    }

    /// Feed received bytes through the phases; returns how many were consumed.
    fn absorb(&mut self, mut data: &[u8]) -> Result<usize, Failure> {
        let total = data.len();
        while !data.is_empty() {
            match &mut self.phase {
                Phase::Listening | Phase::Reply { .. } => break,
                Phase::Header { buf, have } => {
                    let take = (HEADER_LEN - *have).min(data.len());
                    buf[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    data = &data[take..];
                    if *have == HEADER_LEN {
                        let header = Header::parse(buf).map_err(Failure::Wire)?;
                        self.phase = Phase::Payload {
                            header,
                            received: 0,
                            crc: Crc32::new(),
                        };
                    }
                }
                Phase::Payload {
                    header,
                    received,
                    crc,
                } => {
                    let left = header.length - *received;
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    crc.update(&data[..take]);
                    *received += take as u64;
                    data = &data[take..];
                    if *received == header.length {
                        self.phase = Phase::Trailer {
                            header: *header,
                            crc: crc.value(),
                            buf: [0; TRAILER_LEN],
                            have: 0,
                        };
                    }
                }
                Phase::Trailer {
                    header,
                    crc,
                    buf,
                    have,
                } => {
                    let take = (TRAILER_LEN - *have).min(data.len());
                    buf[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    data = &data[take..];
                    if *have == TRAILER_LEN {
                        let expected = wire::parse_trailer(buf).map_err(Failure::Wire)?;
                        let (header, crc) = (*header, *crc);
                        self.phase = self.verdict(header, crc, expected);
                    }
                }
            }
        }
        Ok(total - data.len())
    }

    fn verdict(&self, header: Header, received_crc: u32, sender_crc: u32) -> Phase {
        let ok = received_crc == sender_crc;
        let elapsed = self.now_us.saturating_sub(self.started_us);
        let check = if ok {
            String::from("checksum ok")
        } else {
            format!("checksum MISMATCH (sender {sender_crc:08x}, received {received_crc:08x})")
        };
        let summary = format!(
            "nettest: received {} in {} ({}), {check}",
            Mib(header.length),
            Seconds(elapsed),
            MibPerSec {
                bytes: header.length,
                micros: elapsed
            }
        );
        Phase::Reply {
            result: wire::emit_result(ok),
            sent: 0,
            summary,
        }
    }

    /// Replace the connection's socket by a fresh listening one, letting the old close.
    fn relisten(&mut self, ctx: &mut Ctx<'_>, graceful: bool) {
        let old = self.handle;
        let socket = ctx.sockets.get_mut::<tcp::Socket>(old);
        if graceful {
            socket.close();
        } else {
            socket.abort();
        }
        ctx.lingering.push(old);
        match listening_socket(self.port) {
            Ok(socket) => self.handle = ctx.sockets.add(socket),
            // Unreachable in practice: the port was valid when we started.
            Err(error) => ctx
                .out
                .push_back(format!("nettest: error: cannot listen: {error}")),
        }
        self.phase = Phase::Listening;
        self.peer = None;
    }

    fn fail(&mut self, ctx: &mut Ctx<'_>, message: String) {
        ctx.out.push_back(format!("nettest: error: {message}"));
        self.relisten(ctx, false);
    }

    /// Advance the transfer.
    pub fn poll(&mut self, ctx: &mut Ctx<'_>) {
        self.now_us = ctx.now_us;
        let socket = ctx.sockets.get_mut::<tcp::Socket>(self.handle);
        if let Phase::Listening = self.phase {
            if socket.state() == tcp::State::Established {
                self.peer = socket.remote_endpoint();
                self.started_us = ctx.now_us;
                self.last_progress_us = ctx.now_us;
                self.phase = Phase::Header {
                    buf: [0; HEADER_LEN],
                    have: 0,
                };
                if let Some(peer) = self.peer {
                    ctx.out
                        .push_back(format!("nettest: connection from {peer}"));
                }
            } else if !socket.is_open() {
                // A half-open connection was reset: listen again.
                if let Err(error) = socket.listen(self.port) {
                    ctx.out
                        .push_back(format!("nettest: error: cannot listen: {error}"));
                }
                return;
            } else {
                return;
            }
        }

        let mut progressed = false;
        while socket.can_recv() && !matches!(self.phase, Phase::Reply { .. }) {
            let absorbed = socket.recv(|data| match self.absorb(data) {
                Ok(n) => (n, Ok(n)),
                Err(failure) => (data.len(), Err(failure)),
            });
            match absorbed {
                Ok(Ok(0)) => break,
                Ok(Ok(_)) => progressed = true,
                Ok(Err(Failure::Wire(error))) => {
                    return self.fail(ctx, format!("{error}"));
                }
                // RecvError: the connection is no longer readable; handled below.
                Err(_) => break,
            }
        }
        if progressed {
            self.last_progress_us = ctx.now_us;
        }

        if let Phase::Reply {
            result,
            sent,
            summary,
        } = &mut self.phase
        {
            if let Ok(n) = socket.send_slice(&result[*sent..]) {
                *sent += n;
            }
            if *sent == RESULT_LEN {
                let summary = core::mem::take(summary);
                ctx.out.push_back(summary);
                self.completed += 1;
                return self.relisten(ctx, true);
            }
        }

        let received = self.payload_received();
        let expected = match &self.phase {
            Phase::Payload { header, .. } | Phase::Trailer { header, .. } => header.length,
            _ => 0,
        };
        if !socket.is_active() {
            self.fail(
                ctx,
                format!("connection reset by peer after {received} bytes"),
            );
        } else if !socket.may_recv() && !matches!(self.phase, Phase::Reply { .. }) {
            self.fail(
                ctx,
                format!("peer closed the connection after {received} of {expected} bytes"),
            );
        } else if ctx.now_us.saturating_sub(self.last_progress_us) > PROGRESS_TIMEOUT_US {
            self.fail(
                ctx,
                format!("peer stopped responding after {received} bytes"),
            );
        }
    }
}
