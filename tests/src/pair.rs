//! Two tern hosts on one Ethernet segment, booted to their prompts: what the network system
//! tests and `cargo xtask bench net` both need.
//!
//! Host k is named `HOST_NAMES[k]`, has MAC `Nic::mac_for_host(k)` and the static address
//! 10.0.0.(1+k)/24 (the same plan as `cargo xtask run --hosts N`). QEMU hosts are joined by a
//! `-netdev socket` pair (host 0 listens), Bochs hosts by a bxhub that lives as long as the
//! pair. Each host gets its own copy of the ESP with its own config, plus any extra files
//! a test gives it ([`PairHost::file`]: guest images or disks not built in-tree).

use crate::tern;
use crate::{BxHub, Emulator, EmulatorKind, HarnessError, Nic, NicAttachment};
use std::path::Path;
use std::time::Duration;

/// What one host of a [`Pair`] boots with: its config, its RAM and extra ESP files.
#[derive(Clone, Debug)]
pub struct PairHost {
    /// The whole `tern/tern.cfg` text (keep the address plan of [`host_config`]).
    pub config: String,
    /// Host RAM in MiB.
    pub memory_mib: u32,
    /// Files added to this host's ESP copy: (path relative to the ESP root, contents).
    pub files: Vec<(String, Vec<u8>)>,
    /// Bochs only: the emulated CPU model (`None`: the default, tigerlake).
    pub bochs_cpu: Option<String>,
}

impl PairHost {
    /// A host with `config`, the default RAM and no extra files.
    pub fn new(config: impl Into<String>) -> Self {
        PairHost {
            config: config.into(),
            memory_mib: crate::machine::DEFAULT_MEMORY_MIB,
            files: Vec::new(),
            bochs_cpu: None,
        }
    }

    /// Bochs only: emulate this CPU model.
    pub fn bochs_cpu(mut self, model: Option<&str>) -> Self {
        self.bochs_cpu = model.map(str::to_string);
        self
    }

    /// Host RAM in MiB.
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Put `contents` at `relative` (e.g. `tern/guests/other.elf`) in this host's ESP copy.
    pub fn file(mut self, relative: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((relative.to_string(), contents.into()));
        self
    }

    /// Put a copy of the file at `source` (e.g. a guest image built elsewhere) at `relative`
    /// in this host's ESP copy.
    pub fn file_from(self, relative: &str, source: &Path) -> Result<Self, HarnessError> {
        let contents = std::fs::read(source)
            .map_err(|e| HarnessError::io(format!("read {}", source.display()), e))?;
        Ok(self.file(relative, contents))
    }
}

/// Names of host 0 and host 1.
pub const HOST_NAMES: [&str; 2] = ["alpha", "beta"];

/// The IPv4 address of host `index` (no prefix).
pub fn host_ip(index: usize) -> String {
    format!("10.0.0.{}", 1 + index)
}

/// The config text of host `index` with a static address on 10.0.0.0/24.
pub fn host_config(index: usize) -> String {
    format!(
        "[host]\nname = {}\n\n[net]\nmode = static\naddress = {}/24\n",
        HOST_NAMES[index],
        host_ip(index)
    )
}

/// Two booted hosts on one segment.
pub struct Pair {
    /// Host 0 (10.0.0.1) and host 1 (10.0.0.2).
    pub hosts: [Emulator; 2],
    /// Boot output of each host up to its first prompt.
    pub boot_logs: [String; 2],
    /// The Bochs hub (dropped last, after the emulators).
    _hub: Option<BxHub>,
}

impl Pair {
    /// Start two `kind` hosts named `name-0` and `name-1` and wait for both prompts.
    pub fn boot(kind: EmulatorKind, name: &str) -> Result<Pair, HarnessError> {
        Pair::boot_in(kind, name, &crate::work_root())
    }

    /// [`Pair::boot`] with the instance directories under `work_root`.
    pub fn boot_in(kind: EmulatorKind, name: &str, work_root: &Path) -> Result<Pair, HarnessError> {
        Pair::boot_with_configs(kind, name, work_root, [host_config(0), host_config(1)])
    }

    /// [`Pair::boot_in`] with each host's whole config text given (it should keep the
    /// address plan of [`host_config`]: e.g. that text plus `[migration]` and `[vm]`).
    pub fn boot_with_configs(
        kind: EmulatorKind,
        name: &str,
        work_root: &Path,
        configs: [String; 2],
    ) -> Result<Pair, HarnessError> {
        let memory = [crate::machine::DEFAULT_MEMORY_MIB; 2];
        Pair::boot_with_memory(kind, name, work_root, configs, memory)
    }

    /// [`Pair::boot_with_configs`] with each host's RAM given in MiB (e.g. a destination
    /// too small to back an incoming VM).
    pub fn boot_with_memory(
        kind: EmulatorKind,
        name: &str,
        work_root: &Path,
        configs: [String; 2],
        memory_mib: [u32; 2],
    ) -> Result<Pair, HarnessError> {
        let [first, second] = configs;
        let hosts = [
            PairHost::new(first).memory_mib(memory_mib[0]),
            PairHost::new(second).memory_mib(memory_mib[1]),
        ];
        Pair::boot_hosts(kind, name, work_root, hosts)
    }

