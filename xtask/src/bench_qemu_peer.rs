//! The peer figure of `cargo xtask bench migration`: the same heartbeat guest and workload
//! live-migrated by QEMU (TCG) between two local QEMU processes, measured the way QEMU's own
//! `scripts/migration` tooling does: `query-migrate` over QMP for total time, downtime, bytes
//! transferred and dirty-sync rounds, plus the pause as the guest's console shows it.
//!
//! Why this comparison is fair enough to print beside tern's: same guest binary, command line
//! and memory size, the same 300 ms downtime limit, and QEMU's bandwidth capped at the link
//! rate tern measured in the same row (QEMU's loopback would otherwise move gigabytes per
//! second). What differs: QEMU runs the guest under TCG (no VT-x, its own dirty tracking) and
//! sends its own stream format; that is the point of the comparison.

use anyhow::{Context, Result, anyhow, bail};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use system_tests::{Emulator, EmulatorKind};

const TIMEOUT: Duration = Duration::from_secs(600);
/// How long QEMU may pre-copy before the row says it does not converge: QEMU keeps copying
/// at maximum throttle instead of switching over (tern gives up and switches over).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);

/// What QEMU reported for one migration.
pub enum QemuOutcome {
    /// Completed.
    Completed(QemuMigration),
    /// Still pre-copying after `CONVERGE_TIMEOUT` (then cancelled).
    NotConverging {
        /// Bytes sent so far.
        transferred_bytes: f64,
        /// QEMU's auto-converge throttle at that point, percent.
        throttle_percent: f64,
    },
}

/// What QEMU reported for one completed migration.
pub struct QemuMigration {
    pub total_ms: f64,
    pub downtime_ms: f64,
    pub transferred_bytes: f64,
    pub rounds: f64,
    /// Console-seen pause (last line on the source to first on the destination, less the
    /// median interval between lines before).
    pub seen_ms: f64,
}

/// A minimal QMP client: one JSON object per line; asynchronous events are skipped.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    fn connect(path: &Path) -> Result<Qmp> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(anyhow!("QMP socket {}: {e}", path.display()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        qmp.line()?; // greeting
        qmp.execute(r#"{"execute":"qmp_capabilities"}"#)?;
        Ok(qmp)
    }

    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("QMP connection closed");
        }
        Ok(line)
    }

    /// Sends a command and returns its reply (`return` or `error`).
    fn execute(&mut self, command: &str) -> Result<String> {
        self.writer.write_all(command.as_bytes())?;
        self.writer.write_all(b"\n")?;
        loop {
            let line = self.line()?;
            if line.contains("\"event\"") {
                continue;
            }
            if line.contains("\"error\"") {
                bail!("QMP {command}: {}", line.trim());
            }
            return Ok(line);
        }
    }
}

