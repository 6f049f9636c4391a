//! What both directions share over std TCP: the session clock, nonces, the endpoints the
//! handshake is bound to, and moving bytes without blocking.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use migration_proto::crypto::Endpoints;
use migration_proto::session::Instant;

/// Microseconds since the program started: the sessions' clock.
pub struct Clock(std::time::Instant);

impl Clock {
    /// Starts the clock.
    pub fn start() -> Self {
        Clock(std::time::Instant::now())
    }

    /// Now, for the sessions.
    pub fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX))
    }
}

/// 32 fresh random bytes for a session nonce.
pub fn nonce() -> io::Result<[u8; 32]> {
    let mut nonce = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut nonce)?;
    Ok(nonce)
}

/// The connection's endpoints ordered as (source, destination), when both are IPv4.
/// `we_are_source`: this program dialed (send) or accepted (receive).
pub fn endpoints(stream: &TcpStream, we_are_source: bool) -> io::Result<Option<Endpoints>> {
    let (SocketAddr::V4(local), SocketAddr::V4(peer)) = (stream.local_addr()?, stream.peer_addr()?)
    else {
        return Ok(None);
    };
    let local = (local.ip().octets(), local.port());
    let peer = (peer.ip().octets(), peer.port());
    Ok(Some(if we_are_source {
        Endpoints {
            source: local,
            destination: peer,
        }
    } else {
        Endpoints {
            source: peer,
            destination: local,
        }
    }))
}

/// Where the endpoints the handshake is bound to come from (protocol v3 binds it to the
/// connection's addresses as each side sees them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointBinding {
    /// This connection's own addresses: the normal case.
    Socket,
    /// Testing only: a relay between this program and the tern host (the system tests'
    /// gateway onto an emulated Ethernet segment) writes the far connection's endpoints as
    /// the first 12 bytes of the stream: source IPv4, source port (LE), destination IPv4,
    /// destination port (LE). Trusting it defeats the binding's protection against
    /// redirected connections, which is why it is a test switch.
    FromRelay,
}

/// The endpoints to bind the handshake to, for a connection just set up (blocking).
pub fn bound_endpoints(
    stream: &mut TcpStream,
    binding: EndpointBinding,
    we_are_source: bool,
) -> io::Result<Option<Endpoints>> {
    match binding {
        EndpointBinding::Socket => endpoints(stream, we_are_source),
        EndpointBinding::FromRelay => {
            stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
            let mut raw = [0u8; 12];
            stream.read_exact(&mut raw)?;
            stream.set_read_timeout(None)?;
            let ip = |at: usize| [raw[at], raw[at + 1], raw[at + 2], raw[at + 3]];
            let port = |at: usize| u16::from_le_bytes([raw[at], raw[at + 1]]);
            Ok(Some(Endpoints {
                source: (ip(0), port(4)),
                destination: (ip(6), port(10)),
            }))
        }
    }
}

/// What one non-blocking read gave.
pub enum Received {
    /// Bytes arrived (how many are in the buffer).
    Bytes(usize),
    /// Nothing now.
    Nothing,
    /// The peer closed or the connection broke.
    Closed,
}

/// One non-blocking read.
pub fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> Received {
    match stream.read(buf) {
        Ok(0) => Received::Closed,
        Ok(n) => Received::Bytes(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Received::Nothing
        }
        Err(_) => Received::Closed,
    }
}

/// Writes what the socket takes now: the number of bytes written, `None` when the
/// connection broke.
pub fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> Option<usize> {
    if bytes.is_empty() {
        return Some(0);
    }
    match stream.write(bytes) {
        Ok(n) => Some(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Some(0)
        }
        Err(_) => None,
    }
}

/// Pause between polls when nothing moved.
pub fn idle() {
    std::thread::sleep(std::time::Duration::from_millis(1));
}
