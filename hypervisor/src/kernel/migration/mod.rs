//! Migration inside the kernel: the listener on `[migration] port`, one outgoing and one
//! incoming migration advanced by a main-loop poller, and the console commands `migrate`,
//! `migrate_cancel`, `migrate_set_parameter`, `migrate_incoming` and `info migrate`.
//!
//! Why it looks like this: all decisions live in `crate::migration` (host-tested engines);
//! this file only finds the VM, the socket and the clock, and hands them to the engines each
//! round. Lock order is always MIGRATION -> network stack -> VMs (single core, so this only
//! avoids re-entering a spin lock).

mod adapters;
pub(super) mod commands;

pub use commands::MIGRATION_COMMANDS;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use migration_proto::cpu::CpuDescriptor;
use migration_proto::crypto::{Endpoints, PreSharedKey};
use migration_proto::session::Instant;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use spin::Mutex;

use self::adapters::{IncomingMachine, KernelFactory, NoVmFactory, SourceVm};
use super::host::Host;
use super::main_loop::{PollResult, Poller};
use super::network::with_net_stack;
use super::vms::{unavailable_reason, with_vms};
use crate::arch::{serial, tsc};
use crate::migration::cpu_budget::CpuBudget;
use crate::migration::destination::{DestinationEngine, DestinationOutcome};
use crate::migration::in_doubt::{destination_kept, source_verdict};
use crate::migration::params::MigrationParams;
use crate::migration::report::MigrationInfo;
use crate::migration::source::{SourceEngine, SourceOutcome};
use crate::migration::tcp::{TcpTransport, new_socket};
use crate::vm::machine::ManagedMachine;
use crate::vm::state::VmCommand;
use crate::vm::vm_set::VmHold;

/// Largest incoming VM accepted.
const MAX_INCOMING_BYTES: u64 = 1 << 30;
/// How long a finished connection may linger (sending its last bytes and FIN).
const LINGER_US: u64 = 5_000_000;

struct Outgoing {
    engine: SourceEngine,
    /// The migration's share of the core while the guest runs (`cpu-budget`).
    budget: CpuBudget,
    socket: SocketHandle,
    vm: String,
    paused_here: bool,
    /// Testing switch `fault-inject drop-release` was on when this migration started.
    drop_release: bool,
}

struct Incoming {
    engine: DestinationEngine<IncomingMachine>,
    socket: SocketHandle,
}

struct Migrations {
    params: MigrationParams,
    key: Option<[u8; 32]>,
    /// What this host offers an incoming VM (the whole offer, `host` model).
    cpu: CpuDescriptor,
    host_name: String,
    sessions: u64,
    next_vpid: u16,
    outgoing: Option<Outgoing>,
    incoming: Option<Incoming>,
    listener: Option<(SocketHandle, u16)>,
    listen_port: Option<u16>,
    last: Option<MigrationInfo>,
    lingering: Vec<(SocketHandle, u64)>,
    /// The missing-RDRAND warning was printed.
    warned_no_hw_random: bool,
}

static MIGRATION: Mutex<Option<Migrations>> = Mutex::new(None);

fn now() -> Instant {
    Instant::from_micros(tsc::uptime_ns() / 1000)
}

fn say(line: &str) {
    serial::write_bytes(line.as_bytes());
    serial::write_bytes(b"\n");
}

