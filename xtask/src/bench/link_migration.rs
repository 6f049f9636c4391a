//! The migration side of `cargo xtask bench net`: one live migration of an idle heartbeat
//! guest between two Bochs hosts per MTU, read for the link rate the source measured in its
//! first pre-copy round (`migrate: round 1 sent ... KiB/s`, nearly all of the guest's
//! memory) and for the outcome. Bochs only: that is where migration runs (VT-x).

use anyhow::{Result, anyhow};
use std::path::Path;
use std::time::{Duration, Instant};
use system_tests::EmulatorKind;
use system_tests::pair::{Pair, host_config, host_ip};

/// 32 bytes as 64 hex digits (the ASCII of "link mtu benchmark key for tests").
const KEY: &str = "6c696e6b206d74752062656e63686d61726b206b657920666f72207465737473";
/// Boot, a few beats, 16 MiB over a link of ~1.4 MiB/s, and the verification: minutes.
const TIMEOUT: Duration = Duration::from_secs(900);

/// One migration's figures.
pub struct MigrationRun {
    /// `[net] mtu` of both hosts.
    pub mtu: u16,
    /// The source's `migrate: round 1 sent ...` line, if the first round finished.
    pub round1: Option<String>,
    /// Its rate in KiB/s.
    pub round1_kib_s: Option<f64>,
    /// The source's `migrate: completed in ...` or `migrate: failed: ...` line.
    pub outcome: String,
}

/// Host `index`'s config: the pair's address plan, `mtu`, migration, and on host 0 the VM.
fn config(index: usize, mtu: u16) -> String {
    let mut text = host_config(index);
    text.push_str(&format!(
        "mtu = {mtu}\n\n[migration]\nport = 4444\nkey = {KEY}\n"
    ));
    if index == 0 {
        text.push_str(
            "\n[vm hb]\nimage = tern/guests/heartbeat.elf\nmemory = 16M\n\
             cmdline = \"hb.interval_ms=250 hb.wss_mib=1 hb.dirty_pages_per_sec=1\"\n\
             autostart = yes\n",
        );
    }
    text
}

/// Migrate the guest from alpha to beta with both hosts at `mtu`.
pub fn measure(mtu: u16, work: &Path) -> Result<MigrationRun> {
    let err = |e: system_tests::HarnessError| anyhow!("{e:?}");
    let mut pair = Pair::boot_with_configs(
        EmulatorKind::Bochs,
        &format!("bench-link-mig-{mtu}"),
        work,
        [config(0, mtu), config(1, mtu)],
    )
    .map_err(err)?;
    for _ in 0..2 {
        pair.expect(0, "[hb] HB seq=", TIMEOUT).map_err(err)?;
    }
    pair.command(0, &format!("migrate {}:4444 hb", host_ip(1)))
        .map_err(err)?;
    let started = Instant::now();
    let transcript = loop {
        std::thread::sleep(Duration::from_secs(10));
        let info = pair.command(0, "info migrate").map_err(err)?;
        let text = pair.hosts[0].console().transcript();
        let ended = text.contains("migrate: completed in") || text.contains("migrate: failed");
        if ended || info.contains("failed") || started.elapsed() > TIMEOUT {
            break text;
        }
    };
    let line_with = |marker: &str| {
        transcript
            .lines()
            .find_map(|l| l.find(marker).map(|at| l[at..].trim_end().to_string()))
    };
    let round1 = line_with("migrate: round 1 sent");
    let round1_kib_s = round1.as_deref().and_then(kib_per_s);
    let outcome = line_with("migrate: completed in")
        .or_else(|| line_with("migrate: failed"))
        .unwrap_or_else(|| format!("no outcome within {} s", TIMEOUT.as_secs()));
    Ok(MigrationRun {
        mtu,
        round1,
        round1_kib_s,
        outcome,
    })
}

/// The `N KiB/s` (or `MiB/s`) figure of a round line, in KiB/s.
fn kib_per_s(line: &str) -> Option<f64> {
    let head = &line[..line.find("/s")?];
    let mut words = head.split_whitespace().rev();
    let unit = words.next()?;
    let value: f64 = words.next()?.trim_start_matches(',').parse().ok()?;
    match unit {
        "MiB" => Some(value * 1024.0),
        "KiB" => Some(value),
        "B" => Some(value / 1024.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_round_rate_and_keeps_the_mtu_in_the_net_section() {
        let line = "migrate: round 1 sent 4096 pages, dirty 3 pages, 1300.50 KiB/s, \
                    expected downtime 12 ms, throttle 0%";
        assert_eq!(kib_per_s(line), Some(1300.5));
        assert_eq!(kib_per_s("round 1 sent 1.50 MiB/s"), Some(1536.0));
        assert_eq!(kib_per_s("no rate"), None);
        let text = config(0, 9000);
        let net = text.find("[net]").unwrap();
        let mtu = text.find("mtu = 9000").unwrap();
        let migration = text.find("[migration]").unwrap();
        assert!(net < mtu && mtu < migration, "{text}");
        assert!(!config(1, 1500).contains("[vm hb]"));
        // The loader refuses any other key length (docs/config.md).
        assert_eq!(KEY.len(), 64);
        assert!(KEY.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
