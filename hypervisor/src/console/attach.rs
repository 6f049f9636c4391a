//! `vm console NAME`: the operator's serial console attached to one VM's UART, like
//! `virsh console` or a telnet session.
//!
//! Why a state machine of its own: while a VM is attached, every console byte is the
//! guest's (Ctrl-C, arrows, a pasted script), except one escape byte that returns to the
//! shell. Deciding that per byte, and buffering keystrokes the guest's 16-byte receive FIFO
//! cannot take yet, is portable logic tested here; the kernel's console poller only moves
//! bytes (`kernel::console_poller`), and `kernel::vms` shows the attached VM's output raw
//! (no `[NAME]` prefix, no line assembly) while other VMs keep their prefixed lines.
//!
//! The escape is **Ctrl-]** (0x1d), as in telnet and `virsh console`.

use alloc::collections::VecDeque;
use alloc::string::String;

/// The byte that detaches: Ctrl-] (ASCII GS).
pub const ESCAPE: u8 = 0x1d;
/// How to write the escape in messages.
pub const ESCAPE_NAME: &str = "Ctrl-]";
/// Keystrokes kept for the guest while its UART is full; more are dropped (and counted).
pub const MAX_PENDING_INPUT: usize = 1024;

/// Where one console byte goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// To the shell (no VM attached).
    Shell(u8),
    /// Queued for the attached guest ([`ConsoleAttachment::take_input`]).
    Guest,
    /// The escape: the console is back at the shell.
    Detached,
}

/// Which VM, if any, the console is attached to, and its undelivered keystrokes.
#[derive(Debug, Default)]
pub struct ConsoleAttachment {
    vm: Option<String>,
    pending: VecDeque<u8>,
    dropped: u64,
}

impl ConsoleAttachment {
    /// Not attached.
    pub const fn new() -> Self {
        Self {
            vm: None,
            pending: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Attaches to `vm` (replacing any earlier attachment and its pending input).
    pub fn attach(&mut self, vm: &str) {
        self.vm = Some(vm.into());
        self.pending.clear();
        self.dropped = 0;
    }

    /// Back to the shell; returns the VM that was attached.
    pub fn detach(&mut self) -> Option<String> {
        self.pending.clear();
        self.vm.take()
    }

    /// The attached VM.
    pub fn attached(&self) -> Option<&str> {
        self.vm.as_deref()
    }

    /// Whether `vm`'s output is shown raw now.
    pub fn is_attached(&self, vm: &str) -> bool {
        self.vm.as_deref() == Some(vm)
    }

    /// Routes one console byte.
    pub fn route(&mut self, byte: u8) -> Routed {
        if self.vm.is_none() {
            return Routed::Shell(byte);
        }
        if byte == ESCAPE {
            self.detach();
            return Routed::Detached;
        }
        if self.pending.len() < MAX_PENDING_INPUT {
            self.pending.push_back(byte);
        } else {
            self.dropped += 1;
        }
        Routed::Guest
    }

    /// Queued keystrokes not yet delivered, oldest first (possibly not all of them: the
    /// rest follow once these are consumed).
    pub fn pending_input(&self) -> &[u8] {
        self.pending.as_slices().0
    }

    /// The guest took the first `n` bytes of [`pending_input`](Self::pending_input)
    /// (more than queued is taken as all).
    pub fn consume_input(&mut self, n: usize) {
        let n = n.min(self.pending.len());
        self.pending.drain(..n);
    }

    /// [`pending_input`](Self::pending_input) to `deliver`, which returns how many bytes
    /// the guest took (its UART's free space); the rest stay queued in order.
    pub fn take_input(&mut self, deliver: impl FnOnce(&[u8]) -> usize) {
        let front = self.pending_input();
        if front.is_empty() {
            return;
        }
        let taken = deliver(front).min(front.len());
        self.consume_input(taken);
    }

    /// Keystrokes dropped because the guest did not read them in time.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The line printed when the console attaches.
pub fn attach_banner(vm: &str) -> String {
    alloc::format!("attached to VM '{vm}' (escape character is {ESCAPE_NAME})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn without_a_vm_everything_goes_to_the_shell() {
        let mut c = ConsoleAttachment::new();
        assert_eq!(c.route(b'a'), Routed::Shell(b'a'));
        assert_eq!(c.route(ESCAPE), Routed::Shell(ESCAPE));
        assert_eq!(c.attached(), None);
    }

    #[test]
    fn attached_bytes_reach_the_guest_in_order_and_the_escape_detaches() {
        let mut c = ConsoleAttachment::new();
        c.attach("hb");
        assert!(c.is_attached("hb"));
        assert!(!c.is_attached("other"));
        for &b in b"ls\x03\r" {
            assert_eq!(c.route(b), Routed::Guest, "Ctrl-C is the guest's");
        }
        let mut got = Vec::new();
        c.take_input(|bytes| {
            got.extend_from_slice(bytes);
            bytes.len()
        });
        assert_eq!(got, b"ls\x03\r");
        assert_eq!(c.route(ESCAPE), Routed::Detached);
        assert_eq!(c.attached(), None);
        assert_eq!(c.route(b'x'), Routed::Shell(b'x'));
    }

    #[test]
    fn a_full_uart_keeps_the_rest_for_later_and_a_flood_is_bounded() {
        let mut c = ConsoleAttachment::new();
        c.attach("vm1");
        for b in 0x40..0x68u8 {
            c.route(b);
        }
        let mut got = Vec::new();
        // The guest's FIFO takes 16 bytes per turn.
        for _ in 0..3 {
            c.take_input(|bytes| {
                let n = bytes.len().min(16);
                got.extend_from_slice(&bytes[..n]);
                n
            });
        }
        assert_eq!(got, (0x40..0x68u8).collect::<Vec<_>>());
        // A guest that never reads: the queue stops at its bound and counts the rest.
        for _ in 0..MAX_PENDING_INPUT + 5 {
            c.route(b'y');
        }
        assert_eq!(c.dropped(), 5);
        c.take_input(|_| 0);
        c.take_input(|bytes| bytes.len() + 10); // a liar cannot take more than offered
        // Detaching discards what the guest never took.
        c.route(b'z');
        c.detach();
        c.attach("vm1");
        let mut after = 0;
        c.take_input(|bytes| {
            after = bytes.len();
            0
        });
        assert_eq!(after, 0, "a new attachment starts empty");
        assert_eq!(c.dropped(), 0);
    }

    #[test]
    fn attaching_elsewhere_replaces_the_attachment() {
        let mut c = ConsoleAttachment::new();
        c.attach("a");
        c.route(b'1');
        c.attach("b");
        assert!(c.is_attached("b"));
        let mut offered = 0;
        c.take_input(|bytes| {
            offered = bytes.len();
            0
        });
        assert_eq!(offered, 0);
        assert_eq!(
            attach_banner("b"),
            "attached to VM 'b' (escape character is Ctrl-])"
        );
    }
}