/// Boot step: defaults from `[migration]`, the listener when a key is configured.
pub fn start(host: &Host) -> Option<Box<dyn Poller>> {
    let config = host.config.as_ref()?;
    let mut params = MigrationParams::default();
    if let Some(ms) = config.migration.downtime_limit_ms {
        params.downtime_limit_ms = u64::from(ms);
    }
    if let Some(mib) = config.migration.max_bandwidth_mib {
        params.max_bandwidth_mib = u64::from(mib);
    }
    let mut m = Migrations {
        params,
        key: config.migration.key,
        cpu: adapters::cpu_descriptor(super::cpu_models::host_offer()),
        host_name: config.host.name.clone(),
        sessions: 0,
        next_vpid: 0x100,
        outgoing: None,
        incoming: None,
        listener: None,
        listen_port: config.migration.key.map(|_| config.migration.port),
        last: None,
        lingering: Vec::new(),
        warned_no_hw_random: false,
    };
    if m.key.is_none() {
        log::info!("migration: no [migration] key configured: migration is disabled");
    } else {
        match crate::arch::random::random_u64() {
            Some((_, source)) => log::info!("migration: session nonces use {}", source.name()),
            None => {
                log::warn!("migration: no RDSEED/RDRAND: session nonces are unique but predictable")
            }
        }
    }
    m.ensure_listener();
    *MIGRATION.lock() = Some(m);
    Some(Box::new(MigrationPoller))
}

impl Migrations {
    fn nonce(&mut self) -> [u8; 32] {
        self.sessions += 1;
        let (nonce, source) = adapters::nonce(self.sessions, &self.host_name);
        if source.is_none() && !self.warned_no_hw_random {
            self.warned_no_hw_random = true;
            log::warn!("migration: no RDSEED/RDRAND: session nonces are unique but predictable");
        }
        nonce
    }

    /// A listening socket on `listen_port` while no incoming migration runs.
    fn ensure_listener(&mut self) {
        let (Some(port), None, None) = (self.listen_port, &self.listener, &self.incoming) else {
            return;
        };
        let result = with_net_stack(|stack| {
            let mut socket = new_socket();
            socket.listen(port).map(|()| stack.sockets().add(socket))
        });
        match result {
            Some(Ok(handle)) => {
                log::info!("migration: listening on port {port}");
                self.listener = Some((handle, port));
            }
            Some(Err(e)) => log::error!("migration: cannot listen on {port}: {e}"),
            None => {
                log::warn!("migration: no network: not listening");
                self.listen_port = None;
            }
        }
    }

    fn linger(&mut self, socket: SocketHandle) {
        self.lingering.push((socket, now().as_micros() + LINGER_US));
    }

    fn poll(&mut self) -> PollResult {
        let now = now();
        let mut busy = false;
        if self.outgoing.is_some() {
            busy = true;
            self.poll_outgoing(now);
        }
        if self.incoming.is_none()
            && let Some((handle, _)) = self.listener
            && self.accept_pending(handle)
        {
            let key = self.key.unwrap_or([0; 32]);
            let nonce = self.nonce();
            let mut engine = DestinationEngine::new(
                PreSharedKey::new(key),
                self.cpu.clone(),
                MAX_INCOMING_BYTES,
                nonce,
                now,
            );
            match Self::endpoints(handle, false) {
                Some(endpoints) => engine.set_endpoints(endpoints),
                None => log::warn!("migration: incoming connection without IPv4 endpoints"),
            }
            self.incoming = Some(Incoming {
                engine,
                socket: handle,
            });
            self.listener = None;
            say("migrate: incoming connection");
        }
        if self.incoming.is_some() {
            busy = true;
            self.poll_incoming(now);
        }
        self.reap(now);
        self.ensure_listener();
        if busy {
            PollResult::Busy
        } else {
            PollResult::Idle
        }
    }

    /// The endpoints of a connected migration socket, for the handshake's binding:
    /// (local, remote) ordered as (source, destination) for an outgoing connection and the
    /// other way round for an incoming one.
    fn endpoints(handle: SocketHandle, outgoing: bool) -> Option<Endpoints> {
        with_net_stack(|stack| {
            let socket = stack.sockets().get::<tcp::Socket>(handle);
            let v4 = |e: smoltcp::wire::IpEndpoint| match e.addr {
                smoltcp::wire::IpAddress::Ipv4(a) => Some((a.octets(), e.port)),
                #[allow(unreachable_patterns)]
                _ => None,
            };
            let local = v4(socket.local_endpoint()?)?;
            let remote = v4(socket.remote_endpoint()?)?;
            Some(if outgoing {
                Endpoints {
                    source: local,
                    destination: remote,
                }
            } else {
                Endpoints {
                    source: remote,
                    destination: local,
                }
            })
        })
        .flatten()
    }