    /// Start two `kind` hosts named `name-0` and `name-1`, each as `hosts` describes it
    /// (config, RAM, extra ESP files), under `work_root`; wait for both prompts.
    pub fn boot_hosts(
        kind: EmulatorKind,
        name: &str,
        work_root: &Path,
        hosts: [PairHost; 2],
    ) -> Result<Pair, HarnessError> {
        let mut pair = Pair::start_hosts(kind, name, work_root, hosts)?;
        let timeout = kind.boot_timeout();
        for (host, log) in pair.hosts.iter_mut().zip(&mut pair.boot_logs) {
            log.push_str(&host.console().expect(tern::BANNER, timeout)?);
            log.push_str(&host.console().expect(tern::PROMPT, timeout)?);
        }
        Ok(pair)
    }

    /// [`Pair::boot_hosts`] without waiting for anything: the emulators are running, their
    /// consoles attached, `boot_logs` empty (for a caller that shows the boot as it happens).
    pub fn start_hosts(
        kind: EmulatorKind,
        name: &str,
        work_root: &Path,
        hosts: [PairHost; 2],
    ) -> Result<Pair, HarnessError> {
        let hub_dir = work_root.join(format!("{name}-hub-{}", std::process::id()));
        let (hub, nics) = segment_nics(kind, &hub_dir)?;
        let start = |index: usize, host: &PairHost| {
            let mut builder = Emulator::builder(kind)
                .name(&format!("{name}-{index}"))
                .work_root(work_root)
                .config(&host.config)
                .memory_mib(host.memory_mib)
                .nic(nics[index]);
            for (relative, contents) in &host.files {
                builder = builder.file(relative, contents);
            }
            if let Some(model) = &host.bochs_cpu {
                builder = builder.bochs_cpu(model);
            }
            builder.start()
        };
        // Host 0 first: with QEMU it is the listening end, which must exist before host 1
        // connects.
        let first = start(0, &hosts[0])?;
        let second = start(1, &hosts[1])?;
        Ok(Pair {
            hosts: [first, second],
            boot_logs: [String::new(), String::new()],
            _hub: hub,
        })
    }

    /// Pull the cable: the Bochs hub goes away, so no frame passes any more (Bochs pairs
    /// only; QEMU socket pairs have no hub to kill). Returns whether there was a hub.
    pub fn cut_network(&mut self) -> bool {
        self._hub.take().is_some()
    }

    /// The emulator kind of both hosts.
    pub fn kind(&self) -> EmulatorKind {
        self.hosts[0].kind()
    }

    /// Run a console command on host `index`; returns its immediate answer.
    pub fn command(&mut self, index: usize, line: &str) -> Result<String, HarnessError> {
        tern::command(&mut self.hosts[index], line)
    }

    /// Wait for `pattern` in host `index`'s output; returns the text up to it.
    pub fn expect(
        &mut self,
        index: usize,
        pattern: &str,
        timeout: Duration,
    ) -> Result<String, HarnessError> {
        self.hosts[index].console().expect(pattern, timeout)
    }

    /// `ping` from host `from` to the other host with `count` requests; returns everything
    /// up to the statistics line. Fails if no reply came back.
    pub fn ping(&mut self, from: usize, count: u16) -> Result<String, HarnessError> {
        let target = host_ip(1 - from);
        self.command(from, &format!("ping {target} {count}"))?;
        // Each request waits at most the ping reply timeout; allow for a slow emulator.
        let timeout = self.kind().command_timeout() + Duration::from_secs(u64::from(count) * 2);
        let mut text = self.expect(from, "packets transmitted", timeout)?;
        text.push_str(&self.expect(from, "\n", timeout)?);
        Ok(text)
    }
}

/// The NICs of two hosts on one Ethernet segment: a bxhub (returned, so the caller keeps it
/// alive) for Bochs, a `-netdev socket` listen/connect pair for QEMU. Host 0 must start first
/// with QEMU: it is the listening end.
pub fn segment_nics(
    kind: EmulatorKind,
    hub_dir: &Path,
) -> Result<(Option<BxHub>, [Nic; 2]), HarnessError> {
    Ok(match kind {
        EmulatorKind::Bochs => {
            let hub = BxHub::start(2, hub_dir)?;
            let nics = [hub.nic(0)?, hub.nic(1)?];
            (Some(hub), nics)
        }
        EmulatorKind::Qemu | EmulatorKind::Kvm => {
            let port = crate::net::free_tcp_port()?;
            let nic = |index: u8, attachment| Nic {
                mac: Nic::mac_for_host(index),
                attachment,
            };
            (
                None,
                [
                    nic(0, NicAttachment::QemuListen(port)),
                    nic(1, NicAttachment::QemuConnect(port)),
                ],
            )
        }
    })
}
