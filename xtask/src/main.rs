//! `cargo xtask`: tern's developer and CI driver. See README.md for the commands.
//!
//! Arguments are parsed by hand (no clap): there are few, and xtask is compiled on every
//! fresh checkout of a two-core machine.

mod bench;
mod bench_migration;
mod bench_qemu_peer;
mod bench_storage;
mod bench_vmx;
mod build;
mod demo;
mod demo_view;
mod esp;
mod fuzz;
mod hostcfg;
mod image;
mod linux_image;
mod prereq;
mod progress;
mod run;
mod terminal;
mod test;
mod workspace;

use anyhow::{Context, Result, bail};
use hostcfg::NetConfig;
use std::path::PathBuf;
use system_tests::EmulatorKind;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build [--debug] [--net none|dhcp|static|static:ADDR/LEN]
        check prerequisites, build loader + hypervisor + guests, fetch the Linux test
        guest's Debian packages (build/linux/), assemble build/esp/ and build/tern-esp.img
  run --emu bochs|qemu|kvm [--hosts N] [--config FILE]... [--debug] [--no-build] [--image]
        boot N hosts (console on this terminal for one host; for several, each console
        on a TCP port: attach with `cargo xtask console PORT`)
  console PORT
        attach this terminal to a console served by `run --hosts N`
  test [--quick] [--filter TEXT] [--threads N]
        fmt + clippy + host tests + build + system tests in emulators
  bench net [--emu qemu|bochs]... [--no-build]
        TCP throughput vs. the raw frame rate between two hosts in QEMU TCG and Bochs,
        written to docs/bench/network.md
  bench vmx [--no-build]
        VM-exit and preemption-timer slice costs, measured in Bochs with the guest TSC
  bench migration [--no-build] [--rates idle,moderate,moderate-partial,heavy,heavy-partial]
        live migrations in Bochs at three dirty rates, wp vs pml: docs/bench/migration.md
  bench storage [--no-build]
        guest disk I/O vs the backends' raw rates, block_migrate's cost, in Bochs:
        docs/bench/storage.md
  demo [--heavy] [--no-build]
        two hosts in Bochs: live-migrate the heartbeat guest from alpha to beta, both
        consoles shown live; --heavy: a guest that dirties memory faster than the link
  fuzz decoders|sealed_session|sealed_source [--runs N]
        coverage-guided fuzzing of migration-proto (cargo-fuzz; needs nightly, not CI)
  prereq
        check and install prerequisites only
";

