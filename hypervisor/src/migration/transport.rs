//! The byte stream a migration runs over: non-blocking, in both directions.
//!
//! On bare metal it is a smoltcp TCP socket; in host tests an in-memory link with a
//! bandwidth model and fault injection. The engines never block: `send` takes what fits,
//! `recv` returns what has arrived.

use core::fmt;

/// Why the stream is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The peer closed the connection (or it was never opened).
    Closed,
    /// The connection was reset or timed out.
    Reset,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => write!(f, "connection closed"),
            Self::Reset => write!(f, "connection reset"),
        }
    }
}

/// A non-blocking, reliable, ordered byte stream.
pub trait Transport {
    /// Whether the connection is established (a connecting TCP socket is not yet).
    fn is_established(&self) -> bool;
    /// Queues as many bytes as fit; returns how many (0 when full).
    fn send(&mut self, bytes: &[u8]) -> Result<usize, TransportError>;
    /// Reads what has arrived into `buf`; 0 when nothing has.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;
    /// Closes the connection (gracefully when possible).
    fn close(&mut self);
}