    fn accept_pending(&self, handle: SocketHandle) -> bool {
        with_net_stack(|stack| {
            let state = stack.sockets().get::<tcp::Socket>(handle).state();
            !matches!(state, tcp::State::Listen | tcp::State::Closed)
        })
        .unwrap_or(false)
    }

    fn reap(&mut self, now: Instant) {
        let due: Vec<SocketHandle> = self
            .lingering
            .iter()
            .filter(|(_, at)| now.as_micros() >= *at)
            .map(|(h, _)| *h)
            .collect();
        if due.is_empty() {
            return;
        }
        self.lingering.retain(|(h, _)| !due.contains(h));
        with_net_stack(|stack| {
            for h in due {
                stack.sockets().get_mut::<tcp::Socket>(h).abort();
                stack.sockets().remove(h);
            }
        });
    }

    fn poll_outgoing(&mut self, now: Instant) {
        let Some(out) = self.outgoing.as_mut() else {
            return;
        };
        let outcome = with_net_stack(|stack| {
            let outcome = with_vms(|set, ctx| {
                let Some(hv) = set.get_mut(&out.vm) else {
                    out.engine.cancel(now);
                    return None;
                };
                let mut vm = SourceVm {
                    machine: &mut hv.machine,
                    ctx,
                    paused_here: &mut out.paused_here,
                };
                let mut link = TcpTransport {
                    sockets: stack.sockets(),
                    handle: out.socket,
                };
                let started_ns = tsc::uptime_ns();
                let may_work = out.budget.may_work(started_ns / 1000);
                out.engine.allow_page_work(may_work);
                let outcome = out.engine.poll(&mut vm, &mut link, now).cloned();
                let ended_ns = tsc::uptime_ns();
                out.budget
                    .spent((ended_ns - started_ns) / 1000, ended_ns / 1000);
                outcome
            })
            .flatten();
            if out.drop_release && matches!(outcome, Some(SourceOutcome::Completed(_))) {
                // Testing only (`fault-inject drop-release`): the Release frame is still in
                // the socket's send buffer (the interface has not been polled since), so a
                // reset now means it never leaves: the destination is left in doubt.
                stack.sockets().get_mut::<tcp::Socket>(out.socket).abort();
                say("migrate: fault-inject drop-release: connection reset before Release");
            }
            outcome
        })
        .flatten();
        while let Some(line) = out.engine.take_line() {
            say(&line);
        }
        let Some(outcome) = outcome else {
            return;
        };
        let name = out.vm.clone();
        let completed = matches!(outcome, SourceOutcome::Completed(_));
        with_vms(|set, ctx| {
            set.release_hold(&name);
            if completed {
                // The destination owns the VM now: release ours.
                if let Some(hv) = set.remove(&name) {
                    hv.machine.destroy(&mut ctx.vmx, &mut ctx.frames);
                }
            }
        });
        say(&source_verdict(&name, completed));
        self.last = Some(out.engine.info(now));
        let socket = out.socket;
        self.outgoing = None;
        self.linger(socket);
    }

