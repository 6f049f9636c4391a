//! Joining the operator's terminal to a host's serial console over TCP, for Bochs (which
//! has no stdio serial) and for `cargo xtask console PORT`.
//!
//! The terminal goes to raw mode (`stty raw -echo`: keys go to the host as typed, the host
//! echoes), and Ctrl-A X leaves, as in QEMU. Without a terminal (stdin piped), lines are
//! forwarded with Enter sent as `\r`, as a terminal would.

use anyhow::{Context, Result};
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const CTRL_A: u8 = 0x01;

/// Terminal settings saved by `stty -g`, restored on drop.
struct RawMode {
    saved: Option<String>,
}

impl RawMode {
    fn enter() -> RawMode {
        if !std::io::stdin().is_terminal() {
            return RawMode { saved: None };
        }
        let saved = Command::new("stty")
            .arg("-g")
            .stdin(Stdio::inherit())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
        if saved.is_some() {
            let _ = Command::new("stty")
                .args(["raw", "-echo"])
                .stdin(Stdio::inherit())
                .status();
        }
        RawMode { saved }
    }

    fn is_raw(&self) -> bool {
        self.saved.is_some()
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = Command::new("stty")
                .arg(saved)
                .stdin(Stdio::inherit())
                .status();
        }
    }
}

/// Copy between the terminal and `stream` until the host closes the line or the operator
/// presses Ctrl-A X. Returns whether the operator asked to quit.
pub fn bridge(stream: TcpStream) -> Result<bool> {
    let raw = RawMode::enter();
    let raw_mode = raw.is_raw();
    eprint!("[xtask] console connected: Ctrl-A X quits\r\n");
    let mut to_host = stream.try_clone().context("clone console stream")?;
    let quit_stream = stream.try_clone().context("clone console stream")?;
    let keyboard = std::thread::spawn(move || -> bool {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 256];
        let mut after_ctrl_a = false;
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            let mut out = Vec::with_capacity(n);
            for &byte in &buf[..n] {
                if after_ctrl_a {
                    after_ctrl_a = false;
                    if byte == b'x' || byte == b'X' {
                        let _ = quit_stream.shutdown(std::net::Shutdown::Both);
                        return true;
                    }
                    out.push(CTRL_A);
                }
                match byte {
                    CTRL_A => after_ctrl_a = true,
                    b'\n' if !raw_mode => out.push(b'\r'),
                    other => out.push(other),
                }
            }
            if to_host.write_all(&out).is_err() {
                return false;
            }
        }
    });
    let mut from_host = stream;
    let mut stdout = std::io::stdout().lock();
    let mut buf = [0u8; 4096];
    let mut last = 0u8;
    loop {
        let n = match from_host.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n + 16);
        for &byte in &buf[..n] {
            // In raw mode the terminal does not turn a lone LF into CR LF.
            if raw_mode && byte == b'\n' && last != b'\r' {
                out.push(b'\r');
            }
            out.push(byte);
            last = byte;
        }
        if stdout
            .write_all(&out)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    drop(raw);
    // The keyboard thread may sit in a read of stdin forever; only ask it if it finished.
    let quit = keyboard.is_finished() && keyboard.join().unwrap_or(false);
    Ok(quit)
}

/// `cargo xtask console PORT`: attach to a console that `cargo xtask run --hosts N` serves.
pub fn attach(port: u16) -> Result<()> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connect to 127.0.0.1:{port}"))?;
    bridge(stream)?;
    Ok(())
}
