//! One emulated tern host: its own directory, ESP copy, serial console and process group.
//!
//! ```no_run
//! use system_tests::{Emulator, EmulatorKind, TestResult};
//! fn boots() -> TestResult {
//!     let mut host = Emulator::builder(EmulatorKind::Qemu).name("boots").start()?;
//!     let timeout = host.kind().boot_timeout();
//!     host.console().expect("tern> ", timeout)?;
//!     Ok(())
//! }
//! ```

use crate::console::Console;
use crate::machine::{DirectKernel, EmulatorKind, Machine, Nic, SerialEndpoint};
use crate::process::ProcessGroup;
use crate::{HarnessError, ansi, bochs, esp, net};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long an emulator may take to connect its serial line (it does so during start-up,
/// before running any guest code).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Instance counter, so names within one test binary never collide.
static INSTANCES: AtomicUsize = AtomicUsize::new(0);

/// How to build an [`Emulator`].
#[derive(Clone, Debug)]
pub struct EmulatorBuilder {
    kind: EmulatorKind,
    name: String,
    esp: Option<PathBuf>,
    work_root: Option<PathBuf>,
    files: Vec<(String, Vec<u8>)>,
    memory_mib: Option<u32>,
    nic: Option<Nic>,
    extra: String,
    bochs_cpu: Option<String>,
    image: Option<PathBuf>,
    direct_kernel: Option<DirectKernel>,
}

impl EmulatorBuilder {
    /// Boot a copy of this raw FAT image (`build/tern-esp.img`) instead of an ESP directory.
    /// Files and config given to the builder do not go into the image.
    pub fn boot_image(mut self, image: impl Into<PathBuf>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// QEMU only: boot the ELF at `path` by PVH (`-kernel`) with `cmdline`, without firmware
    /// or tern (the ESP copy is still made but not used).
    pub fn direct_kernel(mut self, path: impl Into<PathBuf>, cmdline: &str) -> Self {
        self.direct_kernel = Some(DirectKernel {
            path: path.into(),
            cmdline: cmdline.to_string(),
            initrd: None,
        });
        self
    }

    /// QEMU only: boot a Linux bzImage with an initrd by QEMU's own Linux loader
    /// (`-kernel -initrd -append`), without firmware or tern: the reference run.
    pub fn direct_linux(
        mut self,
        kernel: impl Into<PathBuf>,
        initrd: impl Into<PathBuf>,
        cmdline: &str,
    ) -> Self {
        self.direct_kernel = Some(DirectKernel {
            path: kernel.into(),
            cmdline: cmdline.to_string(),
            initrd: Some(initrd.into()),
        });
        self
    }

    /// Instance name: the start of the instance directory's name (use the test's name).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Boot a copy of this ESP instead of `$TERN_ESP_DIR` / `build/esp`.
    pub fn esp(mut self, dir: impl Into<PathBuf>) -> Self {
        self.esp = Some(dir.into());
        self
    }

    /// Create the instance directory under `dir` instead of `$TERN_TEST_WORK_DIR`.
    pub fn work_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_root = Some(dir.into());
        self
    }

    /// Replace the host config (`tern/tern.cfg`) in this instance's ESP copy.
    pub fn config(self, text: &str) -> Self {
        self.file(esp::CONFIG_PATH, text.as_bytes())
    }

    /// Put a file into this instance's ESP copy (path relative to the ESP root).
    pub fn file(mut self, relative: &str, contents: &[u8]) -> Self {
        self.files.push((relative.to_string(), contents.to_vec()));
        self
    }

    /// Host RAM in MiB.
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = Some(mib);
        self
    }

    /// Give the host a NIC.
    pub fn nic(mut self, nic: Nic) -> Self {
        self.nic = Some(nic);
        self
    }

    /// Bochs only: emulate this CPU model instead of [`crate::bochs::DEFAULT_CPU`].
    pub fn bochs_cpu(mut self, model: &str) -> Self {
        self.bochs_cpu = Some(model.to_string());
        self
    }

    /// Extra bochsrc lines or QEMU arguments.
    pub fn extra(mut self, text: &str) -> Self {
        self.extra = text.to_string();
        self
    }

    /// Prepare the instance directory, start the emulator and wait for it to connect its
    /// serial line.
    pub fn start(self) -> Result<Emulator, HarnessError> {
        let esp_source = match self.esp {
            Some(dir) => dir,
            None => crate::esp_dir()?,
        };
        let root = self.work_root.unwrap_or_else(crate::work_root);
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let dir = root.join(format!("{}-{}-{n}", self.name, std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| HarnessError::io(format!("remove {}", dir.display()), e))?;
        }
        let esp_copy = dir.join("esp");
        esp::copy_tree(&esp_source, &esp_copy)?;
        for (relative, contents) in &self.files {
            esp::write_file(&esp_copy, relative, contents)?;
        }
        let (listener, port) = net::listen_local()?;
        let mut machine = Machine::new(
            self.kind,
            esp_copy,
            dir.clone(),
            SerialEndpoint::ConnectTo(port),
        );
        if let Some(mib) = self.memory_mib {
            machine.memory_mib = mib;
        }
        machine.nic = self.nic;
        machine.extra = self.extra;
        machine.bochs_cpu = self.bochs_cpu;
        machine.direct_kernel = self.direct_kernel;
        if let Some(image) = &self.image {
            let copy = dir.join("disk.img");
            std::fs::copy(image, &copy)
                .map_err(|e| HarnessError::io(format!("copy {}", image.display()), e))?;
            machine.disk_image = Some(copy);
        }
        let mut process = ProcessGroup::spawn(machine.command()?, &machine.emulator_log())?;
        let stream = accept_serial(&listener, &mut process, &machine.emulator_log())?;
        let console = Console::new(stream, &dir)?;
        Ok(Emulator {
            kind: self.kind,
            dir,
            machine,
            // Field order matters for Drop: the console is closed before the process dies.
            console,
            process,
        })
    }
}

