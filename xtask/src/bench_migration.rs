//! `cargo xtask bench migration`: live migrations of the heartbeat guest between two Bochs
//! hosts at three dirty rates, written to `docs/bench/migration.md`.
//!
//! Per rate (idle, moderate, heavy) and dirty-tracking mode, one pair boots, the guest runs a
//! few beats, alpha migrates it to beta, and the report takes:
//! - from the hypervisor's final line: total time, downtime (pause to commit acknowledgement)
//!   beside the source's estimate when it switched over (the last dirty pages and the state
//!   at the measured rate plus one round trip: the floor of the stop phase), bytes on the
//!   wire, zero/raw/compressed pages, rounds;
//! - the downtime a user of the guest sees: the arrival time, on this machine's clock, of the
//!   guest's last console line on alpha and its first on beta, less the typical interval
//!   between two of its lines before the migration (the guest's own clock cannot see the
//!   pause: its TSC continues from the saved value);
//! - the total time's floor: the bytes on the wire at the first round's measured rate;
//! - the floor: the bytes a single copy of the non-zero memory would put on the wire, against
//!   the bytes actually sent;
//! - from the guest's own lines: the guest-clock gap between its last beat on alpha and its
//!   first on beta, minus the beat interval (the guest's TSC continues from the saved value,
//!   so this is what the guest can observe), and its slowdown while tracked: verification
//!   passes per beat during pre-copy against before (write faults and the throttle cost it
//!   CPU time; its clock keeps running).
//!
//! Figures only, never asserted (timings in Bochs depend on the machine's load).

use anyhow::{Context, Result, anyhow, bail};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use system_tests::EmulatorKind;
use system_tests::pair::{Pair, host_config, host_ip};

use crate::bench_qemu_peer::QemuOutcome;

const KEY: &str = "62656e63686d61726b206b6579206f6620746865206d6967726174696f6e2121";
const TIMEOUT: Duration = Duration::from_secs(1200);
const INTERVAL_MS: u64 = 250;
/// The hypervisor's default `cpu-budget` (percent of the core while the guest runs).
const DEFAULT_CPU_BUDGET: u8 = 50;

struct Rate {
    name: &'static str,
    wss_mib: u32,
    pages_per_sec: u32,
    /// 64-bit words each page rewrite changes (512: whole pages).
    dirty_words: u32,
}

const RATES: [Rate; 5] = [
    Rate {
        name: "idle",
        wss_mib: 1,
        pages_per_sec: 1,
        dirty_words: 512,
    },
    Rate {
        name: "moderate",
        wss_mib: 2,
        pages_per_sec: 20,
        dirty_words: 512,
    },
    Rate {
        name: "moderate-partial",
        wss_mib: 2,
        pages_per_sec: 20,
        dirty_words: 16,
    },
    Rate {
        name: "heavy",
        wss_mib: 4,
        pages_per_sec: 400,
        dirty_words: 512,
    },
    Rate {
        name: "heavy-partial",
        wss_mib: 4,
        pages_per_sec: 400,
        dirty_words: 16,
    },
];

struct Beat {
    seq: u64,
    tsc: u64,
    passes: u64,
}

fn beats(text: &str) -> Vec<Beat> {
    text.split("[hb] HB seq=")
        .skip(1)
        .filter_map(|t| {
            let line = t.lines().next()?;
            let mut words = line.split_whitespace();
            let seq = words.next()?.parse().ok()?;
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name)?.parse::<u64>().ok())
            };
            Some(Beat {
                seq,
                tsc: field("tsc=")?,
                passes: field("passes=")?,
            })
        })
        .collect()
}

fn config(index: usize, rate: &Rate) -> String {
    let mut text = host_config(index);
    text.push_str(&format!("\n[migration]\nport = 4444\nkey = {KEY}\n"));
    if index == 0 {
        text.push_str(&format!(
            "\n[vm hb]\nimage = tern/guests/heartbeat.elf\nmemory = 16M\ncmdline = \"{}\"\nautostart = yes\n",
            cmdline(rate)
        ));
    }
    text
}

