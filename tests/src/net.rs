//! Local ports for consoles and emulated networks. TCP listeners are bound by the harness
//! itself (port 0, then handed over as a listener, never re-bound: no race). UDP port ranges
//! for bxhub must be passed to another process, so they are probed: bound and released.

use crate::HarnessError;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

/// UDP ranges this process has handed out. Probing only proves a port free at that moment:
/// two hubs started by parallel tests of one process would otherwise both get the same range
/// (the first hub has not bound its ports yet when the second probes).
static HANDED_OUT: Mutex<Vec<(u16, u16)>> = Mutex::new(Vec::new());

/// A TCP listener on 127.0.0.1 with a port chosen by the kernel.
pub fn listen_local() -> Result<(TcpListener, u16), HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::io("bind a local TCP port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| HarnessError::io("read the bound TCP port", e))?
        .port();
    Ok((listener, port))
}

/// A free TCP port (bound and released: another process may take it before you do, so use
/// it at once).
pub fn free_tcp_port() -> Result<u16, HarnessError> {
    listen_local().map(|(_, port)| port)
}

/// A base UDP port such that `base .. base + count` were all free when probed.
pub fn free_udp_range(count: u16) -> Result<u16, HarnessError> {
    // Start from a process-dependent point in the dynamic range so parallel test binaries
    // do not probe the same bases first.
    let start = 20_000 + (std::process::id() % 1_000) as u16 * 20;
    let mut base = start;
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..200 {
        let end = base.saturating_add(count);
        let overlaps = handed_out.iter().any(|&(b, e)| base < e && b < end);
        let all_free =
            !overlaps && (0..count).all(|i| UdpSocket::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            handed_out.push((base, end));
            return Ok(base);
        }
        base = base.wrapping_add(count.max(1) + 7);
        if !(20_000..=60_000).contains(&base) {
            base = 20_000;
        }
    }
    Err(HarnessError::io(
        "find free UDP ports",
        std::io::Error::new(std::io::ErrorKind::AddrInUse, "no free range"),
    ))
}
