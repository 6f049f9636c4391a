//! The sending side of nettest: connect, stream header + payload + trailer, wait for the
//! receiver's verdict, report.

use alloc::format;
use alloc::string::String;

use smoltcp::iface::{Context, SocketHandle};
use smoltcp::socket::tcp;
use smoltcp::wire::IpEndpoint;

use super::report::{Mib, MibPerSec, Seconds};
use super::stream::{Crc32, PayloadStream};
use super::wire::{self, HEADER_LEN, Header, RESULT_LEN, TRAILER_LEN};
use super::{BULK_BUFFER, CONTROL_BUFFER, Ctx, PROGRESS_TIMEOUT_US, tcp_socket};

enum Phase {
    Connecting,
    Sending {
        header_sent: usize,
        payload_sent: u64,
        trailer_sent: usize,
    },
    AwaitResult {
        buf: [u8; RESULT_LEN],
        have: usize,
    },
}

/// A `nettest send IP:PORT MiB` in progress.
pub struct Sender {
    remote: IpEndpoint,
    handle: SocketHandle,
    header: Header,
    stream: PayloadStream,
    crc: Crc32,
    phase: Phase,
    started_us: u64,
    last_progress_us: u64,
    last_send_queue: usize,
    enqueued: u64,
}

/// The result of advancing a [`Sender`].
pub enum SenderPoll {
    /// Still transferring.
    Running(Sender),
    /// Ended; the console line has been queued.
    Finished(SendOutcome),
}

/// How a finished sender ended (the console line has already been queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// The receiver confirmed the checksum.
    Verified,
    /// The receiver reported a checksum mismatch.
    Mismatch,
    /// The transfer failed (connect, reset, timeout, protocol).
    Failed,
}

impl Sender {
    /// Connect to `remote` from `local_port` and prepare `length` bytes seeded by `seed`.
    pub fn start(
        remote: IpEndpoint,
        local_port: u16,
        length: u64,
        seed: u64,
        cx: &mut Context,
        ctx: &mut Ctx<'_>,
    ) -> Result<Self, tcp::ConnectError> {
        let mut socket = tcp_socket(CONTROL_BUFFER, BULK_BUFFER);
        socket.connect(cx, remote, local_port)?;
        let handle = ctx.sockets.add(socket);
        Ok(Self {
            remote,
            handle,
            header: Header { length, seed },
            stream: PayloadStream::new(seed),
            crc: Crc32::new(),
            phase: Phase::Connecting,
            started_us: ctx.now_us,
            last_progress_us: ctx.now_us,
            last_send_queue: 0,
            enqueued: 0,
        })
    }

    /// One-line status for `nettest status`.
    pub fn status(&self) -> String {
        let state = match &self.phase {
            Phase::Connecting => String::from("connecting"),
            Phase::Sending { payload_sent, .. } => {
                format!(
                    "queued {} of {}",
                    Mib(*payload_sent),
                    Mib(self.header.length)
                )
            }
            Phase::AwaitResult { .. } => String::from("waiting for the receiver's verdict"),
        };
        format!("nettest: sending to {}, {state}", self.remote)
    }

    /// Abort the transfer.
    pub fn stop(self, ctx: &mut Ctx<'_>) {
        // Aborted sockets linger for one poll so that their reset reaches the peer.
        ctx.sockets.get_mut::<tcp::Socket>(self.handle).abort();
        ctx.lingering.push(self.handle);
    }

    /// Payload bytes the peer has acknowledged.
    fn acknowledged(&self, send_queue: usize) -> u64 {
        let acked = self.enqueued.saturating_sub(send_queue as u64);
        acked
            .saturating_sub(HEADER_LEN as u64)
            .min(self.header.length)
    }

    fn finish(self, ctx: &mut Ctx<'_>, line: String, outcome: SendOutcome) -> SendOutcome {
        ctx.out.push_back(line);
        let socket = ctx.sockets.get_mut::<tcp::Socket>(self.handle);
        if outcome == SendOutcome::Failed {
            socket.abort();
        } else {
            socket.close();
        }
        ctx.lingering.push(self.handle);
        outcome
    }

