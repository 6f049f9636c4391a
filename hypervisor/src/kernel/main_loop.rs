//! The kernel's main loop: a fixed round of pollers, forever.
//!
//! tern runs single-core with interrupts disabled (see `kernel`): every source of work is
//! polled. Each [`Poller`] gets one turn per round and must return promptly; a turn that has
//! more to do says so with [`PollResult::Busy`] and continues next round. This is where the
//! console, the NIC/smoltcp interface, migration sessions and vCPU time slices (bounded by the
//! VMX preemption timer) take turns, so that a spinning guest never starves the network or the
//! operator. Register a new source with [`MainLoop::add`] in `kernel::entry`.

use alloc::boxed::Box;
use alloc::vec::Vec;

/// What a poller's turn achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollResult {
    /// Nothing was pending.
    Idle,
    /// Work was done (or some is still pending).
    Busy,
}

/// One source of work, polled once per round.
pub trait Poller {
    /// A short name for diagnostics (`info`).
    fn name(&self) -> &'static str;
    /// Does a bounded amount of work. `now_ns` is the uptime at the start of the round.
    fn poll(&mut self, now_ns: u64) -> PollResult;
}

/// Round-robin over the registered pollers.
#[derive(Default)]
pub struct MainLoop {
    pollers: Vec<Box<dyn Poller>>,
    rounds: u64,
    idle_rounds: u64,
}

impl MainLoop {
    pub fn new() -> MainLoop {
        MainLoop::default()
    }

    /// Adds a poller; it is polled after the ones added before it.
    pub fn add(&mut self, poller: Box<dyn Poller>) {
        self.pollers.push(poller);
    }

    /// Runs one round; returns whether any poller was busy.
    pub fn run_round(&mut self, now_ns: u64) -> PollResult {
        let mut result = PollResult::Idle;
        for p in &mut self.pollers {
            if p.poll(now_ns) == PollResult::Busy {
                result = PollResult::Busy;
            }
        }
        self.rounds += 1;
        if result == PollResult::Idle {
            self.idle_rounds += 1;
        }
        result
    }

    /// (rounds, rounds in which nothing was busy): a rough load figure.
    pub fn stats(&self) -> (u64, u64) {
        (self.rounds, self.idle_rounds)
    }

    pub fn poller_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.pollers.iter().map(|p| p.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use core::cell::RefCell;

    struct Recorder {
        name: &'static str,
        log: Rc<RefCell<Vec<(&'static str, u64)>>>,
        busy_turns: u32,
    }

    impl Poller for Recorder {
        fn name(&self) -> &'static str {
            self.name
        }
        fn poll(&mut self, now_ns: u64) -> PollResult {
            self.log.borrow_mut().push((self.name, now_ns));
            if self.busy_turns > 0 {
                self.busy_turns -= 1;
                PollResult::Busy
            } else {
                PollResult::Idle
            }
        }
    }

    #[test]
    fn every_poller_gets_one_turn_per_round_in_order() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut ml = MainLoop::new();
        ml.add(Box::new(Recorder {
            name: "console",
            log: log.clone(),
            busy_turns: 1,
        }));
        ml.add(Box::new(Recorder {
            name: "net",
            log: log.clone(),
            busy_turns: 0,
        }));
        assert_eq!(ml.run_round(10), PollResult::Busy);
        assert_eq!(ml.run_round(20), PollResult::Idle);
        assert_eq!(
            *log.borrow(),
            [("console", 10), ("net", 10), ("console", 20), ("net", 20)]
        );
        assert_eq!(ml.stats(), (2, 1));
        assert_eq!(ml.poller_names().collect::<Vec<_>>(), ["console", "net"]);
    }
}
