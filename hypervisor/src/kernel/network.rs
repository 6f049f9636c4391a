//! The network stack inside the kernel: PCI enumeration and NIC bring-up at boot, a main-loop
//! poller that advances smoltcp, and the `net`, `ping`, `nettest`, `netbench` and `pci`
//! console commands.
//!
//! Why a separate file: `crate::net` is portable and host-tested; this is only the bare-metal
//! glue (port I/O, the identity map, the TSC, the serial console) plus the global that lets
//! stateless command handlers reach the one stack. Networking is optional: with
//! `[net] mode = none`, without a supported NIC or when the driver fails, boot prints one line
//! saying why, the hypervisor keeps running and every network command repeats that reason.
//!
//! Concurrency: tern is single-core with interrupts disabled, so the stack's mutex is only
//! ever taken by the poller or by a command handler, never both at once (they run one after
//! the other in the main loop). The mutex exists to make the global safe to name, not to
//! arbitrate contention.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use boot_proto::config::{self, Config};
use spin::{Mutex, Once};

use super::host;
use super::main_loop::{PollResult, Poller};
use crate::acpi::power::IdentityMappedMemory;
use crate::acpi::{AcpiError, mcfg};
use crate::arch::serial::SerialWriter;
use crate::arch::tsc;
use crate::console::{CommandError, CommandSpec, Invocation};
use crate::memory::global;
use crate::net::commands::{self as net_commands, CmdError};
use crate::net::pci::{self, Bdf, ConfigSpace, EcamConfigSpace, PciDevice, PortConfigSpace};
use crate::net::stack::{NetConfig, NetMode, NetStack};
use crate::net::{bringup, nic::MacAddr};

/// The stack, once brought up.
static STACK: Mutex<Option<KernelStack>> = Mutex::new(None);
/// The PCI functions found at boot (for `pci`).
static DEVICES: Once<Vec<PciDevice>> = Once::new();
/// Why there is no stack (for every network command), set when bring-up did not happen.
static UNAVAILABLE: Once<String> = Once::new();

/// The stack behind the global mutex.
struct KernelStack(NetStack);

// SAFETY: the stack holds the NIC driver (`Box<dyn Nic>` over MMIO and DMA memory), which is
// not `Send` because nothing promises it may move between threads. tern has exactly one
// thread of execution (single core, interrupts disabled), so the value never crosses one.
unsafe impl Send for KernelStack {}

/// Microseconds since boot, the stack's monotonic clock (calibrated TSC).
fn now_us() -> u64 {
    tsc::uptime_ns() / 1000
}

/// The stack's configuration from the host config; `None` when networking is off.
fn stack_config(config: Option<&Config>) -> Option<NetConfig> {
    let mode = match &config?.net.mode {
        config::NetMode::None => return None,
        config::NetMode::Dhcp => NetMode::Dhcp,
        config::NetMode::Static {
            address,
            prefix_len,
            gateway,
        } => NetMode::Static {
            address: Ipv4Addr::from(*address),
            prefix_len: *prefix_len,
            gateway: gateway.map(Ipv4Addr::from),
        },
    };
    Some(NetConfig {
        mode,
        mac: config?.net.mac,
        mtu: usize::from(config?.net.mtu),
    })
}

