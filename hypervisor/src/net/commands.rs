//! Console commands of the network layer: `net`, `ping`, `nettest`, `pci`.
//!
//! Plain functions so the console's command table can register them: each takes the state
//! it needs, the output and the arguments after the command name, writes its answer and
//! returns a one-line error for a bad invocation. `None` for the stack means the hypervisor
//! found no usable NIC; every command then says so and nothing else happens.

use core::fmt::{self, Write};

use super::bench::{self, BenchError};
use super::nic::MacAddr;
use super::pci::{PciDevice, format_device};
use super::stack::{NetError, NetMode, NetStack, parse_endpoint, parse_ipv4};

/// Why a command did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    /// Bad arguments; carries the usage line.
    Usage(&'static str),
    /// No NIC was found or brought up at boot.
    NoNic,
    /// The stack refused the operation.
    Net(NetError),
    /// The raw transmit benchmark ended early.
    Bench(BenchError),
    /// Writing the answer failed.
    Output,
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(usage) => write!(f, "usage: {usage}"),
            Self::NoNic => write!(f, "no network interface (no supported NIC was found)"),
            Self::Net(error) => write!(f, "{error}"),
            Self::Bench(error) => write!(f, "{error}"),
            Self::Output => write!(f, "console output failed"),
        }
    }
}

impl From<NetError> for CmdError {
    fn from(error: NetError) -> Self {
        Self::Net(error)
    }
}

impl From<fmt::Error> for CmdError {
    fn from(_: fmt::Error) -> Self {
        Self::Output
    }
}

/// Usage of `net`.
pub const NET_USAGE: &str = "net";
/// Usage of `ping`.
pub const PING_USAGE: &str = "ping IP [COUNT] | ping stop";
/// Usage of `nettest`.
pub const NETTEST_USAGE: &str =
    "nettest listen PORT | nettest send IP:PORT MIB | nettest status | nettest stop";
/// Usage of `netbench`.
pub const NETBENCH_USAGE: &str = "netbench FRAMES | netbench rx";
/// Usage of `pci`.
pub const PCI_USAGE: &str = "pci";

/// Largest `netbench` run (about 15 GiB of frames).
const MAX_NETBENCH_FRAMES: u64 = 10_000_000;

/// Largest `nettest send` size in MiB (64 GiB).
const MAX_NETTEST_MIB: u64 = 64 * 1024;

/// `net`: NIC, MAC, link, MTU, address, counters.
pub fn cmd_net(
    stack: Option<&mut NetStack>,
    out: &mut dyn Write,
    args: &[&str],
) -> Result<(), CmdError> {
    if !args.is_empty() {
        return Err(CmdError::Usage(NET_USAGE));
    }
    let stack = stack.ok_or(CmdError::NoNic)?;
    let nic = stack.nic();
    let name = alloc::string::String::from(nic.name());
    let mac = MacAddr(nic.mac());
    let link = if nic.link_up() { "up" } else { "down" };
    let mtu = nic.mtu();
    writeln!(out, "{name}  mac {mac}  link {link}  mtu {mtu}")?;
    let how = match stack.mode() {
        NetMode::Static { .. } => "static",
        NetMode::Dhcp => "dhcp",
        NetMode::Disabled => "disabled",
    };
    match stack.ipv4() {
        Some(cidr) => write!(out, "  ipv4 {cidr} ({how})")?,
        None if stack.mode() == NetMode::Dhcp => {
            write!(out, "  ipv4 none (dhcp: waiting for a lease)")?
        }
        None => write!(out, "  ipv4 none ({how})")?,
    }
    match stack.gateway() {
        Some(gateway) => writeln!(out, "  gateway {gateway}")?,
        None => writeln!(out)?,
    }
    let c = stack.counters();
    writeln!(
        out,
        "  rx {} packets {} bytes, {} dropped, {} errors",
        c.rx_packets, c.rx_bytes, c.rx_dropped, c.rx_errors
    )?;
    writeln!(
        out,
        "  tx {} packets {} bytes, {} dropped",
        c.tx_packets, c.tx_bytes, c.tx_dropped
    )?;
    Ok(())
}

