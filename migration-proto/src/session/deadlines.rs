//! Deadlines of the destination beyond the idle timer, so that no peer can hold the
//! incoming slot by trickling bytes (each byte resets the idle timer):
//!
//! - **handshake deadline**: from the accepted connection to a checked `Offer` (Hello,
//!   HelloReply, Auth, Offer) there is one budget for the whole exchange, whatever arrives;
//! - **frame deadline**: once the first byte of a frame arrived, the rest of it must follow
//!   within a bound, so a frame cannot be stretched over minutes one byte at a time.
//!
//! Pure bookkeeping over `Instant`s; `DestinationSession` consults it in `poll_timeout` /
//! `handle_timeout` next to the idle timer.

use core::time::Duration;

use super::{DestinationState, Instant, SessionError};

/// Default budget for the whole handshake (connection to offer).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a peer may take to deliver one frame once it started it.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// When the session started and when the frame in progress began.
#[derive(Clone, Copy, Debug)]
pub(super) struct Deadlines {
    started: Instant,
    frame_started: Option<Instant>,
}

impl Deadlines {
    pub(super) fn new(now: Instant) -> Self {
        Deadlines {
            started: now,
            frame_started: None,
        }
    }

    /// Bytes of an incomplete frame are buffered (the frame's clock starts at its first
    /// sighting and keeps running until the frame is complete).
    pub(super) fn partial_frame(&mut self, now: Instant) {
        self.frame_started.get_or_insert(now);
    }

    /// A frame was completed and consumed.
    pub(super) fn frame_complete(&mut self) {
        self.frame_started = None;
    }

    fn handshake_deadline(&self, state: DestinationState, budget: Duration) -> Option<Instant> {
        in_handshake(state).then(|| self.started + budget)
    }

    fn frame_deadline(&self, state: DestinationState, budget: Duration) -> Option<Instant> {
        if state.waits_for_peer() {
            self.frame_started.map(|t| t + budget)
        } else {
            None
        }
    }

    /// The earliest of these deadlines, if any applies in `state`.
    pub(super) fn next(
        &self,
        state: DestinationState,
        handshake: Duration,
        frame: Duration,
    ) -> Option<Instant> {
        match (
            self.handshake_deadline(state, handshake),
            self.frame_deadline(state, frame),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The error for a deadline that passed at `now`, if one did.
    pub(super) fn expired(
        &self,
        state: DestinationState,
        handshake: Duration,
        frame: Duration,
        now: Instant,
    ) -> Option<SessionError> {
        if self
            .handshake_deadline(state, handshake)
            .is_some_and(|t| now >= t)
        {
            return Some(SessionError::TooSlow {
                what: "handshake not finished in time",
                state: state.name(),
            });
        }
        if self.frame_deadline(state, frame).is_some_and(|t| now >= t) {
            return Some(SessionError::TooSlow {
                what: "frame not completed in time",
                state: state.name(),
            });
        }
        None
    }
}

/// States before a checked offer: the peer has not yet shown it holds the key and what it
/// wants, so it gets one budget for all of them.
fn in_handshake(state: DestinationState) -> bool {
    matches!(
        state,
        DestinationState::AwaitingHello
            | DestinationState::AwaitingAuth
            | DestinationState::AwaitingOffer
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(10);
    const F: Duration = Duration::from_secs(30);

    fn at(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    #[test]
    fn handshake_budget_counts_from_the_start_in_every_handshake_state() {
        let d = Deadlines::new(at(5));
        for state in [
            DestinationState::AwaitingHello,
            DestinationState::AwaitingAuth,
            DestinationState::AwaitingOffer,
        ] {
            assert_eq!(d.next(state, H, F), Some(at(15)));
            assert!(d.expired(state, H, F, at(14)).is_none());
            assert!(matches!(
                d.expired(state, H, F, at(15)),
                Some(SessionError::TooSlow { .. })
            ));
        }
        // After the offer only the frame deadline applies (none without a partial frame).
        assert_eq!(d.next(DestinationState::Receiving, H, F), None);
        assert!(
            d.expired(DestinationState::Receiving, H, F, at(99))
                .is_none()
        );
    }

    #[test]
    fn frame_deadline_runs_from_the_first_partial_byte_until_completion() {
        let mut d = Deadlines::new(at(0));
        d.partial_frame(at(100));
        d.partial_frame(at(120)); // more bytes of the same frame: the clock keeps running
        let s = DestinationState::Receiving;
        assert_eq!(d.next(s, H, F), Some(at(130)));
        assert!(d.expired(s, H, F, at(129)).is_none());
        assert!(d.expired(s, H, F, at(130)).is_some());
        d.frame_complete();
        assert_eq!(d.next(s, H, F), None);
        // Local decisions (no peer awaited) never time out the frame.
        d.partial_frame(at(200));
        assert_eq!(d.next(DestinationState::AwaitingDigestCheck, H, F), None);
    }

    #[test]
    fn the_earlier_deadline_wins() {
        let mut d = Deadlines::new(at(0));
        d.partial_frame(at(1));
        assert_eq!(
            d.next(DestinationState::AwaitingHello, H, Duration::from_secs(2)),
            Some(at(3))
        );
        assert_eq!(d.next(DestinationState::AwaitingHello, H, F), Some(at(10)));
    }
}