/// PCI configuration access: ECAM where ACPI's MCFG describes a window for segment 0 from
/// bus 0 that the identity map covers, else configuration mechanism #1 (ports 0xCF8/0xCFC,
/// which every PC chipset has and which reaches the first 256 bytes of each function).
fn config_space() -> Box<dyn ConfigSpace> {
    // SAFETY: boot is the only user of 0xCF8/0xCFC while the value returned here lives (it
    // is dropped at the end of `init`); every PC chipset (q35, i440FX) has mechanism #1.
    let mut ports = unsafe { PortConfigSpace::new() };
    let limit = global::identity_limit();
    let rsdp = host::get().map_or(0, |h| h.boot_info.acpi_rsdp);
    let regions = match mcfg::find_ecam(&IdentityMappedMemory { limit }, rsdp) {
        Ok(regions) => regions,
        // Without ACPI tables the `acpi:` boot line has already said that PCI uses ports.
        Err(AcpiError::NoRsdp) => return Box::new(ports),
        Err(error) => {
            log::info!("pci: no ECAM ({error}); using ports 0xCF8/0xCFC");
            return Box::new(ports);
        }
    };
    let usable = regions
        .iter()
        .find(|r| r.segment == 0 && r.start_bus == 0 && r.base.saturating_add(r.len()) <= limit);
    let Some(region) = usable else {
        log::info!("pci: no usable ECAM window in ACPI MCFG; using ports 0xCF8/0xCFC");
        return Box::new(ports);
    };
    // SAFETY: the window comes from the firmware's MCFG, lies inside the identity map
    // (checked above; the MMIO hole is uncached per the firmware's MTRRs) and is used by
    // nothing else.
    let mut ecam = unsafe { EcamConfigSpace::new(region.base, region.start_bus, region.end_bus) };
    // Trust but verify: the host bridge's ID must read the same both ways.
    let host_bridge = Bdf::new(0, 0, 0);
    if ecam.read32(host_bridge, 0) != ports.read32(host_bridge, 0) {
        log::warn!(
            "pci: ECAM at {:#x} disagrees with port access; using ports 0xCF8/0xCFC",
            region.base
        );
        return Box::new(ports);
    }
    log::info!(
        "pci: ECAM at {:#x} (buses {}-{}) from ACPI MCFG",
        region.base,
        region.start_bus,
        region.end_bus
    );
    Box::new(ecam)
}

/// Boot step: enumerate PCI (one log line per function) and bring up the NIC the config asks
/// for. Never fails: without a network the reason is logged and kept for the commands.
pub fn init(config: Option<&Config>) {
    let mut cfg = config_space();
    let devices = DEVICES.call_once(|| pci::enumerate(&mut *cfg));
    log::info!("pci: {} functions", devices.len());
    let mut line = String::new();
    for device in devices {
        line.clear();
        let _ = pci::format_device(&mut line, device);
        log::info!("pci: {line}");
    }

    let Some(net_config) = stack_config(config) else {
        let reason = "networking is disabled by the config ([net] mode = none)";
        log::info!("net: {reason}");
        UNAVAILABLE.call_once(|| String::from(reason));
        return;
    };
    let alloc_pages = |pages: usize| global::allocate_zeroed(pages as u64, 4096).ok();
    // SAFETY: `identity_limit` is the loader's identity map, which covers RAM and the 32-bit
    // PCI MMIO hole; `allocate_zeroed` hands out unused identity-mapped frames that the driver
    // keeps forever; the NIC is driven by nothing else (guests never get PCI passthrough).
    let result = unsafe {
        bringup::bring_up_bare_metal(
            &mut *cfg,
            devices,
            global::identity_limit(),
            alloc_pages,
            &net_config,
            tsc::rdtsc(),
            now_us(),
        )
    };
    match result {
        Ok(mut stack) => {
            let mac = MacAddr(stack.nic().mac());
            let link = if stack.link_up() { "up" } else { "down" };
            let name = String::from(stack.nic().name());
            let address = match stack.ipv4() {
                Some(cidr) => format!("{cidr}"),
                None => String::from("dhcp pending"),
            };
            log::info!("net: {name} mac {mac} link {link}, ipv4 {address}");
            *STACK.lock() = Some(KernelStack(stack));
        }
        Err(error) => {
            // `error`'s Display already starts with "net: ".
            let reason = format!("{error}");
            log::warn!("{reason}; continuing without networking");
            UNAVAILABLE.call_once(|| reason);
        }
    }
}

/// Runs `f` on the network stack (for migration's sockets); `None` without networking.
pub(super) fn with_net_stack<R>(f: impl FnOnce(&mut NetStack) -> R) -> Option<R> {
    let mut guard = STACK.lock();
    let KernelStack(stack) = guard.as_mut()?;
    Some(f(stack))
}

/// Why there is no network stack, for other subsystems' messages.
pub(super) fn network_unavailable_reason() -> String {
    unavailable_reason()
}

/// The stack's turn in the main loop: NIC, smoltcp, tools, then queued operator lines.
pub struct NetPoller;