    /// Fill the socket's send buffer from header, payload and trailer in turn.
    fn fill(&mut self, socket: &mut tcp::Socket<'_>) -> u64 {
        let mut queued = 0u64;
        loop {
            let Phase::Sending {
                header_sent,
                payload_sent,
                trailer_sent,
            } = &mut self.phase
            else {
                return queued;
            };
            let header = self.header;
            let stream = &mut self.stream;
            let crc = &mut self.crc;
            let result = socket.send(|buf| {
                let mut at = 0;
                if *header_sent < HEADER_LEN {
                    let bytes = header.emit();
                    let take = (HEADER_LEN - *header_sent).min(buf.len());
                    buf[..take].copy_from_slice(&bytes[*header_sent..*header_sent + take]);
                    *header_sent += take;
                    at += take;
                }
                if *header_sent == HEADER_LEN && *payload_sent < header.length {
                    let left = header.length - *payload_sent;
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(buf.len() - at);
                    let chunk = &mut buf[at..at + take];
                    stream.fill(chunk);
                    crc.update(chunk);
                    *payload_sent += take as u64;
                    at += take;
                }
                if *payload_sent == header.length && *trailer_sent < TRAILER_LEN {
                    let bytes = wire::emit_trailer(crc.value());
                    let take = (TRAILER_LEN - *trailer_sent).min(buf.len() - at);
                    buf[at..at + take].copy_from_slice(&bytes[*trailer_sent..*trailer_sent + take]);
                    *trailer_sent += take;
                    at += take;
                }
                (at, (at, *trailer_sent == TRAILER_LEN))
            });
            match result {
                Ok((n, done)) => {
                    queued += n as u64;
                    if done {
                        self.phase = Phase::AwaitResult {
                            buf: [0; RESULT_LEN],
                            have: 0,
                        };
                    } else if n == 0 {
                        return queued;
                    }
                }
                Err(_) => return queued,
            }
        }
    }

    /// Advance the transfer; consumes the sender once it has ended.
    pub fn poll(mut self, ctx: &mut Ctx<'_>) -> SenderPoll {
        let now = ctx.now_us;
        let socket = ctx.sockets.get_mut::<tcp::Socket>(self.handle);
        if let Phase::Connecting = self.phase {
            match socket.state() {
                tcp::State::Established => {
                    self.started_us = now;
                    self.last_progress_us = now;
                    self.phase = Phase::Sending {
                        header_sent: 0,
                        payload_sent: 0,
                        trailer_sent: 0,
                    };
                }
                tcp::State::Closed | tcp::State::TimeWait => {
                    let line = format!("nettest: error: connection refused by {}", self.remote);
                    return SenderPoll::Finished(self.finish(ctx, line, SendOutcome::Failed));
                }
                _ if now.saturating_sub(self.started_us) > PROGRESS_TIMEOUT_US => {
                    let line = format!(
                        "nettest: error: could not connect to {} (no answer in {} s)",
                        self.remote,
                        PROGRESS_TIMEOUT_US / 1_000_000
                    );
                    return SenderPoll::Finished(self.finish(ctx, line, SendOutcome::Failed));
                }
                _ => return SenderPoll::Running(self),
            }
        }

        let queued = self.fill(socket);
        self.enqueued += queued;
        let send_queue = socket.send_queue();
        let mut progressed = queued > 0 || send_queue < self.last_send_queue;
        self.last_send_queue = send_queue;

        if let Phase::AwaitResult { buf, have } = &mut self.phase {
            if let Ok(n) = socket.recv_slice(&mut buf[*have..]) {
                progressed |= n > 0;
                *have += n;
            }
            if *have == RESULT_LEN {
                let elapsed = now.saturating_sub(self.started_us);
                let sent = format!(
                    "nettest: sent {} in {} ({})",
                    Mib(self.header.length),
                    Seconds(elapsed),
                    MibPerSec {
                        bytes: self.header.length,
                        micros: elapsed
                    }
                );
                let (line, outcome) = match wire::parse_result(buf) {
                    Ok(true) => (
                        format!("{sent}, receiver reports checksum ok"),
                        SendOutcome::Verified,
                    ),
                    Ok(false) => (
                        format!("{sent}, receiver reports checksum MISMATCH"),
                        SendOutcome::Mismatch,
                    ),
                    Err(error) => (
                        format!("nettest: error: bad verdict from receiver: {error}"),
                        SendOutcome::Failed,
                    ),
                };
                return SenderPoll::Finished(self.finish(ctx, line, outcome));
            }
        }
        if progressed {
            self.last_progress_us = now;
        }

        let acked = self.acknowledged(send_queue);
        if !socket.is_active() {
            let line = format!("nettest: error: connection reset by peer after {acked} bytes");
            return SenderPoll::Finished(self.finish(ctx, line, SendOutcome::Failed));
        }
        if matches!(self.phase, Phase::AwaitResult { .. }) && !socket.may_recv() {
            let line = String::from(
                "nettest: error: peer closed the connection without reporting a result",
            );
            return SenderPoll::Finished(self.finish(ctx, line, SendOutcome::Failed));
        }
        if now.saturating_sub(self.last_progress_us) > PROGRESS_TIMEOUT_US {
            let line = format!("nettest: error: peer stopped responding after {acked} bytes");
            return SenderPoll::Finished(self.finish(ctx, line, SendOutcome::Failed));
        }
        SenderPoll::Running(self)
    }
}
