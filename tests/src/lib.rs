//! Harness for tern's system tests: boot the real ESP (loader + hypervisor + guests) in an
//! emulator and drive the serial console the way an operator would.
//!
//! Why this shape:
//! - **Each emulator instance owns everything it touches** (work directory, a copy of the ESP,
//!   TCP/UDP ports), so tests run in parallel and a crashed run cannot poison the next one
//!   (Bochs leaves `.lock` files beside disks it did not close; see `TESTBED.md`).
//! - **The harness owns the serial listener** and the emulator connects to it as a client
//!   (Bochs `com1: mode=socket-client`, QEMU `-serial tcp:HOST:PORT`). The port is bound
//!   before the emulator starts, so there is no port race, and the emulator cannot run a
//!   single instruction before the console is attached, so no early output is lost.
//! - **The whole transcript is kept** (in memory and in `console.log` under the instance
//!   directory, written as bytes arrive) and every expectation failure carries its tail and
//!   the file path: a failed system test must be debuggable from its output alone.
//! - **Emulators are always killed**: each runs in its own process group, killed on `Drop`.
//!
//! The same command-line builders ([`bochs`], [`qemu`]) are used by `cargo xtask run`, so
//! what the tests boot is what an operator boots.

pub mod ansi;
pub mod bochs;
pub mod bxhub;
pub mod console;
pub mod emulator;
pub mod error;
pub mod esp;
pub mod gateway;
pub mod heartbeat;
pub mod linux;
pub mod machine;
pub mod migration;
pub mod net;
pub mod pair;
pub mod process;
pub mod qemu;

pub use bxhub::BxHub;
pub use console::Console;
pub use emulator::{Emulator, EmulatorBuilder, ExitReport};
pub use error::HarnessError;
pub use machine::{DirectKernel, EmulatorKind, Machine, Nic, NicAttachment, SerialEndpoint};

use std::path::PathBuf;
use std::time::Duration;

/// Result type of system tests: `?` on harness calls, the error's Debug output is its message.
pub type TestResult = Result<(), HarnessError>;

/// Environment variable naming the assembled ESP directory (set by `cargo xtask test`).
pub const ESP_DIR_ENV: &str = "TERN_ESP_DIR";
/// Environment variable naming the raw FAT image of the ESP (set by `cargo xtask test`).
pub const ESP_IMAGE_ENV: &str = "TERN_ESP_IMAGE";
/// Environment variable naming where instance directories are created.
pub const WORK_DIR_ENV: &str = "TERN_TEST_WORK_DIR";

/// Boot timeout for Bochs: OVMF alone takes ~7 s there on an idle core, and tests run two
/// emulators on two shared cores, so be generous.
pub const BOCHS_BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// Boot timeout for QEMU TCG (~3.5 s to the first UEFI line on an idle core).
pub const QEMU_BOOT_TIMEOUT: Duration = Duration::from_secs(90);

impl EmulatorKind {
    /// A boot timeout suited to this emulator's speed.
    pub fn boot_timeout(self) -> Duration {
        match self {
            EmulatorKind::Bochs => BOCHS_BOOT_TIMEOUT,
            EmulatorKind::Qemu | EmulatorKind::Kvm => QEMU_BOOT_TIMEOUT,
        }
    }

    /// A timeout for one console command's answer.
    pub fn command_timeout(self) -> Duration {
        match self {
            EmulatorKind::Bochs => Duration::from_secs(60),
            EmulatorKind::Qemu | EmulatorKind::Kvm => Duration::from_secs(30),
        }
    }
}

/// The ESP directory built by `cargo xtask build`: `$TERN_ESP_DIR`, else `build/esp` at the
/// workspace root.
pub fn esp_dir() -> Result<PathBuf, HarnessError> {
    let dir = match std::env::var_os(ESP_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("build").join("esp"),
    };
    if dir.join("EFI").join("BOOT").join("BOOTX64.EFI").is_file() {
        Ok(dir)
    } else {
        Err(HarnessError::NoEsp { dir })
    }
}

/// The FAT image built by `cargo xtask build`: `$TERN_ESP_IMAGE`, else
/// `build/tern-esp.img`.
pub fn esp_image() -> Result<PathBuf, HarnessError> {
    let image = match std::env::var_os(ESP_IMAGE_ENV) {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("build").join("tern-esp.img"),
    };
    if image.is_file() {
        Ok(image)
    } else {
        Err(HarnessError::NoEsp { dir: image })
    }
}

/// Where instance directories go: `$TERN_TEST_WORK_DIR`, else `build/test-runs`.
pub fn work_root() -> PathBuf {
    match std::env::var_os(WORK_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("build").join("test-runs"),
    }
}

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// What tern prints, and booting a host to its prompt: the vocabulary of the system tests.
pub mod tern {
    use crate::{Emulator, EmulatorKind, HarnessError};

    /// Part of the hypervisor's banner line.
    pub const BANNER: &str = "tern hypervisor";
    /// The console prompt.
    pub const PROMPT: &str = "tern> ";
    /// Answer to a command the console does not know.
    pub const UNKNOWN_COMMAND: &str = "error: unknown command";
    /// The boot line on a CPU with VT-x (Bochs `tigerlake`).
    pub const VTX_AVAILABLE: &str = "VT-x: available";
    /// The boot line on a CPU without VT-x (QEMU TCG).
    pub const VTX_NOT_AVAILABLE: &str = "VT-x: not available";

    /// A booted host and everything it printed up to its first prompt.
    pub struct Booted {
        /// The running host.
        pub host: Emulator,
        /// Boot output up to and including the first prompt (ANSI sequences removed).
        pub boot_log: String,
    }

    /// Boot the default ESP in `kind` and wait for the banner and the first prompt.
    pub fn boot(kind: EmulatorKind, name: &str) -> Result<Booted, HarnessError> {
        let host = Emulator::builder(kind).name(name).start()?;
        to_prompt(host)
    }

    /// Wait for a started host's banner and first prompt.
    pub fn to_prompt(mut host: Emulator) -> Result<Booted, HarnessError> {
        let timeout = host.kind().boot_timeout();
        let mut boot_log = host.console().expect(BANNER, timeout)?;
        boot_log.push_str(&host.console().expect(PROMPT, timeout)?);
        Ok(Booted { host, boot_log })
    }

    /// Send `line` and return the answer up to the next prompt (without the prompt).
    pub fn command(host: &mut Emulator, line: &str) -> Result<String, HarnessError> {
        let timeout = host.kind().command_timeout();
        host.console().command(line, PROMPT, timeout)
    }
}
