//! `cargo xtask run`: boot one or more tern hosts in an emulator, consoles on the terminal.
//!
//! Each host gets `build/run/<k>-<name>/` with its own ESP copy and `tern.cfg` (host name
//! alpha, beta, ...; with several hosts a static address 10.0.0.(1+k)/24 and a shared
//! migration key). With one host the console is this terminal (QEMU `mon:stdio`; Bochs
//! through a TCP bridge, since Bochs has no stdio serial). With several, each host serves
//! its console on a TCP port and waits for it to be attached (`cargo xtask console PORT`)
//! before it starts, so no output is lost. Hosts share one Ethernet segment: a bxhub for
//! Bochs, a `-netdev socket` pair for QEMU.

use crate::build::{self, BuildOptions};
use crate::hostcfg::{self, HOST_NAMES, HostConfig, NetConfig};
use crate::terminal;
use crate::workspace::Workspace;
use anyhow::{Context, Result, bail};
use std::io::BufRead as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use system_tests::machine::Nic;
use system_tests::{BxHub, EmulatorKind, Machine, NicAttachment, SerialEndpoint};

/// Options of `cargo xtask run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The emulator.
    pub emu: EmulatorKind,
    /// Number of hosts.
    pub hosts: usize,
    /// Config files for hosts 0, 1, ... (the others get generated ones).
    pub configs: Vec<PathBuf>,
    /// Build in debug profile.
    pub debug: bool,
    /// Do not build; boot what `build/esp` holds.
    pub no_build: bool,
    /// Boot `build/tern-esp.img` instead of the ESP directory (one host only).
    pub image: bool,
}

/// A started host.
struct Host {
    name: String,
    child: Child,
    console_port: Option<u16>,
    dir: PathBuf,
}

/// Run `options.hosts` hosts until they all exit (or the operator quits).
pub fn run(ws: &Workspace, options: &RunOptions) -> Result<()> {
    let max_hosts = match options.emu {
        EmulatorKind::Bochs => usize::from(system_tests::bxhub::MAX_PORTS),
        EmulatorKind::Qemu | EmulatorKind::Kvm => 2,
    };
    if options.hosts == 0 || options.hosts > max_hosts {
        bail!("--hosts must be 1 to {max_hosts} with {}", options.emu);
    }
    if options.image && options.hosts != 1 {
        bail!("--image boots one host");
    }
    if options.configs.len() > options.hosts {
        bail!(
            "{} --config files for {} hosts",
            options.configs.len(),
            options.hosts
        );
    }
    if !options.no_build {
        build::build(
            ws,
            &BuildOptions {
                debug: options.debug,
                net: NetConfig::None,
            },
        )?;
    }
    let esp = ws.esp_dir();
    if !esp.join(crate::esp::LOADER_PATH).is_file() {
        bail!("no ESP at {}: run `cargo xtask build`", esp.display());
    }
    let run_dir = ws.build_dir().join("run");
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("remove {}", run_dir.display()))?;
    }
    std::fs::create_dir_all(&run_dir)?;
    let guests = guest_names(&esp)?;
    let key = hostcfg::random_key().context("read /dev/urandom")?;
    let hub = if options.emu == EmulatorKind::Bochs && options.hosts > 1 {
        Some(BxHub::start(options.hosts as u8, &run_dir)?)
    } else {
        None
    };
    let qemu_net_port = system_tests::net::free_tcp_port()?;
    if options.hosts == 1 {
        return run_single(ws, options, &run_dir, &guests);
    }
    let mut hosts = Vec::new();
    for k in 0..options.hosts {
        let config = match options.configs.get(k) {
            Some(file) => {
                std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?
            }
            None => HostConfig::new(
                k,
                NetConfig::Static {
                    address: hostcfg::host_address(k),
                    gateway: None,
                },
                Some(key.clone()),
                &guests,
            )
            .render(),
        };
        let nic = match (&hub, options.emu) {
            (Some(hub), _) => hub.nic(k as u8)?,
            (None, _) => Nic {
                mac: Nic::mac_for_host(k as u8),
                attachment: if k == 0 {
                    NicAttachment::QemuListen(qemu_net_port)
                } else {
                    NicAttachment::QemuConnect(qemu_net_port)
                },
            },
        };
        let port = system_tests::net::free_tcp_port()?;
        let machine = prepare(
            options,
            &run_dir,
            k,
            &config,
            SerialEndpoint::ListenOn(port),
            Some(nic),
            false,
            ws,
        )?;
        let child = spawn_logged(&machine)?;
        hosts.push(Host {
            name: host_name(k),
            child,
            console_port: Some(port),
            dir: machine.work_dir.clone(),
        });
        // QEMU's listening side must be up before the connecting side starts.
        if options.emu != EmulatorKind::Bochs && k == 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    eprintln!(
        "[xtask] {} {} hosts on one Ethernet segment (10.0.0.0/24); each starts when its console is attached:",
        options.hosts, options.emu
    );
    for host in &hosts {
        if let Some(port) = host.console_port {
            eprintln!(
                "[xtask]   {:8} cargo xtask console {port}    (logs: {})",
                host.name,
                host.dir.display()
            );
        }
    }
    eprintln!("[xtask] type `q` and Enter here to stop all hosts");
    wait_all(hosts)?;
    drop(hub);
    Ok(())
}

