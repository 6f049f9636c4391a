//! Emulator processes that are always cleaned up: each runs in its own process group (the
//! `bochs` wrapper and `bochs-bin`, or QEMU and its helper threads, go together) and the
//! whole group is killed when the handle is dropped, whether the test passed, failed or
//! panicked.

use crate::HarnessError;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child process leading its own process group, killed on drop.
pub struct ProcessGroup {
    child: Child,
    status: Option<ExitStatus>,
}

impl ProcessGroup {
    /// Start `cmd` in a new process group with stdin from /dev/null and stdout + stderr
    /// appended to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Result<ProcessGroup, HarnessError> {
        use std::os::unix::process::CommandExt as _;
        let out = std::fs::File::create(log)
            .map_err(|e| HarnessError::io(format!("create {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| HarnessError::io("clone log file handle", e))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .spawn()
            .map_err(|source| HarnessError::Spawn { program, source })?;
        Ok(ProcessGroup {
            child,
            status: None,
        })
    }

    /// The leader's process id (= the process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Wait up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill the whole group (SIGKILL) and reap the leader.
    pub fn kill(&mut self) {
        // Kill the group even if the leader is gone: a helper it left behind still belongs
        // to the group. `kill -- -PGID` addresses the group; std has no killpg.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}