/// `ping IP [COUNT]`: starts the echo run (replies arrive through the stack's output).
pub fn cmd_ping(
    stack: Option<&mut NetStack>,
    out: &mut dyn Write,
    args: &[&str],
) -> Result<(), CmdError> {
    let stack = stack.ok_or(CmdError::NoNic)?;
    match args {
        ["stop"] => {
            if !stack.cancel_ping() {
                writeln!(out, "ping: not running")?;
            }
            Ok(())
        }
        [target] | [target, _] => {
            let target = parse_ipv4(target).ok_or(CmdError::Usage(PING_USAGE))?;
            let count = match args.get(1) {
                Some(count) => match count.parse::<u16>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(CmdError::Usage(PING_USAGE)),
                },
                None => 4,
            };
            stack.start_ping(target, count)?;
            Ok(())
        }
        _ => Err(CmdError::Usage(PING_USAGE)),
    }
}

/// `nettest listen PORT | send IP:PORT MIB | status | stop`.
pub fn cmd_nettest(
    stack: Option<&mut NetStack>,
    out: &mut dyn Write,
    args: &[&str],
) -> Result<(), CmdError> {
    let stack = stack.ok_or(CmdError::NoNic)?;
    match args {
        ["listen", port] => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or(CmdError::Usage(NETTEST_USAGE))?;
            stack.nettest_listen(port)?;
        }
        ["send", endpoint, mib] => {
            let remote = parse_endpoint(endpoint).ok_or(CmdError::Usage(NETTEST_USAGE))?;
            let mib = mib
                .parse::<u64>()
                .ok()
                .filter(|&m| (1..=MAX_NETTEST_MIB).contains(&m))
                .ok_or(CmdError::Usage(NETTEST_USAGE))?;
            stack.nettest_send(remote, mib << 20)?;
        }
        ["status"] => {
            let lines = stack.nettest_status();
            if lines.is_empty() {
                writeln!(out, "nettest: idle")?;
            }
            for line in lines {
                writeln!(out, "{line}")?;
            }
        }
        ["stop"] => stack.nettest_stop()?,
        _ => return Err(CmdError::Usage(NETTEST_USAGE)),
    }
    Ok(())
}

/// `pci`: the functions found at boot.
pub fn cmd_pci(devices: &[PciDevice], out: &mut dyn Write, args: &[&str]) -> Result<(), CmdError> {
    if !args.is_empty() {
        return Err(CmdError::Usage(PCI_USAGE));
    }
    if devices.is_empty() {
        writeln!(out, "pci: no devices found")?;
    }
    for device in devices {
        format_device(out, device)?;
        writeln!(out)?;
    }
    Ok(())
}

/// `netbench FRAMES`: the raw transmit benchmark. It holds the console until the frames are
/// sent (bounded by FRAMES and by the benchmark's stall timeout); `now_us` reads the clock.
pub fn cmd_netbench(
    stack: Option<&mut NetStack>,
    out: &mut dyn Write,
    args: &[&str],
    now_us: &mut dyn FnMut() -> u64,
) -> Result<(), CmdError> {
    let stack = stack.ok_or(CmdError::NoNic)?;
    let frames = match args {
        ["rx"] => {
            // What arrived from a peer's `netbench FRAMES` since the last `netbench rx`.
            writeln!(out, "{}", stack.take_bench_rx())?;
            return Ok(());
        }
        [frames] => frames
            .parse::<u64>()
            .ok()
            .filter(|&n| (1..=MAX_NETBENCH_FRAMES).contains(&n))
            .ok_or(CmdError::Usage(NETBENCH_USAGE))?,
        _ => return Err(CmdError::Usage(NETBENCH_USAGE)),
    };
    let report = bench::raw_transmit(stack.nic(), frames, now_us).map_err(CmdError::Bench)?;
    writeln!(out, "{report}")?;
    Ok(())
}
