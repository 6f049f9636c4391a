//! `cargo xtask demo`: the README's main command. Boots two tern hosts in Bochs on one
//! Ethernet segment (alpha 10.0.0.1, beta 10.0.0.2, same migration key), starts the
//! heartbeat guest on alpha, live-migrates it to beta from alpha's console, and shows both
//! consoles as they go: the guest's beats on alpha, the per-round progress and the final
//! statistics, and the beats continuing on beta with the next sequence number.
//!
//! Bochs because it is the emulator here with VT-x (and EPT, VPID); with nested KVM the same
//! images run under QEMU. Prerequisites (Bochs, OVMF, Rust targets) are installed by the
//! build step, so this works on a fresh machine.

use anyhow::{Result, anyhow, bail};
use std::time::Duration;
use system_tests::EmulatorKind;
use system_tests::pair::{Pair, host_config, host_ip};

use crate::build::{self, BuildOptions};
use crate::hostcfg::NetConfig;
use crate::workspace::Workspace;

/// The demo's pre-shared migration key (both hosts).
const KEY: &str = "74657266e2809973206465206d6f20697320746865206d6967726174696f6e21";
const TIMEOUT: Duration = Duration::from_secs(900);

fn config(index: usize, with_vm: bool) -> String {
    let mut text = host_config(index);
    text.push_str(&format!("\n[migration]\nport = 4444\nkey = {KEY}\n"));
    if with_vm {
        text.push_str(
            "\n[vm heartbeat]\nimage = tern/guests/heartbeat.elf\nmemory = 16M\n\
             cmdline = \"hb.interval_ms=250 hb.wss_mib=2 hb.dirty_pages_per_sec=400\"\n\
             autostart = yes\n",
        );
    }
    text
}

fn show(host: &str, text: &str) {
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if !line.trim().is_empty() {
            println!("{host:>5} | {line}");
        }
    }
}

/// Runs the demo.
pub fn run(ws: &Workspace, no_build: bool) -> Result<()> {
    if !no_build {
        build::build(
            ws,
            &BuildOptions {
                debug: false,
                net: NetConfig::None,
            },
        )?;
    }
    let err = |e: system_tests::HarnessError| anyhow!("{e}");
    println!("demo: booting hosts alpha (10.0.0.1) and beta (10.0.0.2) in Bochs ...");
    let mut pair = Pair::boot_with_configs(
        EmulatorKind::Bochs,
        "demo",
        &system_tests::work_root(),
        [config(0, true), config(1, false)],
    )
    .map_err(err)?;
    show("alpha", &pair.boot_logs[0]);
    show("beta", &pair.boot_logs[1]);
    for _ in 0..3 {
        let text = pair
            .expect(0, "[heartbeat] HB seq=", TIMEOUT)
            .map_err(err)?;
        let rest = pair.expect(0, "\n", TIMEOUT).map_err(err)?;
        show("alpha", &format!("{text}{rest}"));
    }
    let command = format!("migrate {}:4444 heartbeat", host_ip(1));
    // The console echoes the command line, so the answer shows it.
    show("alpha", &pair.command(0, &command).map_err(err)?);
    let progress = pair
        .expect(0, "migrate: completed in", TIMEOUT)
        .map_err(err)?;
    let stats = pair.expect(0, "\n", TIMEOUT).map_err(err)?;
    show("alpha", &format!("{progress}{stats}"));
    let arrival = pair
        .expect(
            1,
            "migrate: VM 'heartbeat' is running on this host",
            TIMEOUT,
        )
        .map_err(err)?;
    show("beta", &arrival);
    for _ in 0..3 {
        let text = pair
            .expect(1, "[heartbeat] HB seq=", TIMEOUT)
            .map_err(err)?;
        let rest = pair.expect(1, "\n", TIMEOUT).map_err(err)?;
        show("beta", &format!("{text}{rest}"));
    }
    show("alpha", &pair.command(0, "info migrate").map_err(err)?);
    for index in 0..2 {
        if pair.hosts[index].console().transcript().contains("CORRUPT") {
            bail!("a guest reported corrupted memory (see the transcript above)");
        }
    }
    println!("demo: done: the heartbeat guest moved from alpha to beta and kept beating");
    Ok(())
}
