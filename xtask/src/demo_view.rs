//! Both hosts' consoles shown live during `cargo xtask demo`: every line is printed the
//! moment it arrives, prefixed with the host's name (`alpha | ...`, ` beta | ...`), and the
//! demo waits for milestones by watching the same lines.
//!
//! Why not `expect` as the system tests do: `expect` returns text only once its pattern has
//! arrived, so a newcomer watching the demo would see nothing for a minute and then every
//! pre-copy round and a few hundred beats at once. Here the lines are the display, and the
//! milestones are predicates over them.

use anyhow::{Result, bail};
use std::time::{Duration, Instant};
use system_tests::pair::{HOST_NAMES, Pair};

/// How often the consoles are polled for new lines.
const POLL: Duration = Duration::from_millis(50);

/// Lines that end the demo with an error wherever they appear.
const ALARMS: [(&str, &str); 4] = [
    ("CORRUPT", "the guest found corrupted memory"),
    ("*** PANIC", "a hypervisor panicked"),
    ("] CRASHED", "a VM crashed"),
    ("migrate: failed", "the migration failed"),
];

/// The two consoles of a pair, printed as lines arrive.
pub struct LiveView<'a> {
    pair: &'a mut Pair,
}

impl<'a> LiveView<'a> {
    pub fn new(pair: &'a mut Pair) -> Self {
        LiveView { pair }
    }

    /// Type `line` at host `index`'s console (its echo shows up in the stream).
    pub fn type_line(&mut self, index: usize, line: &str) -> Result<()> {
        self.pair.hosts[index]
            .console()
            .send_line(line)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Print both hosts' new lines until `done` has returned true, for a line of either
    /// host, as often as `times` says; returns the lines `done` accepted. Fails on an alarm
    /// line, a closed console, or after `timeout`.
    pub fn until(
        &mut self,
        what: &str,
        timeout: Duration,
        times: usize,
        mut done: impl FnMut(usize, &str) -> bool,
    ) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut accepted = Vec::new();
        loop {
            for index in 0..2 {
                for line in self.pair.hosts[index].console().take_lines() {
                    show(index, &line);
                    if let Some((_, why)) = ALARMS.iter().find(|(word, _)| line.contains(word)) {
                        bail!("{why}: `{}`", line.trim());
                    }
                    if accepted.len() < times && done(index, &line) {
                        accepted.push(line);
                    }
                }
            }
            if accepted.len() >= times {
                return Ok(accepted);
            }
            for (host, name) in self.pair.hosts.iter_mut().zip(HOST_NAMES) {
                if host.console().is_closed() {
                    bail!(
                        "{name} closed its console (the emulator exited) while waiting for {what}"
                    );
                }
            }
            if Instant::now() >= deadline {
                bail!("no {what} within {} s", timeout.as_secs());
            }
            std::thread::sleep(POLL);
        }
    }
}

/// One console line, prefixed with its host's name.
fn show(index: usize, line: &str) {
    let line = line.trim_end();
    if !line.trim().is_empty() {
        println!("{:>5} | {line}", HOST_NAMES[index]);
    }
}
