//! `nettest`: a TCP throughput and integrity test between two hypervisors.
//!
//! One side runs `nettest listen PORT`, the other `nettest send IP:PORT MiB`. The sender
//! streams a seeded pseudo-random payload framed by [`wire`]; the receiver checksums what
//! arrives, compares with the sender's trailer and answers with the verdict. Both sides
//! report size, time and throughput. Both are non-blocking state machines advanced by the
//! stack's poll, so the console stays responsive during a transfer; a peer that stops
//! answering ends the transfer with an error after [`PROGRESS_TIMEOUT_US`], never a hang.

mod receiver;
pub mod report;
mod sender;
pub mod stream;
pub mod wire;

pub use receiver::Receiver;
pub use sender::{SendOutcome, Sender, SenderPoll};

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;

/// A transfer with no progress for this long (no byte received, queued or acknowledged)
/// fails with "peer stopped responding".
pub const PROGRESS_TIMEOUT_US: u64 = 10_000_000;

/// Receive buffer of the listening side, send buffer of the sending side (the TCP window).
pub const BULK_BUFFER: usize = 128 * 1024;
/// The small buffer in the other direction (header, result).
pub const CONTROL_BUFFER: usize = 1024;

/// What a nettest state machine needs from the stack on each poll.
pub struct Ctx<'a> {
    /// The stack's sockets.
    pub sockets: &'a mut SocketSet<'static>,
    /// Sockets being closed gracefully; the stack frees them once closed.
    pub lingering: &'a mut Vec<SocketHandle>,
    /// Lines for the console.
    pub out: &'a mut VecDeque<String>,
    /// Monotonic time in microseconds.
    pub now_us: u64,
}

/// A TCP socket with `rx` and `tx` bytes of buffer.
pub fn tcp_socket(rx: usize, tx: usize) -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; rx]),
        tcp::SocketBuffer::new(vec![0u8; tx]),
    );
    // Bulk transfer: send full segments instead of waiting for ACKs of small ones.
    socket.set_nagle_enabled(false);
    // Reno (integer-only, fine without an FPU) instead of blasting the whole peer window:
    // emulated NICs behind UDP hubs (Bochs' eth_socket takes one frame per millisecond of
    // emulated time) drop the tail of a 128 KiB burst, and without congestion control every
    // loss is repaired by a go-back-N resend of the same burst after a >= 1 s RTO.
    socket.set_congestion_control(tcp::CongestionControl::Reno);
    socket
}
