//! `cargo xtask demo`: the README's main command, and the first migration a newcomer sees.
//! Boots two tern hosts in Bochs on one Ethernet segment (alpha 10.0.0.1, beta 10.0.0.2, same
//! migration key), starts the heartbeat guest on alpha, types `migrate 10.0.0.2:4444
//! heartbeat` at alpha's console, and shows both consoles live (see [`LiveView`]): the beats
//! on alpha, one line per pre-copy round, the switch-over, the final statistics, and the
//! beats continuing on beta with the next sequence number. It ends with the downtime against
//! its limit and where both hosts' logs are.
//!
//! **The default is the normal case**: a guest that dirties memory much slower than the
//! emulated link carries it, so pre-copy converges in a few rounds. `--heavy` is the hard
//! case (a guest that dirties faster than the link), with what an operator would do about it.
//!
//! Bochs because it is the emulator here with VT-x (and EPT, VPID); with nested KVM the same
//! images run under QEMU. Prerequisites (Bochs, OVMF, Rust targets) are installed by the
//! build step, so this works on a fresh machine.

use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};
use system_tests::EmulatorKind;
use system_tests::pair::{HOST_NAMES, Pair, PairHost, host_config, host_ip};

use crate::build::{self, BuildOptions};
use crate::demo_view::LiveView;
use crate::hostcfg::NetConfig;
use crate::workspace::Workspace;

/// The demo's pre-shared migration key (both hosts).
const KEY: &str = "74657266e2809973206465206d6f20697320746865206d6967726174696f6e21";
/// Beats on alpha before the migration starts, and on beta after it arrived.
const BEATS: usize = 3;
const BEAT_TIMEOUT: Duration = Duration::from_secs(180);

/// Options of `cargo xtask demo`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DemoOptions {
    /// Boot what `build/esp` holds.
    pub no_build: bool,
    /// The hard case: a guest that dirties memory faster than the link.
    pub heavy: bool,
}

/// What the guest does, and what the newcomer is told about it.
struct Workload {
    cmdline: &'static str,
    intro: &'static str,
    migration_timeout: Duration,
}

const NORMAL: Workload = Workload {
    cmdline: "hb.interval_ms=250 hb.wss_mib=2 hb.dirty_pages_per_sec=20",
    intro: "\
The guest is `heartbeat`, a 16 MiB test VM: it prints `HB seq=N` four times a second of
its own time and keeps rewriting a 2 MiB working set, 20 pages (80 KiB) a second, checking
every page it wrote (a lost or stale page would print CORRUPT). Migration moves ~100 pages
(~0.4 MiB) a second between two Bochs hosts, five times what the guest dirties, so pre-copy
converges: each round has less to send, and tern pauses the VM for the last pages once they
fit the downtime limit.
(`cargo xtask demo --heavy` shows a guest that dirties memory faster than the link.)",
    migration_timeout: Duration::from_secs(600),
};

const HEAVY: Workload = Workload {
    cmdline: "hb.interval_ms=250 hb.wss_mib=2 hb.dirty_pages_per_sec=400",
    intro: "\
The hard case. The guest is `heartbeat`, a 16 MiB test VM printing `HB seq=N` four times a
second and checking every page it wrote, but it rewrites 400 pages (1.6 MiB) a second: four
times the ~100 pages (~0.4 MiB) a second migration moves between two Bochs hosts. Pre-copy
cannot converge: every round finds the working set dirty again, auto-converge throttles the
vCPU up to 99 % (which cannot slow a guest whose writes follow its clock), and tern switches
over anyway with a pause of about a second, over the downtime limit. An operator facing this
holds the guest's dirty rate below the link's (`migrate_set_parameter convergence
dirty-limit`), gives the migration a faster link or a larger downtime-limit, accepts the
throttled switch-over, or migrates cold (`migrate -c`) for one predictable pause.",
    migration_timeout: Duration::from_secs(900),
};

fn config(index: usize, vm_cmdline: Option<&str>) -> String {
    let mut text = host_config(index);
    text.push_str(&format!("\n[migration]\nport = 4444\nkey = {KEY}\n"));
    if let Some(cmdline) = vm_cmdline {
        text.push_str(&format!(
            "\n[vm heartbeat]\nimage = tern/guests/heartbeat.elf\nmemory = 16M\n\
             cmdline = \"{cmdline}\"\nautostart = yes\n"
        ));
    }
    text
}

