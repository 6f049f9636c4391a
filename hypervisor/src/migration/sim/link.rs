//! An in-memory TCP stand-in: a send buffer per direction drained at a fixed bandwidth per
//! simulated millisecond, with cuts and closes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use crate::migration::transport::{Transport, TransportError};

const SEND_BUFFER: usize = 64 * 1024;

#[derive(Default)]
struct Direction {
    in_flight: VecDeque<u8>,
    arrived: VecDeque<u8>,
    closed: bool,
}

struct Shared {
    dirs: [Direction; 2],
    bytes_per_ms: usize,
    cut: bool,
}

pub struct Endpoint {
    shared: Rc<RefCell<Shared>>,
    side: usize,
}

pub fn link_pair(bytes_per_ms: usize) -> (Endpoint, Endpoint) {
    let shared = Rc::new(RefCell::new(Shared {
        dirs: [Direction::default(), Direction::default()],
        bytes_per_ms,
        cut: false,
    }));
    (
        Endpoint {
            shared: shared.clone(),
            side: 0,
        },
        Endpoint { shared, side: 1 },
    )
}

impl Endpoint {
    /// One millisecond of transmission, both directions.
    pub fn tick(&self) {
        let mut s = self.shared.borrow_mut();
        let bw = s.bytes_per_ms;
        for dir in &mut s.dirs {
            let n = dir.in_flight.len().min(bw);
            let moved: Vec<u8> = dir.in_flight.drain(..n).collect();
            dir.arrived.extend(moved);
        }
    }

    /// The cable is pulled: both ends see a reset.
    pub fn cut(&self) {
        self.shared.borrow_mut().cut = true;
    }
}

impl Transport for Endpoint {
    fn is_established(&self) -> bool {
        true
    }

    fn send(&mut self, bytes: &[u8]) -> Result<usize, TransportError> {
        let mut s = self.shared.borrow_mut();
        if s.cut {
            return Err(TransportError::Reset);
        }
        if s.dirs[1 - self.side].closed || s.dirs[self.side].closed {
            return Err(TransportError::Closed);
        }
        let dir = &mut s.dirs[self.side];
        let n = bytes
            .len()
            .min(SEND_BUFFER.saturating_sub(dir.in_flight.len()));
        dir.in_flight.extend(&bytes[..n]);
        Ok(n)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let mut s = self.shared.borrow_mut();
        if s.cut {
            return Err(TransportError::Reset);
        }
        let peer_closed = s.dirs[1 - self.side].closed;
        let dir = &mut s.dirs[1 - self.side];
        let n = dir.arrived.len().min(buf.len());
        for (slot, byte) in buf.iter_mut().zip(dir.arrived.drain(..n)) {
            *slot = byte;
        }
        if n == 0 && peer_closed && dir.in_flight.is_empty() {
            return Err(TransportError::Closed);
        }
        Ok(n)
    }

    fn close(&mut self) {
        self.shared.borrow_mut().dirs[self.side].closed = true;
    }
}
