//! `cargo xtask bench vmx`: what a VM exit and a preemption-timer slice boundary cost on tern,
//! measured inside Bochs by the heartbeat guest's `hb.mode=bench` with its own TSC.
//!
//! Why Bochs and the guest TSC: Bochs is the only VT-x platform here, and its TSC advances
//! exactly one per emulated instruction, so the figures are instruction counts (of the
//! hypervisor's exit path plus Bochs' fixed cost for VM exit and entry), repeatable whatever
//! else the build machine is doing. Wall-clock figures from an emulator would mean nothing.
//!
//! The run: one host, one VM (`bench`, 16 MiB, autostart) and nothing else; wait for
//! `BENCH-DONE`, ask `vm info bench` for the exit counters, write the raw lines to
//! `build/bench/vmx.txt` and print them. The figures are reported (docs/bench/vmx.md),
//! never asserted.

use crate::build::{self, BuildOptions};
use crate::hostcfg::NetConfig;
use crate::progress::Step;
use crate::workspace::Workspace;
use anyhow::{Context, Result, bail};
use std::time::Duration;
use system_tests::{Emulator, EmulatorKind, tern};

/// The host config of the benchmark: one VM running the bench mode alone, so that every
/// gap its busy loop sees is a slice boundary and not another VM's slice.
const CONFIG: &str = "[host]\nname = bench\n\n[net]\nmode = none\n\n\
[vm bench]\nimage = tern/guests/heartbeat.elf\nmemory = 16M\ncmdline = \"hb.mode=bench\"\nautostart = yes\n";

/// Bochs boot plus ~1 s of guest time plus 20k exits: a few minutes at most on a loaded core.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Run the VMX benchmark (`--no-build` boots what `build/esp` holds).
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
    let out_dir = ws.build_dir().join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    let step = Step::start("bench vmx (Bochs)");
    let host = Emulator::builder(EmulatorKind::Bochs)
        .name("bench-vmx")
        .esp(ws.esp_dir())
        .work_root(&out_dir)
        .config(CONFIG)
        .start()?;
    let mut booted = tern::to_prompt(host)?;
    let host = &mut booted.host;
    let log = host.console().expect("[bench] BENCH-DONE", TIMEOUT)?;
    let info = tern::command(host, "vm info bench")?;
    step.done();
    let mut report = String::new();
    for line in booted.boot_log.lines().chain(log.lines()) {
        let line = line.trim();
        if line.contains("tsc:") || line.contains("VT-x") || line.contains("BENCH") {
            report.push_str(line);
            report.push('\n');
        }
    }
    if !report.contains("BENCH cpuid") || !report.contains("BENCH slices") {
        bail!("the bench guest did not report its figures:\n{log}");
    }
    report.push_str(info.trim());
    report.push('\n');
    let path = out_dir.join("vmx.txt");
    std::fs::write(&path, &report).with_context(|| format!("write {}", path.display()))?;
    print!("{report}");
    eprintln!(
        "[xtask] bench vmx: figures in {} (transcript in {})",
        path.display(),
        host.dir().display()
    );
    Ok(())
}