/// One host, console on this terminal.
fn run_single(
    ws: &Workspace,
    options: &RunOptions,
    run_dir: &Path,
    guests: &[String],
) -> Result<()> {
    let config = match options.configs.first() {
        Some(file) => {
            std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?
        }
        None => HostConfig::new(0, NetConfig::None, None, guests).render(),
    };
    match options.emu {
        EmulatorKind::Qemu | EmulatorKind::Kvm => {
            let machine = prepare(
                options,
                run_dir,
                0,
                &config,
                SerialEndpoint::Stdio,
                None,
                options.image,
                ws,
            )?;
            eprintln!(
                "[xtask] starting {} (Ctrl-A X quits, Ctrl-A C toggles the QEMU monitor)",
                options.emu
            );
            let status = machine
                .command()?
                .status()
                .context("start qemu-system-x86_64")?;
            eprintln!("[xtask] {} exited: {status}", options.emu);
            Ok(())
        }
        EmulatorKind::Bochs => {
            let (listener, port) = system_tests::net::listen_local()?;
            let machine = prepare(
                options,
                run_dir,
                0,
                &config,
                SerialEndpoint::ConnectTo(port),
                None,
                options.image,
                ws,
            )?;
            eprintln!(
                "[xtask] starting bochs (log: {}); the firmware needs ~10 s",
                machine.emulator_log().display()
            );
            let mut child = spawn_logged(&machine)?;
            let stream = accept_or_exit(&listener, &mut child, &machine)?;
            let quit = terminal::bridge(stream)?;
            if quit {
                let _ = child.kill();
            }
            let status = child.wait()?;
            eprintln!("[xtask] bochs exited: {status}");
            Ok(())
        }
    }
}

/// Wait for the emulator to connect its serial line; fail (pointing at its log) if it exits
/// first, e.g. on a bad config line.
fn accept_or_exit(
    listener: &TcpListener,
    child: &mut Child,
    machine: &Machine,
) -> Result<TcpStream> {
    listener.set_nonblocking(true)?;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("accept the serial connection"),
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{} exited ({status}) before connecting its console; see {}",
                machine.kind,
                machine.emulator_log().display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lay out host `k`'s directory and describe its machine.
#[allow(clippy::too_many_arguments)]
fn prepare(
    options: &RunOptions,
    run_dir: &Path,
    k: usize,
    config: &str,
    serial: SerialEndpoint,
    nic: Option<Nic>,
    image: bool,
    ws: &Workspace,
) -> Result<Machine> {
    let dir = run_dir.join(format!("{k}-{}", host_name(k)));
    let esp = dir.join("esp");
    system_tests::esp::copy_tree(&ws.esp_dir(), &esp)?;
    system_tests::esp::write_config(&esp, config)?;
    let mut machine = Machine::new(options.emu, esp, dir.clone(), serial);
    machine.nic = nic;
    if image {
        // The image carries the config `build` wrote; `--config` applies to directories.
        let copy = dir.join("tern-esp.img");
        std::fs::copy(ws.esp_image(), &copy)
            .with_context(|| format!("copy {}", ws.esp_image().display()))?;
        machine.disk_image = Some(copy);
    }
    Ok(machine)
}

fn spawn_logged(machine: &Machine) -> Result<Child> {
    let log = std::fs::File::create(machine.emulator_log())?;
    let err = log.try_clone()?;
    let mut cmd = machine.command()?;
    cmd.stdin(Stdio::null()).stdout(log).stderr(err);
    cmd.spawn()
        .with_context(|| format!("start {:?}", cmd.get_program()))
}

/// Wait until every host has exited, or the operator types `q`.
fn wait_all(mut hosts: Vec<Host>) -> Result<()> {
    let quit = Arc::new(AtomicBool::new(false));
    let quit_flag = Arc::clone(&quit);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) if line.trim() == "q" => {
                    quit_flag.store(true, Ordering::SeqCst);
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    loop {
        let mut running = 0;
        for host in &mut hosts {
            match host.child.try_wait()? {
                Some(_) => {}
                None => running += 1,
            }
        }
        if running == 0 {
            eprintln!("[xtask] all hosts exited");
            return Ok(());
        }
        if quit.load(Ordering::SeqCst) {
            for host in &mut hosts {
                let _ = host.child.kill();
                let _ = host.child.wait();
                eprintln!("[xtask] stopped {}", host.name);
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn host_name(k: usize) -> String {
    HOST_NAMES
        .get(k)
        .map_or_else(|| format!("host{k}"), |n| n.to_string())
}

/// Names of the guest images on the ESP (`tern/guests/NAME.elf`).
fn guest_names(esp: &Path) -> Result<Vec<String>> {
    let dir = esp.join(crate::esp::GUEST_DIR);
    let mut names = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "elf")
                && let Some(stem) = path.file_stem()
            {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}