/// A number after `"key":` in a JSON text (first occurrence).
fn json_number(text: &str, key: &str) -> Option<f64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = text[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Boots the guest in two QEMUs (the second waiting for the stream), runs a few beats, then
/// migrates with a bandwidth cap of `link_bytes_per_sec`.
pub fn migrate(
    work: &Path,
    name: &str,
    cmdline: &str,
    link_bytes_per_sec: u64,
) -> Result<QemuOutcome> {
    let elf = system_tests::esp_dir()
        .map_err(|e| anyhow!("{e}"))?
        .join("tern/guests/heartbeat.elf");
    std::fs::create_dir_all(work)?;
    let port = free_port()?;
    let qmp_paths = [0, 1].map(|i| work.join(format!("{name}-qmp-{i}-{}", std::process::id())));
    for path in &qmp_paths {
        let _ = std::fs::remove_file(path);
    }
    let start = |i: usize, extra: String| {
        Emulator::builder(EmulatorKind::Qemu)
            .name(&format!("{name}-{i}"))
            .work_root(work)
            .memory_mib(16)
            .direct_kernel(&elf, cmdline)
            .extra(&extra)
            .start()
            .map_err(|e| anyhow!("{e}"))
    };
    let mut source = start(
        0,
        format!("-qmp unix:{},server=on,wait=off", qmp_paths[0].display()),
    )?;
    let mut destination = start(
        1,
        format!(
            "-qmp unix:{},server=on,wait=off -incoming tcp:127.0.0.1:{port}",
            qmp_paths[1].display()
        ),
    )?;
    let err = |e: system_tests::HarnessError| anyhow!("{e}");
    for _ in 0..6 {
        source.console().expect("HB seq=", TIMEOUT).map_err(err)?;
    }
    let mut src_qmp = Qmp::connect(&qmp_paths[0])?;
    let _dst_qmp = Qmp::connect(&qmp_paths[1])?;
    // tern's defaults have their QEMU counterparts switched on: auto-converge (the
    // throttle) and XBZRLE (delta pages).
    src_qmp.execute(
        r#"{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"auto-converge","state":true},{"capability":"xbzrle","state":true}]}}"#,
    )?;
    src_qmp.execute(&format!(
        r#"{{"execute":"migrate-set-parameters","arguments":{{"downtime-limit":300,"max-bandwidth":{link_bytes_per_sec},"xbzrle-cache-size":4194304}}}}"#
    ))?;
    let before = source.console().transcript();
    src_qmp.execute(&format!(
        r#"{{"execute":"migrate","arguments":{{"uri":"tcp:127.0.0.1:{port}"}}}}"#
    ))?;
    let started = Instant::now();
    let status = loop {
        std::thread::sleep(Duration::from_millis(500));
        let status = src_qmp.execute(r#"{"execute":"query-migrate"}"#)?;
        if status.contains("\"completed\"") {
            break status;
        }
        if status.contains("\"failed\"") || status.contains("\"cancelled\"") {
            bail!("QEMU migration failed: {}", status.trim());
        }
        if started.elapsed() > CONVERGE_TIMEOUT {
            let outcome = QemuOutcome::NotConverging {
                transferred_bytes: json_number(&status, "transferred").unwrap_or(0.0),
                throttle_percent: json_number(&status, "cpu-throttle-percentage").unwrap_or(0.0),
            };
            src_qmp.execute(r#"{"execute":"migrate_cancel"}"#)?;
            return Ok(outcome);
        }
    };
    destination
        .console()
        .expect("HB seq=", TIMEOUT)
        .map_err(err)?;
    // The match can come before the line's newline: wait for a whole line.
    let deadline = Instant::now() + Duration::from_secs(30);
    while destination.console().line_arrivals("HB seq=").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen_ms = console_gap_ms(&mut source, &mut destination, &before)?;
    let number = |key: &str| {
        json_number(&status, key).with_context(|| format!("no {key} in {}", status.trim()))
    };
    Ok(QemuOutcome::Completed(QemuMigration {
        total_ms: number("total-time")?,
        downtime_ms: number("downtime")?,
        transferred_bytes: number("transferred")?,
        rounds: number("dirty-sync-count")?,
        seen_ms,
    }))
}

/// The pause as the consoles show it on this machine's clock (see `bench_migration`).
fn console_gap_ms(source: &mut Emulator, destination: &mut Emulator, before: &str) -> Result<f64> {
    let gone = source.console().line_arrivals("HB seq=");
    let arrived = destination.console().line_arrivals("HB seq=");
    console_pause_ms(before.matches("HB seq=").count(), &gone, &arrived)
}

/// From the arrival times of the guest's lines on the source (`gone`, of which the first
/// `before` came before the migration started) and on the destination (`arrived`): the time
/// from the last line on the source to the first on the destination, less the median
/// interval between lines before the migration, in ms.
pub fn console_pause_ms(
    before: usize,
    gone: &[(Instant, String)],
    arrived: &[(Instant, String)],
) -> Result<f64> {
    let mut intervals: Vec<f64> = gone[..before.min(gone.len())]
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0).as_secs_f64() * 1000.0)
        .collect();
    intervals.sort_by(f64::total_cmp);
    let interval = intervals
        .get(intervals.len() / 2)
        .copied()
        .context("too few lines before the migration")?;
    let (last, first) = (
        gone.last().context("no line on the source")?,
        arrived.first().context("no line on the destination")?,
    );
    Ok(first.0.duration_since(last.0).as_secs_f64() * 1000.0 - interval)
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::json_number;

    #[test]
    fn numbers_from_query_migrate() {
        let reply = r#"{"return": {"status": "completed", "total-time": 8123, "downtime": 41, "ram": {"transferred": 2456789, "dirty-sync-count": 4}}}"#;
        assert_eq!(json_number(reply, "total-time"), Some(8123.0));
        assert_eq!(json_number(reply, "downtime"), Some(41.0));
        assert_eq!(json_number(reply, "transferred"), Some(2456789.0));
        assert_eq!(json_number(reply, "dirty-sync-count"), Some(4.0));
        assert_eq!(json_number(reply, "missing"), None);
    }
}
