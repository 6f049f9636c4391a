//! The serial console as a main-loop poller: bytes go to the shell, or, while the operator
//! is attached to a VM (`vm console NAME`), to that VM's UART until the escape
//! (`console::attach`).

use alloc::string::String;

use super::main_loop::{PollResult, Poller};
use crate::arch::serial::{SerialWriter, try_read_byte, write_bytes};
use crate::console::Shell;
use crate::console::attach::{ConsoleAttachment, ESCAPE_NAME, Routed};

/// Most input bytes handled per turn, so a paste cannot starve the other pollers.
const BYTES_PER_TURN: usize = 64;

/// Which VM the console is attached to: set by `vm console`, read by the VMs' output
/// (`kernel::vms::ConsoleLines`) and by this poller.
pub static ATTACHMENT: spin::Mutex<ConsoleAttachment> = spin::Mutex::new(ConsoleAttachment::new());

pub struct ConsolePoller {
    shell: Shell,
}

impl ConsolePoller {
    /// Creates the poller and prints the first prompt.
    pub fn new(mut shell: Shell) -> ConsolePoller {
        shell.set_prompt_gate(|| ATTACHMENT.lock().attached().is_none());
        shell.start(&mut SerialWriter);
        ConsolePoller { shell }
    }

    /// Hands queued keystrokes to the attached VM; detaches if the VM is gone. Never holds
    /// the attachment lock while the VMs' lock is taken.
    fn deliver(&mut self) -> bool {
        let (vm, chunk) = {
            let a = ATTACHMENT.lock();
            match a.attached() {
                Some(vm) => (String::from(vm), a.pending_input().to_vec()),
                None => return false,
            }
        };
        if chunk.is_empty() {
            return false;
        }
        match super::vms::serial_input(&vm, &chunk) {
            Some(taken) => {
                ATTACHMENT.lock().consume_input(taken);
                taken > 0
            }
            None => {
                ATTACHMENT.lock().detach();
                write_bytes(
                    alloc::format!("\r\nVM '{vm}' is gone: console detached\r\n").as_bytes(),
                );
                self.shell.start(&mut SerialWriter);
                true
            }
        }
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
            result = PollResult::Busy;
            let routed = ATTACHMENT.lock().route(byte);
            match routed {
                Routed::Shell(b) => self.shell.feed(b, &mut SerialWriter),
                Routed::Guest => {}
                Routed::Detached => {
                    write_bytes(alloc::format!("\r\n({ESCAPE_NAME}) detached\r\n").as_bytes());
                    self.shell.start(&mut SerialWriter);
                }
            }
        }
        if self.deliver() {
            result = PollResult::Busy;
        }
        result
    }
}
