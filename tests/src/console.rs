//! The serial console of an emulated host, driven like an operator at a terminal: type a
//! line, wait for an answer, read it.
//!
//! A reader thread copies every byte from the serial connection into memory and into
//! `console.log` (raw, as it arrives: `tail -f` it while a test runs). Matching happens on
//! cleaned text (see [`crate::ansi`]) after a cursor: [`Console::expect`] consumes up to the
//! end of its match, so a later `expect` of the same prompt waits for the *next* prompt.
//! [`Console::take_lines`] keeps a cursor of its own, for showing output live while it
//! arrives (`cargo xtask demo`) without disturbing `expect`.

use crate::HarnessError;
use crate::ansi;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lines of transcript included in error messages.
const TAIL_LINES: usize = 40;

/// Bytes received so far and whether the line has closed.
#[derive(Default)]
struct Received {
    raw: Vec<u8>,
    /// When each read ended: (raw length after it, time). Lets a benchmark tell when a line
    /// arrived on this machine's clock (serial output is flushed per character).
    arrivals: Vec<(usize, Instant)>,
    closed: bool,
}

/// State shared with the reader thread.
#[derive(Default)]
struct Shared {
    received: Mutex<Received>,
    arrived: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Received> {
        // A poisoned lock only means the reader thread panicked mid-append: the bytes are
        // still the best record we have.
        self.received
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One host's serial console.
pub struct Console {
    shared: Arc<Shared>,
    writer: TcpStream,
    /// Match position, in bytes of cleaned text.
    cursor: usize,
    /// How far [`Console::take_lines`] has handed out lines, in bytes of cleaned text.
    streamed: usize,
    raw_log: PathBuf,
    clean_log: PathBuf,
    line_ending: &'static str,
    reader: Option<JoinHandle<()>>,
}

impl Console {
    /// Attach to a connected serial stream; the transcript goes to `console.log` (raw) and
    /// `console.txt` (cleaned, written on errors and on drop) in `dir`.
    pub fn new(stream: TcpStream, dir: &Path) -> Result<Console, HarnessError> {
        let raw_log = dir.join("console.log");
        let clean_log = dir.join("console.txt");
        let mut file = File::create(&raw_log)
            .map_err(|e| HarnessError::io(format!("create {}", raw_log.display()), e))?;
        let mut reader_stream = stream
            .try_clone()
            .map_err(|e| HarnessError::io("clone serial stream", e))?;
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name("serial-reader".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match reader_stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            // The file is a convenience copy; a full disk must not stop the test.
                            let _ = file.write_all(&buf[..n]);
                            let now = Instant::now();
                            let mut received = thread_shared.lock();
                            received.raw.extend_from_slice(&buf[..n]);
                            let len = received.raw.len();
                            received.arrivals.push((len, now));
                            drop(received);
                            thread_shared.arrived.notify_all();
                        }
                    }
                }
                thread_shared.lock().closed = true;
                thread_shared.arrived.notify_all();
            })
            .map_err(|e| HarnessError::io("spawn serial reader thread", e))?;
        Ok(Console {
            shared,
            writer: stream,
            cursor: 0,
            streamed: 0,
            raw_log,
            clean_log,
            line_ending: "\r",
            reader: Some(reader),
        })
    }

    /// What [`Console::send_line`] appends: `"\r"` by default, as a terminal sends for Enter.
    pub fn set_line_ending(&mut self, ending: &'static str) {
        self.line_ending = ending;
    }

    /// Type `line` and press Enter.
    pub fn send_line(&mut self, line: &str) -> Result<(), HarnessError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(self.line_ending.as_bytes());
        self.send_raw(&bytes)
    }

    /// Send bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), HarnessError> {
        self.writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
            .map_err(|e| HarnessError::io("write to the serial console", e))
    }

    /// Wait until `pattern` appears after the cursor; return the text from the cursor to the
    /// end of the match and move the cursor there.
    pub fn expect(&mut self, pattern: &str, timeout: Duration) -> Result<String, HarnessError> {
        let deadline = Instant::now() + timeout;
        let mut received = self.shared.lock();
        loop {
            let text = ansi::clean_bytes(&received.raw);
            let unread = text.get(self.cursor..).unwrap_or(&[]);
            if let Some(pos) = find(unread, pattern.as_bytes()) {
                let end = pos + pattern.len();
                let captured = String::from_utf8_lossy(&unread[..end]).into_owned();
                self.cursor += end;
                return Ok(captured);
            }
            let now = Instant::now();
            if received.closed || now >= deadline {
                let closed = received.closed;
                drop(received);
                return Err(HarnessError::Timeout {
                    pattern: pattern.to_string(),
                    waited: timeout,
                    closed,
                    transcript: self.save_clean(),
                    tail: self.tail(),
                });
            }
            received = self
                .shared
                .arrived
                .wait_timeout(received, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Wait `period` and fail as soon as `pattern` appears after the cursor. The cursor does
    /// not move.
    pub fn expect_absent(&mut self, pattern: &str, period: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + period;
        let mut received = self.shared.lock();
        loop {
            let text = ansi::clean_bytes(&received.raw);
            let unread = text.get(self.cursor..).unwrap_or(&[]);
            if find(unread, pattern.as_bytes()).is_some() {
                drop(received);
                return Err(HarnessError::Unexpected {
                    pattern: pattern.to_string(),
                    transcript: self.save_clean(),
                    tail: self.tail(),
                });
            }
            let now = Instant::now();
            if received.closed || now >= deadline {
                return Ok(());
            }
            received = self
                .shared
                .arrived
                .wait_timeout(received, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Send `line`, wait for `prompt`, and return what came in between (the answer,
    /// preceded by the echo of `line` if the host echoes).
    pub fn command(
        &mut self,
        line: &str,
        prompt: &str,
        timeout: Duration,
    ) -> Result<String, HarnessError> {
        self.send_line(line)?;
        let captured = self.expect(prompt, timeout)?;
        Ok(captured[..captured.len() - prompt.len()].to_string())
    }

    /// The complete lines (cleaned, without their line ending) that arrived since the last
    /// call; a line still being written stays for the next call. Independent of
    /// [`Console::expect`]'s cursor.
    pub fn take_lines(&mut self) -> Vec<String> {
        let text = ansi::clean_bytes(&self.shared.lock().raw);
        let unread = text.get(self.streamed..).unwrap_or(&[]);
        let Some(last_newline) = unread.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        self.streamed += last_newline + 1;
        unread[..last_newline]
            .split(|&b| b == b'\n')
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect()
    }

    /// Whether the emulator has closed the serial line (it exited, or powered off).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// The whole transcript so far, cleaned.
    pub fn transcript(&self) -> String {
        ansi::clean(&self.shared.lock().raw)
    }

    /// When each line containing `pattern` had fully arrived (its newline), on this
    /// machine's clock, with the line (cleaned), in order.
    pub fn line_arrivals(&self, pattern: &str) -> Vec<(Instant, String)> {
        let received = self.shared.lock();
        let raw = &received.raw;
        let mut found = Vec::new();
        let mut start = 0;
        for (i, byte) in raw.iter().enumerate() {
            if *byte != b'\n' {
                continue;
            }
            let line = ansi::clean(&raw[start..i]);
            start = i + 1;
            if !line.contains(pattern) {
                continue;
            }
            // The first read that ended at or after the newline brought it.
            let arrivals = &received.arrivals;
            let at = arrivals
                .get(arrivals.partition_point(|(end, _)| *end <= i))
                .map(|(_, t)| *t);
            if let Some(at) = at {
                found.push((at, line.trim().to_string()));
            }
        }
        found
    }

    /// The raw transcript file (written as bytes arrive).
    pub fn raw_log(&self) -> &Path {
        &self.raw_log
    }

    /// Write the cleaned transcript to `console.txt` and return its path.
    pub fn save_clean(&self) -> PathBuf {
        let _ = std::fs::write(&self.clean_log, self.transcript());
        self.clean_log.clone()
    }

    fn tail(&self) -> String {
        ansi::tail(&self.transcript(), TAIL_LINES).to_string()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let path = self.save_clean();
        if std::thread::panicking() {
            eprintln!(
                "--- serial transcript ({}) ---\n{}\n--- end ---",
                path.display(),
                self.transcript()
            );
        }
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// First position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (Console, TcpStream, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "tern-console-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let host = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (stream, _) = listener.accept().expect("accept");
        (Console::new(stream, &dir).expect("console"), host, dir)
    }

    #[test]
    fn expect_consumes_up_to_match_and_waits_for_the_next_one() {
        let (mut console, mut host, _dir) = pair();
        host.write_all(b"\x1b[1mhello\x1b[0m\r\ntern> ")
            .expect("write");
        let got = console
            .expect("tern> ", Duration::from_secs(5))
            .expect("first prompt");
        assert_eq!(got, "hello\ntern> ");
        let err = console
            .expect("tern> ", Duration::from_millis(200))
            .expect_err("no second prompt yet");
        assert!(err.to_string().contains("hello"), "tail in error: {err}");
        host.write_all(b"ok\r\ntern> ").expect("write");
        assert_eq!(
            console
                .expect("tern> ", Duration::from_secs(5))
                .expect("second"),
            "ok\ntern> "
        );
    }

    #[test]
    fn send_line_appends_the_line_ending() {
        let (mut console, mut host, _dir) = pair();
        console.send_line("info").expect("send");
        let mut buf = [0u8; 5];
        host.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"info\r");
    }

    #[test]
    fn expect_absent_fails_when_the_pattern_shows_up() {
        let (mut console, mut host, _dir) = pair();
        host.write_all(b"all fine\n").expect("write");
        console
            .expect_absent("panic", Duration::from_millis(200))
            .expect("absent");
        host.write_all(b"kernel panic\n").expect("write");
        assert!(
            console
                .expect_absent("panic", Duration::from_secs(5))
                .is_err()
        );
    }

    #[test]
    fn take_lines_hands_out_complete_lines_once_and_leaves_expect_alone() {
        let (mut console, mut host, _dir) = pair();
        host.write_all(b"one\r\n\x1b[1mtwo\x1b[0m\r\nthr")
            .expect("write");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut lines = Vec::new();
        while lines.len() < 2 && Instant::now() < deadline {
            lines.extend(console.take_lines());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(lines, ["one", "two"]);
        assert!(
            console.take_lines().is_empty(),
            "nothing new, `thr` is unfinished"
        );
        host.write_all(b"ee\r\n").expect("write");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut rest = Vec::new();
        while rest.is_empty() && Instant::now() < deadline {
            rest = console.take_lines();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(rest, ["three"]);
        // `expect` still starts from the beginning.
        assert_eq!(
            console
                .expect("two", Duration::from_secs(5))
                .expect("expect"),
            "one\ntwo"
        );
    }

    #[test]
    fn closed_line_ends_the_wait_early_and_says_so() {
        let (mut console, host, dir) = pair();
        drop(host);
        let started = Instant::now();
        let err = console
            .expect("never", Duration::from_secs(30))
            .expect_err("closed");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(err.to_string().contains("closed the serial line"), "{err}");
        assert!(dir.join("console.log").is_file());
    }
}