/// Runs the demo.
pub fn run(ws: &Workspace, options: DemoOptions) -> Result<()> {
    let started = Instant::now();
    if !options.no_build {
        build::build(
            ws,
            &BuildOptions {
                debug: false,
                net: NetConfig::None,
            },
        )?;
    }
    let workload = if options.heavy { &HEAVY } else { &NORMAL };
    println!("\n{}\n", workload.intro);
    let work_root = ws.build_dir().join("demo");
    if work_root.exists() {
        std::fs::remove_dir_all(&work_root)
            .with_context(|| format!("remove {}", work_root.display()))?;
    }
    println!("demo: booting hosts alpha (10.0.0.1) and beta (10.0.0.2) in Bochs ...");
    let mut pair = Pair::start_hosts(
        EmulatorKind::Bochs,
        "demo",
        &work_root,
        [
            PairHost::new(config(0, Some(workload.cmdline))),
            PairHost::new(config(1, None)),
        ],
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let outcome = drive(&mut pair, workload);
    let logs: Vec<String> = pair
        .hosts
        .iter()
        .map(|host| relative(ws, host.dir()))
        .collect();
    // Stop the emulators (and write each console.txt) before the last words.
    drop(pair);
    match &outcome {
        Ok(summary) => {
            println!("\ndemo: done in {}: {summary}", minutes(started.elapsed()));
        }
        Err(_) => println!("\ndemo: stopped after {}", minutes(started.elapsed())),
    }
    println!("demo: each host's serial transcript (console.log raw, console.txt clean) and");
    println!("      emulator output (emulator.log) are in:");
    for (name, dir) in HOST_NAMES.iter().zip(&logs) {
        println!("        {name:<5}  {dir}/");
    }
    outcome.map(|_| ())
}

/// Boot to the beats, migrate, watch the guest arrive; returns the closing summary.
fn drive(pair: &mut Pair, workload: &Workload) -> Result<String> {
    let mut view = LiveView::new(pair);
    let mut ready = [false; 2];
    view.until(
        "both hosts' consoles",
        system_tests::BOCHS_BOOT_TIMEOUT,
        2,
        |host, line| line.contains("console ready") && !std::mem::replace(&mut ready[host], true),
    )?;
    let beats = view.until("beats on alpha", BEAT_TIMEOUT, BEATS, |host, line| {
        host == 0 && line.contains("[heartbeat] HB seq=")
    })?;
    let mut last_on_alpha = beats.last().and_then(|l| seq(l));

    let command = format!("migrate {}:4444 heartbeat", host_ip(1));
    println!("demo: typing `{command}` at alpha's console");
    view.type_line(0, &command)?;
    let mut completed = None;
    let mut arrived = false;
    let mut first_on_beta = None;
    let mut beats_on_beta = 0;
    view.until(
        "the migration's end and beats on beta",
        workload.migration_timeout,
        1,
        |host, line| {
            match host {
                0 if line.contains("migrate: completed in") => completed = Some(line.to_string()),
                0 if completed.is_none() && line.contains("[heartbeat] HB seq=") => {
                    last_on_alpha = seq(line).or(last_on_alpha);
                }
                1 if line.contains("is running on this host") => arrived = true,
                1 if arrived && line.contains("[heartbeat] HB seq=") => {
                    first_on_beta = first_on_beta.or(seq(line));
                    beats_on_beta += 1;
                }
                _ => {}
            }
            completed.is_some() && beats_on_beta >= BEATS
        },
    )?;
    view.type_line(0, "info migrate")?;
    let parameters = view.until("`info migrate`", BEAT_TIMEOUT, 1, |host, line| {
        host == 0 && line.starts_with("parameters:")
    })?;

    let completed = completed.unwrap_or_default();
    let downtime = number_after(&completed, "downtime ");
    let limit = parameters
        .first()
        .and_then(|l| number_after(l, "downtime-limit "));
    let verdict = match (downtime, limit) {
        (Some(d), Some(l)) if d <= l => format!("downtime {d} ms, within its limit of {l} ms"),
        (Some(d), Some(l)) => format!("downtime {d} ms, OVER its limit of {l} ms"),
        _ => "downtime not reported (see the transcript above)".to_string(),
    };
    let sequence = match (last_on_alpha, first_on_beta) {
        (Some(a), Some(b)) => format!("last beat on alpha seq={a}, first on beta seq={b}"),
        _ => "beats on both hosts".to_string(),
    };
    Ok(format!(
        "the heartbeat guest moved from alpha to beta and kept beating, no memory lost\n      \
         ({sequence}); {verdict}"
    ))
}

/// N of `[heartbeat] HB seq=N ...`.
fn seq(line: &str) -> Option<u64> {
    let rest = &line[line.find("HB seq=")? + "HB seq=".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The decimal number right after `key` in `line` (e.g. `downtime 12.345 ms` -> 12.345).
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `1m 53s`.
fn minutes(elapsed: Duration) -> String {
    let s = elapsed.as_secs();
    format!("{}m {:02}s", s / 60, s % 60)
}

/// `path` relative to the workspace root when it is inside it.
fn relative(ws: &Workspace, path: &Path) -> String {
    path.strip_prefix(&ws.root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_the_consoles_lines() {
        let done = "migrate: completed in 21.5 ms, downtime 212.345 ms, 2.46 MiB on the wire";
        assert_eq!(number_after(done, "downtime "), Some(212.345));
        let params = "parameters: downtime-limit 300 ms, max-bandwidth unlimited";
        assert_eq!(number_after(params, "downtime-limit "), Some(300.0));
        assert_eq!(number_after(params, "nothing "), None);
        assert_eq!(seq("[heartbeat] HB seq=41 tsc=1 dirtied=2"), Some(41));
        assert_eq!(seq("[heartbeat] HB-START mode=normal"), None);
        assert_eq!(minutes(Duration::from_secs(113)), "1m 53s");
    }
}
