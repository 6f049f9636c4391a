//! What to boot and how to wire it: one description turned into a Bochs config or a QEMU
//! command line by [`crate::bochs`] and [`crate::qemu`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Which emulator runs the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmulatorKind {
    /// Bochs 2.7 with CPU model `tigerlake`: emulates VT-x with EPT, VPID, PML. Slow.
    Bochs,
    /// QEMU TCG: fast, but no VT-x at all.
    Qemu,
    /// QEMU with KVM and nested VT-x (`-enable-kvm -cpu host,+vmx`): for machines with VT-x
    /// and `kvm_intel nested=1`. Our build machines cannot run it.
    Kvm,
}

impl EmulatorKind {
    /// The name used on command lines (`--emu bochs`).
    pub fn name(self) -> &'static str {
        match self {
            EmulatorKind::Bochs => "bochs",
            EmulatorKind::Qemu => "qemu",
            EmulatorKind::Kvm => "kvm",
        }
    }
}

impl fmt::Display for EmulatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an emulator name that is not one of `bochs`, `qemu`, `kvm`.
#[derive(Debug)]
pub struct UnknownEmulator(pub String);

impl fmt::Display for UnknownEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown emulator `{}` (expected bochs, qemu or kvm)",
            self.0
        )
    }
}

impl std::error::Error for UnknownEmulator {}

impl FromStr for EmulatorKind {
    type Err = UnknownEmulator;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bochs" => Ok(EmulatorKind::Bochs),
            "qemu" => Ok(EmulatorKind::Qemu),
            "kvm" => Ok(EmulatorKind::Kvm),
            other => Err(UnknownEmulator(other.to_string())),
        }
    }
}

/// Where the host's COM1 goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerialEndpoint {
    /// The emulator connects to a TCP listener on 127.0.0.1 at this port (the test harness,
    /// or `cargo xtask run`'s console bridge). It connects before the guest runs.
    ConnectTo(u16),
    /// The emulator listens on 127.0.0.1 at this port and does not start the machine until a
    /// client connects (measured for Bochs `socket-server` and QEMU `server=on,wait=on`).
    ListenOn(u16),
    /// QEMU only: serial multiplexed with the monitor on the emulator's own terminal
    /// (`-serial mon:stdio`; Ctrl-A X quits, Ctrl-A C switches to the monitor).
    Stdio,
}

/// How the host's NIC (an Intel e1000, present on both emulators) is joined to others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicAttachment {
    /// Bochs: a port of a `bxhub` process (UDP, `ethmod=socket`): see [`crate::bxhub`].
    BxHubPort(u16),
    /// QEMU: `-netdev socket,listen=127.0.0.1:PORT` (the first host of a pair).
    QemuListen(u16),
    /// QEMU: `-netdev socket,connect=127.0.0.1:PORT` (the other host of a pair).
    QemuConnect(u16),
    /// QEMU user networking (slirp: the host is 10.0.2.15/24, gateway 10.0.2.2) with
    /// `127.0.0.1:host_port` on the test machine forwarded to TCP `guest_port` of the host:
    /// how a test reaches the hypervisor's own TCP stack without root or VT-x.
    QemuUserForward {
        /// Port on 127.0.0.1 of the machine running the test.
        host_port: u16,
        /// Port of the tern host (10.0.2.15).
        guest_port: u16,
    },
}

/// One network interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nic {
    /// Locally administered MAC address.
    pub mac: [u8; 6],
    /// What the NIC is plugged into.
    pub attachment: NicAttachment,
}

impl Nic {
    /// The MAC for host number `index` (0-based): `52:54:00:12:34:5<index>` for index < 16.
    pub fn mac_for_host(index: u8) -> [u8; 6] {
        [0x52, 0x54, 0x00, 0x12, 0x34, 0x50 + index]
    }

    /// The MAC in `aa:bb:...` form.
    pub fn mac_string(&self) -> String {
        let m = self.mac;
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// A complete description of one emulated host.
#[derive(Clone, Debug)]
pub struct Machine {
    /// The emulator.
    pub kind: EmulatorKind,
    /// The ESP directory the firmware boots from (a per-instance copy: both emulators may
    /// write to it, and Bochs leaves lock files beside it).
    pub esp_dir: PathBuf,
    /// Boot this raw FAT image instead of `esp_dir` (see `cargo xtask build`'s
    /// `build/tern-esp.img`; give each instance its own copy).
    pub disk_image: Option<PathBuf>,
    /// Where config, logs and the serial transcript go.
    pub work_dir: PathBuf,
    /// Host RAM in MiB. Bochs boots OVMF with 512 (measured); QEMU also uses 512 by default.
    pub memory_mib: u32,
    /// Where COM1 goes.
    pub serial: SerialEndpoint,
    /// The NIC, if the host has one.
    pub nic: Option<Nic>,
    /// Extra lines appended to the Bochs config, or extra QEMU arguments (whitespace
    /// separated).
    pub extra: String,
    /// Bochs only: the CPU model (`cpu: model=...`); `None` is [`crate::bochs::DEFAULT_CPU`].
    pub bochs_cpu: Option<String>,
    /// QEMU only: boot this ELF directly by the PVH convention (`-kernel`, `-append`) instead
    /// of the firmware and the ESP: how a test guest runs without tern, for comparison.
    pub direct_kernel: Option<DirectKernel>,
}

/// A kernel QEMU boots itself (`-kernel PATH [-initrd INITRD] -append CMDLINE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectKernel {
    /// The ELF (with a PVH note) or a Linux bzImage.
    pub path: PathBuf,
    /// Its command line.
    pub cmdline: String,
    /// An initial ramdisk (Linux).
    pub initrd: Option<PathBuf>,
}

/// Default host RAM in MiB.
pub const DEFAULT_MEMORY_MIB: u32 = 512;

impl Machine {
    /// A machine with default memory, serial to `serial`, no NIC.
    pub fn new(
        kind: EmulatorKind,
        esp_dir: PathBuf,
        work_dir: PathBuf,
        serial: SerialEndpoint,
    ) -> Self {
        Machine {
            kind,
            esp_dir,
            disk_image: None,
            work_dir,
            memory_mib: DEFAULT_MEMORY_MIB,
            serial,
            nic: None,
            extra: String::new(),
            bochs_cpu: None,
            direct_kernel: None,
        }
    }

    /// The file that receives the emulator's own stdout and stderr.
    pub fn emulator_log(&self) -> PathBuf {
        self.work_dir.join("emulator.log")
    }

    /// Build the command that starts this machine, writing any config files it needs into
    /// the work directory.
    pub fn command(&self) -> Result<std::process::Command, crate::HarnessError> {
        match self.kind {
            EmulatorKind::Bochs => crate::bochs::command(self),
            EmulatorKind::Qemu | EmulatorKind::Kvm => crate::qemu::command(self),
        }
    }
}
