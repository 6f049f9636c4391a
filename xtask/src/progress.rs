//! One line when a step starts and one when it ends, with its duration: enough to see where
//! a 20-minute CI run spends its time, without a progress-bar dependency.

use std::time::{Duration, Instant};

/// A named step of a longer job.
pub struct Step {
    name: String,
    started: Instant,
}

impl Step {
    /// Announce the step.
    pub fn start(name: impl Into<String>) -> Step {
        let name = name.into();
        eprintln!("[xtask] {name} ...");
        Step {
            name,
            started: Instant::now(),
        }
    }

    /// Time since the step started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Announce the step's end.
    pub fn done(self) -> Duration {
        let took = self.elapsed();
        eprintln!("[xtask] {}: done in {}", self.name, seconds(took));
        took
    }
}

/// `12.3s`
pub fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
