//! `evacuate HOST:PORT`: every VM of this host migrated to one peer, one after another.
//!
//! Why one after another and not in parallel: the host has one outgoing migration engine
//! and one core; migrations in parallel would share the same link and CPU, each converging
//! more slowly (more dirty pages per round) for no gain in total time. Sequential also
//! makes the failure rule simple: **the first failure stops the evacuation**; the VM that
//! failed was resumed here by its engine, and the VMs not yet tried were never touched, so
//! everything not reported as moved keeps running on this host. The operator reads one
//! line per VM and a summary that names what moved and what stayed.
//!
//! A peer takes one incoming migration at a time and re-arms its listener only once the
//! previous VM is settled, so the next VM's connection can be refused for a moment right
//! after the previous one moved (seen in Bochs). A refused connection is therefore retried
//! for up to [`REFUSED_RETRY_US`] before it counts as the VM's failure; nothing was sent
//! then, so retrying is safe.
//!
//! This is the bookkeeping only (host-tested); the kernel (`kernel/migration`) starts each
//! migration and reports its outcome here.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// How long a VM's refused connections are retried (microseconds).
pub const REFUSED_RETRY_US: u64 = 15_000_000;
/// Pause between two attempts (microseconds).
pub const RETRY_DELAY_US: u64 = 1_000_000;

/// One evacuation in progress.
#[derive(Debug)]
pub struct Evacuation {
    target: String,
    total: usize,
    pending: VecDeque<String>,
    current: Option<String>,
    moved: Vec<String>,
    /// The VM that failed and why; set once, ends the evacuation.
    failed: Option<(String, String)>,
    /// When the current VM's connection was first refused.
    refused_since: Option<u64>,
}

impl Evacuation {
    /// An evacuation of `vms` (in this order) to `target` (`HOST:PORT` as typed); `None`
    /// when there is nothing to move.
    pub fn new(target: String, vms: Vec<String>) -> Option<Self> {
        if vms.is_empty() {
            return None;
        }
        Some(Evacuation {
            target,
            total: vms.len(),
            pending: vms.into(),
            current: None,
            moved: Vec::new(),
            failed: None,
            refused_since: None,
        })
    }

    /// `info migrate`'s line while it runs.
    pub fn status_line(&self) -> String {
        format!(
            "evacuation: to {}: {} of {} VMs moved, now '{}', {} waiting",
            self.target,
            self.moved.len(),
            self.total,
            self.current.as_deref().unwrap_or("-"),
            self.pending.len()
        )
    }

    /// The line printed when it starts.
    pub fn start_line(&self) -> String {
        let names: Vec<&str> = self.pending.iter().map(String::as_str).collect();
        format!(
            "evacuate: moving {} VM{} to {} one after another: {}",
            self.total,
            if self.total == 1 { "" } else { "s" },
            self.target,
            names.join(", ")
        )
    }

    /// The next VM to migrate, if the evacuation goes on (it becomes the current one).
    pub fn next_vm(&mut self) -> Option<String> {
        if self.failed.is_some() || self.current.is_some() {
            return None;
        }
        let vm = self.pending.pop_front()?;
        self.current = Some(vm.clone());
        Some(vm)
    }

    /// The VM being migrated now.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// The current VM's connection was refused at `now_us`: whether to try it again (after
    /// [`RETRY_DELAY_US`]) rather than report it failed.
    pub fn retry_refused(&mut self, now_us: u64) -> bool {
        if self.current.is_none() {
            return false;
        }
        let since = *self.refused_since.get_or_insert(now_us);
        now_us.saturating_sub(since) < REFUSED_RETRY_US
    }

    /// The current VM's migration ended (`Err`: why it failed or could not start); returns
    /// its report line.
    pub fn finished(&mut self, result: Result<(), String>) -> String {
        self.refused_since = None;
        let vm = self.current.take().unwrap_or_default();
        let index = self.moved.len() + 1;
        match result {
            Ok(()) => {
                let line = format!(
                    "evacuate: [{index}/{}] '{vm}' moved to {}",
                    self.total, self.target
                );
                self.moved.push(vm);
                line
            }
            Err(why) => {
                let line = format!(
                    "evacuate: [{index}/{}] '{vm}' failed: {why}; it keeps running on this host",
                    self.total
                );
                self.failed = Some((vm, why));
                line
            }
        }
    }

    /// Whether nothing more will be migrated.
    pub fn is_done(&self) -> bool {
        self.current.is_none() && (self.failed.is_some() || self.pending.is_empty())
    }