fn number_after(line: &str, key: &str) -> Option<f64> {
    let at = line.find(key)? + key.len();
    let rest = &line[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// One tern row, and what the QEMU peer row needs from it.
struct TernRun {
    row: String,
    /// The first round's measured link rate, bytes/s.
    link_rate: Option<f64>,
    wire_bytes: Option<f64>,
}

fn run_one(rate: &Rate, mode: &str, convergence: &str, budget: u8) -> Result<TernRun> {
    let err = |e: system_tests::HarnessError| anyhow!("{e}");
    let work = system_tests::work_root().join("bench-migration");
    let mut pair = Pair::boot_with_configs(
        EmulatorKind::Bochs,
        &format!("bench-mig-{}-{mode}-{convergence}-{budget}", rate.name),
        &work,
        [config(0, rate), config(1, rate)],
    )
    .map_err(err)?;
    for _ in 0..4 {
        pair.expect(0, "[hb] HB seq=", TIMEOUT).map_err(err)?;
    }
    pair.command(0, &format!("migrate_set_parameter dirty-tracking {mode}"))
        .map_err(err)?;
    pair.command(
        0,
        &format!("migrate_set_parameter convergence {convergence}"),
    )
    .map_err(err)?;
    pair.command(0, &format!("migrate_set_parameter cpu-budget {budget}"))
        .map_err(err)?;
    let before = pair.hosts[0].console().transcript();
    pair.command(0, &format!("migrate {}:4444 hb", host_ip(1)))
        .map_err(err)?;
    let started = Instant::now();
    let source = loop {
        std::thread::sleep(Duration::from_secs(10));
        let info = pair.command(0, "info migrate").map_err(err)?;
        if info.contains("completed") || info.contains("failed") {
            break pair.hosts[0].console().transcript();
        }
        if started.elapsed() > TIMEOUT {
            bail!("{} {mode}: no outcome in {TIMEOUT:?}", rate.name);
        }
    };
    let stats = source
        .lines()
        .find(|l| l.contains("migrate: completed in"))
        .with_context(|| format!("{} {mode}: migration failed:\n{source}", rate.name))?
        .trim()
        .to_string();
    pair.expect(1, "[hb] HB seq=", TIMEOUT).map_err(err)?;
    let seen_ms = console_downtime_ms(&mut pair, &before)?;
    let arrived = beats(&pair.hosts[1].console().transcript());
    let gone = beats(&source);
    let (last, first) = (
        gone.last().context("no beat on alpha")?,
        arrived.first().context("no beat on beta")?,
    );
    if first.seq != last.seq + 1 {
        bail!("heartbeat gap: {} then {}", last.seq, first.seq);
    }
    let tsc_khz = source
        .lines()
        .find(|l| l.contains("HB-START"))
        .and_then(|l| number_after(l, "tsc_khz="))
        .filter(|k| *k > 0.0)
        .context("no HB-START tsc_khz")?;
    let guest_gap_ms = (first.tsc.saturating_sub(last.tsc)) as f64 / tsc_khz - INTERVAL_MS as f64;
    // Passes per beat before the migration and during pre-copy (beats after `before`).
    let pre = beats(&before);
    let per_beat = |b: &[Beat]| -> Option<f64> {
        let (a, z) = (b.first()?, b.last()?);
        (z.seq > a.seq).then(|| (z.passes - a.passes) as f64 / (z.seq - a.seq) as f64)
    };
    let during: Vec<Beat> = gone
        .into_iter()
        .filter(|b| b.seq > pre.last().map_or(0, |p| p.seq))
        .collect();
    let slowdown = match (per_beat(&pre[1..]), per_beat(&during)) {
        (Some(p), Some(d)) if p > 0.0 => format!("{:.0} %", (1.0 - d / p) * 100.0),
        _ => "n/a".into(),
    };
    let total = number_after(&stats, "completed in ").unwrap_or(0.0);
    let downtime = number_after(&stats, "downtime ").unwrap_or(0.0);
    let estimate = number_after(&stats, "(estimated ")
        .map_or_else(|| "n/a".to_string(), |e| format!("{e:.0}"));
    let link_rate = source
        .lines()
        .find(|l| l.contains("migrate: round 1 sent"))
        .and_then(rate_of);
    let total_floor = match (link_rate, wire_bytes(&stats)) {
        (Some(rate), Some(bytes)) if rate > 0.0 => format!("{:.0}", bytes / rate * 1000.0),
        _ => "n/a".into(),
    };
    let wire = stats
        .split(", ")
        .find(|p| p.contains("on the wire"))
        .unwrap_or("?")
        .to_string();
    let zero = number_after(&stats, "pages zero ").unwrap_or(0.0);
    let rounds = number_after(&stats, "rounds ").unwrap_or(0.0);
    let floor_mib = (4096.0 - zero) * 4096.0 / 1048576.0;
    let _ = pair.command(0, "info migrate");
    let used = if source.contains("dirty tracking by page-modification logging") {
        "pml"
    } else {
        "wp"
    };
    let mut mode = if used == mode {
        mode.to_string()
    } else {
        format!("{mode} (fell back to {used})")
    };
    if convergence != "auto-converge" {
        mode.push_str(&format!(", {convergence}"));
    }
    if budget != DEFAULT_CPU_BUDGET {
        mode.push_str(&format!(", cpu-budget {budget} %"));
    }
    let row = format!(
        "| {} | {mode} | {total:.0} | {total_floor} | {downtime:.0} | {estimate} | {seen_ms:.0} | {guest_gap_ms:.0} | {wire} | {floor_mib:.2} MiB | {rounds:.0} | {slowdown} |\n",
        rate.name
    );
    Ok(TernRun {
        row,
        link_rate,
        wire_bytes: wire_bytes(&stats),
    })
}

/// The same guest and workload migrated by QEMU at tern's measured link rate.
fn qemu_row(rate: &Rate, tern: &TernRun) -> String {
    let Some(link) = tern.link_rate.filter(|r| *r > 0.0) else {
        return format!("| {} | n/a: no tern link rate to match |\n", rate.name);
    };
    let work = system_tests::work_root().join("bench-migration");
    match crate::bench_qemu_peer::migrate(
        &work,
        &format!("bench-qemu-{}", rate.name),
        &cmdline(rate),
        link as u64,
    ) {
        Ok(QemuOutcome::NotConverging {
            transferred_bytes,
            throttle_percent,
        }) => format!(
            "| {} | {:.0} KiB/s | did not converge in 180 s (auto-converge at {throttle_percent:.0} %; QEMU does not switch over at maximum throttle) | - | - | {:.2} MiB so far | - | - |\n",
            rate.name,
            link / 1024.0,
            transferred_bytes / 1048576.0
        ),
        Ok(QemuOutcome::Completed(q)) => {
            let ratio = tern.wire_bytes.map_or_else(
                || "n/a".to_string(),
                |w| format!("{:.2}", w / q.transferred_bytes),
            );
            format!(
                "| {} | {:.0} KiB/s | {:.0} | {:.0} | {:.0} | {:.2} MiB | {:.0} | {ratio} |\n",
                rate.name,
                link / 1024.0,
                q.total_ms,
                q.downtime_ms,
                q.seen_ms,
                q.transferred_bytes / 1048576.0,
                q.rounds
            )
        }
        Err(e) => {
            let first = e.to_string();
            format!(
                "| {} | failed: {} |\n",
                rate.name,
                first.lines().next().unwrap_or("")
            )
        }
    }
}

/// The guest's command line for `rate` (tern and QEMU runs alike).
fn cmdline(rate: &Rate) -> String {
    format!(
        "hb.interval_ms={INTERVAL_MS} hb.wss_mib={} hb.dirty_pages_per_sec={} hb.dirty_words={}",
        rate.wss_mib, rate.pages_per_sec, rate.dirty_words
    )
}

/// The pause as the guest's console shows it on this machine's clock: from the arrival of
/// the last beat on alpha to the first on beta, less the median interval between beats
/// before the migration (`before` = alpha's transcript when `migrate` was typed).
fn console_downtime_ms(pair: &mut Pair, before: &str) -> Result<f64> {
    let source = pair.hosts[0].console().line_arrivals("[hb] HB seq=");
    let destination = pair.hosts[1].console().line_arrivals("[hb] HB seq=");
    crate::bench_qemu_peer::console_pause_ms(beats(before).len(), &source, &destination)
}

/// `N.NN KiB/s` or `MiB/s` in a round line, in bytes per second.
fn rate_of(line: &str) -> Option<f64> {
    let head = &line[..line.find("/s")?];
    let mut words = head.split_whitespace().rev();
    let unit = words.next()?;
    let value: f64 = words.next()?.parse().ok()?;
    Some(match unit {
        "MiB" => value * 1048576.0,
        "KiB" => value * 1024.0,
        _ => value,
    })
}

/// Bytes on the wire from the final line (`N.NN MiB on the wire`).
fn wire_bytes(stats: &str) -> Option<f64> {
    let part = stats.split(", ").find(|p| p.contains("on the wire"))?;
    let mut words = part.split_whitespace();
    let value: f64 = words.next()?.parse().ok()?;
    Some(match words.next()? {
        "MiB" => value * 1048576.0,
        "KiB" => value * 1024.0,
        _ => value,
    })
}

/// Runs the migration benchmark (all rates, or the comma-separated `only` ones) and writes
/// the report.
pub fn run(only: Option<&str>) -> Result<()> {
    let chosen: Vec<&Rate> = RATES
        .iter()
        .filter(|r| only.is_none_or(|o| o.split(',').any(|n| n == r.name)))
        .collect();
    if chosen.is_empty() {
        bail!("--rates: none of idle, moderate, moderate-partial, heavy, heavy-partial");
    }
    let mut table = String::from(
        "| dirty rate | tracking | total ms | total floor ms | downtime ms (hypervisor) | downtime floor ms (source's estimate) | downtime seen on the console ms | guest-clock gap ms | bytes on the wire | floor (non-zero memory once) | rounds | guest slowdown during migration |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut peers = String::from(
        "| dirty rate | link rate (tern's, matched) | total ms | downtime ms | downtime seen on the console ms | bytes on the wire | rounds | tern's bytes / QEMU's |\n|---|---|---|---|---|---|---|---|\n",
    );
    for rate in chosen {
        let mut write_protect = None;
        // The heavy guest outruns the link: its brakes are compared too.
        // The heavy guest outruns the link: its brakes are compared too; the moderate one
        // shows the guest's slowdown without the CPU budget.
        let both_trackings = [
            ("wp", "auto-converge", DEFAULT_CPU_BUDGET),
            ("pml", "auto-converge", DEFAULT_CPU_BUDGET),
        ];
        // Partial writes change what goes on the wire, not how tracking works: one row.
        let base = if rate.dirty_words < 512 {
            &both_trackings[..1]
        } else {
            &both_trackings[..]
        };
        let extra = match rate.name {
            "heavy" => Some(("wp", "dirty-limit", DEFAULT_CPU_BUDGET)),
            "moderate" => Some(("wp", "auto-converge", 100)),
            _ => None,
        };
        for (mode, convergence, budget) in base.iter().copied().chain(extra) {
            eprintln!(
                "[xtask] bench migration: {} / {mode} / {convergence} / cpu-budget {budget} ...",
                rate.name
            );
            match run_one(rate, mode, convergence, budget) {
                Ok(run) => {
                    table.push_str(&run.row);
                    if (mode, convergence, budget) == base[0] {
                        write_protect = Some(run);
                    }
                }
                Err(e) => {
                    let first = e.to_string();
                    let first = first.lines().next().unwrap_or("");
                    let _ = writeln!(table, "| {} | {mode} | failed: {first} |", rate.name);
                }
            }
        }
        eprintln!("[xtask] bench migration: {} / QEMU peer ...", rate.name);
        match &write_protect {
            Some(run) => peers.push_str(&qemu_row(rate, run)),
            None => {
                let _ = writeln!(peers, "| {} | n/a: the tern row failed |", rate.name);
            }
        }
    }
    let report = format!(
        "# Migration benchmark (Bochs, two hosts on a bxhub segment)\n\n\
         Written by `cargo xtask bench migration`. Guest: heartbeat, 16 MiB, beat every \
         {INTERVAL_MS} ms; rates: idle (1 page/s in 1 MiB), moderate (20 pages/s in 2 MiB), \
         heavy (400 pages/s in 4 MiB; the link moves ~100-130 raw pages/s); the `-partial` rates rewrite only the first 16 of the 512 64-bit words of each page (`hb.dirty_words=16`, what delta pages are for), the others whole pages. `wp` = EPT write-protection (one exit per page per \
         round), `pml` = page-modification logging with EPT dirty flags (one exit per 512 \
         logged pages; Bochs' tigerlake model has both). A `pml` run that could not enable PML \
         falls back to wp and says so on the console. Every row brakes a guest that outruns \
         the link with auto-converge (slices taken away) but the `dirty-limit` row, which holds \
         the vCPU's dirty pages per second instead (`migrate_set_parameter convergence \
         dirty-limit`). All rows limit the migration to 50 % of the core while the guest runs \
         (`cpu-budget`, the default) but the `cpu-budget 100 %` row, which shows the guest's \
         slowdown without the budget.\n\n{table}\n\
         Downtime (hypervisor) runs from pausing the VM to the destination's commit \
         acknowledgement (protocol v3: no whole-memory pass; each completed migration prints \
         its breakdown); its floor is the source's estimate when it switched over (the last \
         dirty pages at the last round's wire size per page and the state, at the measured \
         rate, plus the handshake's round trip). Downtime seen on the console: the arrival \
         time on this machine of the guest's last line on alpha to its first on beta, less \
         the median interval between its lines before the migration; it is in this machine's \
         real time, while the hypervisor's figures are in emulated time (Bochs' clock runs at \
         its `ips` setting, not at real time, and a loaded machine stretches real time), so \
         the two differ by more than the guest's view of the pause. The guest-clock gap is \
         what the guest itself can see: its TSC continues from the saved value, so the pause \
         is invisible to it beyond one beat interval. Total floor: the bytes on the wire at \
         the first round's measured rate. Guest slowdown compares verification passes per beat \
         before and during the migration (one core shared with the migration itself, write \
         faults, throttle).\n\n\
         ## The peer: QEMU 7.2 (TCG) migrating the same guest\n\n\
         Same heartbeat ELF, command line and 16 MiB, booted by `-kernel` in two local QEMU \
         processes; QMP `migrate` with auto-converge and XBZRLE (4 MiB cache) on, as tern's \
         throttle and delta pages are, downtime-limit 300 ms and max-bandwidth set to the \
         link rate tern measured in the row above (its first round), figures from \
         `query-migrate` (total-time, downtime, ram.transferred, dirty-sync-count) and the \
         console-seen pause measured as for tern. QEMU runs the guest under TCG (its own dirty \
         tracking, no VT-x) and sends its own stream format; the last column is tern's bytes \
         on the wire (wp row) over QEMU's.\n\n{peers}"
    );
    // A partial run does not replace the report of a full one.
    let path = match only {
        None => crate::workspace::root().join("docs/bench/migration.md"),
        Some(_) => system_tests::work_root().join("bench-migration/partial-report.md"),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, report).with_context(|| format!("write {}", path.display()))?;
    eprintln!("[xtask] report: {}", path.display());
    Ok(())
}