impl Poller for NetPoller {
    fn name(&self) -> &'static str {
        "net"
    }

    fn poll(&mut self, now_ns: u64) -> PollResult {
        let mut guard = STACK.lock();
        let Some(KernelStack(stack)) = guard.as_mut() else {
            return PollResult::Idle;
        };
        stack.poll(now_ns / 1000);
        let _ = stack.drain_output(&mut SerialWriter);
        if stack.busy() || stack.listening() {
            PollResult::Busy
        } else {
            PollResult::Idle
        }
    }
}

/// The poller to add to the main loop, if a stack was brought up.
pub fn poller() -> Option<Box<dyn Poller>> {
    STACK
        .lock()
        .is_some()
        .then(|| Box::new(NetPoller) as Box<dyn Poller>)
}

/// `net`, `ping`, `nettest`, `netbench`, `pci`.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "net",
        usage: "",
        help: "NIC, MAC, link, MTU, IPv4 address and rx/tx/drop counters",
        min_args: 0,
        max_args: 0,
        handler: net,
    },
    CommandSpec {
        name: "ping",
        usage: "IP [COUNT] | stop",
        help: "ICMP echo with round-trip times",
        min_args: 1,
        max_args: 2,
        handler: ping,
    },
    CommandSpec {
        name: "nettest",
        usage: "listen PORT | send IP:PORT MIB | status | stop",
        help: "TCP test transfer with throughput and checksum",
        min_args: 1,
        max_args: 3,
        handler: nettest,
    },
    CommandSpec {
        name: "netbench",
        usage: "FRAMES | rx",
        help: "raw transmit benchmark; `rx`: what arrived of a peer's run",
        min_args: 1,
        max_args: 1,
        handler: netbench,
    },
    CommandSpec {
        name: "pci",
        usage: "",
        help: "PCI functions found at boot",
        min_args: 0,
        max_args: 0,
        handler: pci_list,
    },
];

type StackCommand =
    fn(Option<&mut NetStack>, &mut dyn core::fmt::Write, &[&str]) -> Result<(), CmdError>;

/// Runs a network command against the stack, or explains why there is none.
fn with_stack(inv: &mut Invocation<'_>, command: StackCommand) -> Result<(), CommandError> {
    let args: Vec<&str> = inv.args.iter().map(String::as_str).collect();
    let mut guard = STACK.lock();
    let stack = guard.as_mut().map(|KernelStack(stack)| stack);
    if stack.is_none() {
        return Err(CommandError::Failed(unavailable_reason()));
    }
    let result = command(stack, inv.out, &args);
    // Lines the command queued (e.g. a refused transfer) appear before the next prompt.
    if let Some(KernelStack(stack)) = guard.as_mut() {
        let _ = stack.drain_output(inv.out);
    }
    result.map_err(command_error)
}

fn unavailable_reason() -> String {
    match UNAVAILABLE.get() {
        Some(reason) if reason.starts_with("net: ") => String::from(reason),
        Some(reason) => format!("net: {reason}"),
        None => String::from("net: networking is not initialised"),
    }
}

fn command_error(error: CmdError) -> CommandError {
    match error {
        CmdError::Usage(usage) => CommandError::BadArgument(format!("usage: {usage}")),
        CmdError::NoNic => CommandError::Failed(unavailable_reason()),
        other => CommandError::Failed(format!("{other}")),
    }
}

fn net(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    with_stack(inv, net_commands::cmd_net)
}

fn ping(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    with_stack(inv, net_commands::cmd_ping)
}

fn nettest(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    with_stack(inv, net_commands::cmd_nettest)
}

fn netbench(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    with_stack(inv, |stack, out, args| {
        net_commands::cmd_netbench(stack, out, args, &mut now_us)
    })
}

fn pci_list(inv: &mut Invocation<'_>) -> Result<(), CommandError> {
    let devices = DEVICES.get().map(Vec::as_slice).unwrap_or(&[]);
    let args: Vec<&str> = inv.args.iter().map(String::as_str).collect();
    net_commands::cmd_pci(devices, inv.out, &args).map_err(command_error)
}