    /// The last line: what moved and, after a failure, what stayed.
    pub fn summary(&self) -> String {
        let moved = self.moved.len();
        match &self.failed {
            None => format!(
                "evacuate: done: {moved} of {} VMs moved to {}; none left on this host",
                self.total, self.target
            ),
            Some((vm, _)) => {
                let mut stayed: Vec<&str> = Vec::with_capacity(1 + self.pending.len());
                stayed.push(vm);
                stayed.extend(self.pending.iter().map(String::as_str));
                format!(
                    "evacuate: stopped after '{vm}' failed: {moved} of {} VMs moved to {}{}; \
                     staying on this host (running): {}",
                    self.total,
                    self.target,
                    if moved == 0 {
                        String::new()
                    } else {
                        format!(" ({})", self.moved.join(", "))
                    },
                    stayed.join(", ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nothing_to_evacuate_is_no_evacuation() {
        assert!(Evacuation::new("10.0.0.2:7000".into(), Vec::new()).is_none());
    }

    #[test]
    fn every_vm_moves_in_order_with_a_line_each() {
        let mut e = Evacuation::new("10.0.0.2:7000".into(), names(&["a", "b"])).unwrap();
        assert_eq!(
            e.start_line(),
            "evacuate: moving 2 VMs to 10.0.0.2:7000 one after another: a, b"
        );
        assert_eq!(e.next_vm().as_deref(), Some("a"));
        assert_eq!(e.next_vm(), None, "one at a time");
        assert!(!e.is_done());
        assert_eq!(
            e.finished(Ok(())),
            "evacuate: [1/2] 'a' moved to 10.0.0.2:7000"
        );
        assert_eq!(e.next_vm().as_deref(), Some("b"));
        assert_eq!(
            e.finished(Ok(())),
            "evacuate: [2/2] 'b' moved to 10.0.0.2:7000"
        );
        assert!(e.is_done());
        assert_eq!(e.next_vm(), None);
        assert_eq!(
            e.summary(),
            "evacuate: done: 2 of 2 VMs moved to 10.0.0.2:7000; none left on this host"
        );
    }

    #[test]
    fn a_failure_stops_and_names_everything_that_stays() {
        let mut e = Evacuation::new("10.0.0.2:7000".into(), names(&["a", "b", "c"])).unwrap();
        e.next_vm();
        e.finished(Ok(()));
        assert_eq!(e.next_vm().as_deref(), Some("b"));
        let line = e.finished(Err("connection refused".into()));
        assert_eq!(
            line,
            "evacuate: [2/3] 'b' failed: connection refused; it keeps running on this host"
        );
        assert!(e.is_done());
        assert_eq!(e.next_vm(), None, "c is never tried");
        assert_eq!(
            e.summary(),
            "evacuate: stopped after 'b' failed: 1 of 3 VMs moved to 10.0.0.2:7000 (a); \
             staying on this host (running): b, c"
        );
    }

    #[test]
    fn a_refused_connection_is_retried_for_a_while_then_fails() {
        let mut e = Evacuation::new("h:1".into(), names(&["a", "b"])).unwrap();
        assert!(!e.retry_refused(0), "nothing is being migrated yet");
        e.next_vm();
        e.finished(Ok(()));
        e.next_vm();
        assert!(e.retry_refused(1_000));
        assert!(e.retry_refused(1_000 + REFUSED_RETRY_US - 1));
        assert!(!e.retry_refused(1_000 + REFUSED_RETRY_US), "gives up");
        e.finished(Err("refused".into()));
        assert!(e.is_done());
    }

    #[test]
    fn each_vm_gets_its_own_retry_budget() {
        let mut e = Evacuation::new("h:1".into(), names(&["a", "b"])).unwrap();
        e.next_vm();
        assert!(e.retry_refused(0));
        e.finished(Ok(()));
        e.next_vm();
        assert!(
            e.retry_refused(REFUSED_RETRY_US * 3),
            "b's budget starts at its refusal"
        );
    }

    #[test]
    fn a_first_failure_moves_nothing() {
        let mut e = Evacuation::new("h:1".into(), vec!["a".into(), "b".into()]).unwrap();
        e.next_vm();
        e.finished(Err("refused".into()));
        assert_eq!(
            e.summary(),
            "evacuate: stopped after 'a' failed: 0 of 2 VMs moved to h:1; staying on this \
             host (running): a, b"
        );
    }
}
