//! The serial console as a main-loop poller.

use super::main_loop::{PollResult, Poller};
use crate::arch::serial::{SerialWriter, try_read_byte};
use crate::console::Shell;

/// Most input bytes handled per turn, so a paste cannot starve the other pollers.
const BYTES_PER_TURN: usize = 64;

pub struct ConsolePoller {
    shell: Shell,
}

impl ConsolePoller {
    /// Creates the poller and prints the first prompt.
    pub fn new(shell: Shell) -> ConsolePoller {
        shell.start(&mut SerialWriter);
        ConsolePoller { shell }
    }
}

impl Poller for ConsolePoller {
    fn name(&self) -> &'static str {
        "console"
    }

    fn poll(&mut self, _now_ns: u64) -> PollResult {
        let mut result = PollResult::Idle;
        for _ in 0..BYTES_PER_TURN {
            let Some(byte) = try_read_byte() else { break };
            self.shell.feed(byte, &mut SerialWriter);
            result = PollResult::Busy;
        }
        result
    }
}
