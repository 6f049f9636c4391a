//! Sans-IO migration sessions: `SourceSession` and `DestinationSession`.
//!
//! A session never touches a socket, a clock or guest memory. The caller feeds it received
//! bytes (`handle_input`), the current time (`handle_timeout`, `poll_timeout`), and local
//! decisions (pages to send, digest computed, offer accepted); it takes bytes to write
//! (`pending_output` / `consume_output`) and events (`poll_event`). This keeps the whole
//! protocol, failure paths included, testable on the host with an in-memory link, and lets
//! the hypervisor drive it from its single-threaded poll loop.
//!
//! ```text
//!  Source                                             Destination
//!  AwaitingHelloReply --Hello(versions,caps,Ns)-->    AwaitingHello
//!                     <--HelloReply(v,caps,Nd,Pd)--   AwaitingAuth
//!  (check Pd) ---------Auth(Ps)------------------->   (check Ps; keys)
//!  AwaitingAccept -----Offer(identity,cpu)-------->   AwaitingOffer -> AwaitingDecision
//!                 <----Accept----------------------   (caller: accept_offer)
//!  Transferring ------Pages*/RoundEnd*/Progress*-->   Receiving
//!                -----VcpuState+/DeviceState*----->
//!                -----MemoryDigest, Commit-------->   AwaitingDigestCheck
//!  AwaitingCommitAck                                  (caller: report_digest)
//!                 <----CommitAck-------------------   AwaitingRelease
//!  Completed ----------Release-------------------->   Released (start the VM)
//!  any error: Abort(reason) either way; source -> Failed (resume VM), destination ->
//!  Failed (discard VM), or InDoubt if it had acknowledged the commit.
//! ```

mod deadlines;
mod destination;
mod destination_types;
mod error;
mod guest_memory;
mod link;
mod receiving;
mod source;
mod source_types;

use core::ops::Add;
use core::time::Duration;

pub use deadlines::{DEFAULT_FRAME_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT};
pub use destination::DestinationSession;
pub use destination_types::{DestinationConfig, DestinationEvent, DestinationState};
pub use error::{SessionError, UsageError};
pub use guest_memory::GuestMemory;
pub use source::SourceSession;
pub use source_types::{SourceConfig, SourceEvent, SourceState};

/// A point in time, in microseconds since an arbitrary origin chosen by the caller (the
/// hypervisor uses the TSC; tests use a simulated clock). Sessions never read a clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// From microseconds.
    pub const fn from_micros(us: u64) -> Self {
        Instant(us)
    }

    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms.saturating_mul(1000))
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self` (zero if `earlier` is later).
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }
}

/// Default idle timeout: a peer silent this long while we wait for it is gone.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default limit of buffered output bytes above which bulk sends are refused.
pub const DEFAULT_OUTPUT_LIMIT: usize = 1024 * 1024;