fn main() {
    if let Err(e) = real_main() {
        eprintln!("[xtask] error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let mut args = Args(std::env::args().skip(1).collect());
    let Some(command) = args.next() else {
        eprint!("{USAGE}");
        bail!("no command given");
    };
    match command.as_str() {
        "build" => {
            let mut options = build::BuildOptions {
                debug: false,
                net: NetConfig::None,
            };
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--debug" => options.debug = true,
                    "--net" => {
                        let value = args.value("--net")?;
                        options.net = NetConfig::parse(&value)
                            .with_context(|| format!("bad --net value `{value}`"))?;
                    }
                    other => bail!("unknown build option `{other}`\n{USAGE}"),
                }
            }
            let ws = workspace::Workspace::load()?;
            let step = progress::Step::start("xtask build");
            build::build(&ws, &options)?;
            step.done();
            eprintln!(
                "[xtask] ESP: {}  image: {}",
                ws.esp_dir().display(),
                ws.esp_image().display()
            );
            Ok(())
        }
        "run" => {
            let mut options = run::RunOptions {
                emu: EmulatorKind::Qemu,
                hosts: 1,
                configs: Vec::new(),
                debug: false,
                no_build: false,
                image: false,
            };
            let mut emu_given = false;
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--emu" => {
                        options.emu = args.value("--emu")?.parse()?;
                        emu_given = true;
                    }
                    "--hosts" => {
                        options.hosts = args
                            .value("--hosts")?
                            .parse()
                            .context("--hosts takes a number")?
                    }
                    "--config" => options.configs.push(PathBuf::from(args.value("--config")?)),
                    "--debug" => options.debug = true,
                    "--no-build" => options.no_build = true,
                    "--image" => options.image = true,
                    other => bail!("unknown run option `{other}`\n{USAGE}"),
                }
            }
            if !emu_given {
                bail!(
                    "run needs --emu bochs|qemu|kvm (bochs emulates VT-x; qemu is fast but has none)"
                );
            }
            run::run(&workspace::Workspace::load()?, &options)
        }
        "console" => {
            let port = args
                .value("console")?
                .parse()
                .context("console takes a port number")?;
            terminal::attach(port)
        }
        "test" => {
            let mut options = test::TestOptions::default();
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--quick" => options.quick = true,
                    "--filter" => options.filter = Some(args.value("--filter")?),
                    "--threads" => {
                        options.threads = Some(
                            args.value("--threads")?
                                .parse()
                                .context("--threads takes a number")?,
                        )
                    }
                    other => bail!("unknown test option `{other}`\n{USAGE}"),
                }
            }
            let ws = workspace::Workspace::load()?;
            let step = progress::Step::start("xtask test");
            let result = test::test(&ws, &options);
            step.done();
            result
        }
        "fuzz" => {
            let Some(target) = args.next() else {
                bail!("fuzz needs a target\n{USAGE}");
            };
            let mut runs = 10_000_000;
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--runs" => {
                        runs = args
                            .value("--runs")?
                            .parse()
                            .context("--runs takes a number")?
                    }
                    other => bail!("unknown fuzz option `{other}`\n{USAGE}"),
                }
            }
            fuzz::fuzz(&workspace::Workspace::load()?, &target, runs)
        }
        "bench" => {
            let target = args.next().unwrap_or_else(|| "net".to_string());
            match target.as_str() {
                "vmx" => {
                    let no_build = match args.next().as_deref() {
                        None => false,
                        Some("--no-build") => true,
                        Some(other) => bail!("unknown bench option `{other}`\n{USAGE}"),
                    };
                    bench_vmx::run(&workspace::Workspace::load()?, no_build)
                }
                "net" => {
                    let mut options = bench::BenchOptions {
                        which: target,
                        emus: Vec::new(),
                        no_build: false,
                    };
                    while let Some(arg) = args.next() {
                        match arg.as_str() {
                            "--emu" => options.emus.push(args.value("--emu")?.parse()?),
                            "--no-build" => options.no_build = true,
                            other => bail!("unknown bench option `{other}`\n{USAGE}"),
                        }
                    }
                    if options.emus.is_empty() {
                        options.emus = vec![EmulatorKind::Qemu, EmulatorKind::Bochs];
                    }
                    let ws = workspace::Workspace::load()?;
                    let step = progress::Step::start("xtask bench net");
                    let result = bench::bench(&ws, &options);
                    step.done();
                    result
                }
                "migration" => {
                    let mut no_build = false;
                    let mut rates = None;
                    while let Some(arg) = args.next() {
                        match arg.as_str() {
                            "--no-build" => no_build = true,
                            "--rates" => rates = args.next(),
                            other => bail!("unknown bench option `{other}`\n{USAGE}"),
                        }
                    }
                    if !no_build {
                        build::build(
                            &workspace::Workspace::load()?,
                            &build::BuildOptions {
                                debug: false,
                                net: NetConfig::None,
                            },
                        )?;
                    }
                    bench_migration::run(rates.as_deref())
                }
                "storage" => {
                    let no_build = match args.next().as_deref() {
                        None => false,
                        Some("--no-build") => true,
                        Some(other) => bail!("unknown bench option `{other}`\n{USAGE}"),
                    };
                    if !no_build {
                        build::build(
                            &workspace::Workspace::load()?,
                            &build::BuildOptions {
                                debug: false,
                                net: NetConfig::None,
                            },
                        )?;
                    }
                    bench_storage::run()
                }
                other => bail!("unknown benchmark `{other}` (known: net, vmx, migration, storage)"),
            }
        }
        "demo" => {
            let mut options = demo::DemoOptions::default();
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--no-build" => options.no_build = true,
                    "--heavy" => options.heavy = true,
                    other => bail!("unknown demo option `{other}`\n{USAGE}"),
                }
            }
            demo::run(&workspace::Workspace::load()?, options)
        }
        "prereq" => prereq::ensure(&workspace::Workspace::load()?),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown command `{other}`")
        }
    }
}

/// The remaining command-line arguments.
struct Args(Vec<String>);

impl Args {
    fn next(&mut self) -> Option<String> {
        if self.0.is_empty() {
            None
        } else {
            Some(self.0.remove(0))
        }
    }

    /// The value of option `name`.
    fn value(&mut self, name: &str) -> Result<String> {
        self.next().with_context(|| format!("{name} needs a value"))
    }
}