/// Wait for the emulator to connect to `listener`, giving up early if it exits.
fn accept_serial(
    listener: &TcpListener,
    process: &mut ProcessGroup,
    log: &Path,
) -> Result<std::net::TcpStream, HarnessError> {
    listener
        .set_nonblocking(true)
        .map_err(|e| HarnessError::io("make the serial listener non-blocking", e))?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream
                    .set_nonblocking(false)
                    .map_err(|e| HarnessError::io("make the serial stream blocking", e))?;
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(HarnessError::io("accept the serial connection", e)),
        }
        if process.try_wait().is_some() || Instant::now() >= deadline {
            let log_text = std::fs::read(log)
                .map(|raw| ansi::clean(&raw))
                .unwrap_or_default();
            return Err(HarnessError::NoConsole {
                waited: CONNECT_TIMEOUT,
                emulator_log: log.to_path_buf(),
                log_tail: ansi::tail(&log_text, 30).to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How an emulator ended.
#[derive(Clone, Copy, Debug)]
pub struct ExitReport {
    /// The emulator's exit status.
    pub status: ExitStatus,
    /// Whether the guest powered the machine off through ACPI (QEMU: exit status 0; Bochs:
    /// its "soft power off" message, which it reports with status 1).
    pub powered_off: bool,
}

/// A running emulated host. Dropping it kills the emulator.
pub struct Emulator {
    kind: EmulatorKind,
    dir: PathBuf,
    machine: Machine,
    console: Console,
    process: ProcessGroup,
}

impl Emulator {
    /// Start describing a host for `kind`.
    pub fn builder(kind: EmulatorKind) -> EmulatorBuilder {
        EmulatorBuilder {
            kind,
            name: kind.name().to_string(),
            esp: None,
            work_root: None,
            files: Vec::new(),
            memory_mib: None,
            nic: None,
            extra: String::new(),
            bochs_cpu: None,
            image: None,
            direct_kernel: None,
        }
    }

    /// The emulator kind.
    pub fn kind(&self) -> EmulatorKind {
        self.kind
    }

    /// The serial console.
    pub fn console(&mut self) -> &mut Console {
        &mut self.console
    }

    /// The instance directory (ESP copy, emulator config, logs, transcript).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The machine description this instance was started with.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The emulator's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Wait up to `timeout` for the emulator to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitReport, HarnessError> {
        match self.process.wait_timeout(timeout) {
            Some(status) => Ok(ExitReport {
                status,
                powered_off: self.powered_off(status),
            }),
            None => Err(HarnessError::NoExit {
                waited: timeout,
                transcript: self.console.save_clean(),
                tail: ansi::tail(&self.console.transcript(), 40).to_string(),
            }),
        }
    }

    /// Whether the emulator has exited.
    pub fn has_exited(&mut self) -> bool {
        self.process.try_wait().is_some()
    }

    /// Kill the emulator now.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    fn powered_off(&self, status: ExitStatus) -> bool {
        match self.kind {
            EmulatorKind::Qemu | EmulatorKind::Kvm => status.success(),
            EmulatorKind::Bochs => std::fs::read(self.machine.emulator_log())
                .map(|log| ansi::clean(&log).contains(bochs::POWER_OFF_MESSAGE))
                .unwrap_or(false),
        }
    }
}