    fn poll_incoming(&mut self, now: Instant) {
        let Some(inc) = self.incoming.as_mut() else {
            return;
        };
        let vpid = self.next_vpid;
        let result = with_net_stack(|stack| {
            let mut link = TcpTransport {
                sockets: stack.sockets(),
                handle: inc.socket,
            };
            let with_vmx = with_vms(|set, ctx| {
                let taken = set.iter().map(|v| String::from(v.machine.name())).collect();
                let mut factory = KernelFactory { ctx, vpid, taken };
                let outcome = inc.engine.poll(&mut factory, &mut link, now).cloned();
                if let Some(outcome) = &outcome
                    && let Some(vm) = inc.engine.take_vm()
                {
                    while let Some(line) = inc.engine.take_line() {
                        say(&line);
                    }
                    keep_incoming(vm, outcome, set, factory.ctx);
                }
                outcome
            });
            // Without VT-x the session still runs (and times out): every offer is refused
            // with the reason, so nothing holds the incoming slot.
            with_vmx.unwrap_or_else(|| {
                let mut factory = NoVmFactory {
                    why: unavailable_reason(),
                };
                inc.engine.poll(&mut factory, &mut link, now).cloned()
            })
        })
        .flatten();
        while let Some(line) = inc.engine.take_line() {
            say(&line);
        }
        if let Some(outcome) = result {
            if !matches!(outcome, DestinationOutcome::Failed(_)) {
                self.next_vpid = self.next_vpid.wrapping_add(1).max(0x100);
            }
            let socket = inc.socket;
            self.incoming = None;
            self.linger(socket);
        }
    }
}

/// Loads the vCPU state into a committed VM and adds it to the host: started when the
/// source released it, kept paused and held when the commit is in doubt.
fn keep_incoming(
    mut vm: IncomingMachine,
    outcome: &DestinationOutcome,
    set: &mut crate::vm::vm_set::VmSet<super::vms::HostVm>,
    ctx: &mut crate::vm::machine::MachineContext<super::vms::KernelFrames>,
) {
    let name = String::from(vm.machine.name());
    let restored = match vm.vcpu.take() {
        Some(state) => vm
            .machine
            .restore_vcpu_state(&mut ctx.vmx, &state)
            .map_err(|e| format!("{e}")),
        None => Err(String::from("no vCPU state arrived")),
    };
    let restore_failed = restored.is_err();
    let in_doubt = match outcome {
        DestinationOutcome::InDoubt(why) => Some(why.to_string()),
        _ => None,
    };
    let resumed = match (&in_doubt, restored) {
        (Some(_), restored) => restored,
        (None, restored) => restored.and_then(|()| {
            vm.machine
                .command(&mut ctx.vmx, &mut ctx.frames, VmCommand::Resume)
                .map_err(|e| format!("{e}"))
        }),
    };
    if let Err(e) = &resumed {
        // The commit is done: keep the VM (paused) for the operator rather than lose it.
        say(&format!("migrate: VM '{name}' arrived but cannot run: {e}"));
    }
    if let Err(vm) = set.add(ManagedMachine::new(vm.machine)) {
        // Cannot happen (the factory refuses taken names), but never run two VMs by one name.
        say(&format!(
            "migrate: VM '{name}' clashes with an existing VM; destroyed"
        ));
        vm.machine.destroy(&mut ctx.vmx, &mut ctx.frames);
        return;
    }
    if restore_failed {
        // Its vCPU would start from the reset state: never let it run (not even by
        // resolving a doubt), only discard it.
        set.hold(&name, VmHold::Unrunnable);
        say(&format!(
            "migrate: VM '{name}' is held unrunnable: {}",
            VmHold::Unrunnable.refusal()
        ));
        return;
    }
    match in_doubt {
        Some(why) => {
            set.hold(&name, VmHold::InDoubt);
            say(&destination_kept(&name, &why));
        }
        None if resumed.is_ok() => say(&format!("migrate: VM '{name}' is running on this host")),
        None => say(&format!(
            "migrate: VM '{name}' is kept paused on this host with its state (vm info {name}; \
             it can be migrated back)"
        )),
    }
}

/// Advances migrations once per main-loop round.
pub struct MigrationPoller;

impl Poller for MigrationPoller {
    fn name(&self) -> &'static str {
        "migration"
    }

    fn poll(&mut self, _now_ns: u64) -> PollResult {
        let mut guard = MIGRATION.lock();
        match guard.as_mut() {
            Some(m) => m.poll(),
            None => PollResult::Idle,
        }
    }
}
