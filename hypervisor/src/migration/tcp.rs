//! [`Transport`] over a smoltcp TCP socket of the host's network stack.
//!
//! The socket lives in the stack's `SocketSet` under a handle; a `TcpTransport` borrows the
//! set for one poll of an engine. smoltcp keeps the bytes a `send` accepted until the peer
//! acknowledges them, and `close` sends FIN after them, so a Release or Abort queued just
//! before closing still reaches the peer.

use alloc::vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};

use super::transport::{Transport, TransportError};

/// Socket buffer size per direction: enough to keep an emulated link busy between two
/// polls, small enough that a window's burst fits the peer NIC's receive ring.
pub const SOCKET_BUFFER: usize = 32 * 1024;

/// Seconds without an acknowledgement after which the connection is declared dead.
pub const CONNECTION_TIMEOUT_SECS: u64 = 15;

/// A fresh TCP socket with migration-sized buffers.
pub fn new_socket() -> tcp::Socket<'static> {
    let rx = tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]);
    let tx = tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]);
    let mut socket = tcp::Socket::new(rx, tx);
    socket.set_nagle_enabled(false);
    // A peer that stops acknowledging (killed, rebooted, cable cut) must end the migration,
    // not stall it forever: smoltcp aborts the connection after this long without an ACK,
    // and keep-alives find a silent peer while nothing is being sent.
    socket.set_timeout(Some(smoltcp::time::Duration::from_secs(
        CONNECTION_TIMEOUT_SECS,
    )));
    socket.set_keep_alive(Some(smoltcp::time::Duration::from_secs(2)));
    socket
}

/// One migration connection, for the duration of one poll.
pub struct TcpTransport<'a> {
    /// The stack's sockets.
    pub sockets: &'a mut SocketSet<'static>,
    /// The connection's socket.
    pub handle: SocketHandle,
}

impl TcpTransport<'_> {
    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.handle)
    }
}

fn still_opening(state: State) -> bool {
    matches!(state, State::Listen | State::SynSent | State::SynReceived)
}

impl Transport for TcpTransport<'_> {
    fn is_established(&self) -> bool {
        let socket = self.sockets.get::<tcp::Socket>(self.handle);
        socket.may_send() || socket.may_recv()
    }

    fn send(&mut self, bytes: &[u8]) -> Result<usize, TransportError> {
        let socket = self.socket();
        if socket.may_send() {
            return socket.send_slice(bytes).map_err(|_| TransportError::Reset);
        }
        if still_opening(socket.state()) {
            Ok(0)
        } else {
            Err(TransportError::Closed)
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let socket = self.socket();
        if socket.can_recv() {
            return socket.recv_slice(buf).map_err(|_| TransportError::Reset);
        }
        if socket.may_recv() || still_opening(socket.state()) {
            Ok(0)
        } else {
            Err(TransportError::Closed)
        }
    }

    fn close(&mut self) {
        self.socket().close();
    }
}
