//! Bochs configuration (`bochsrc`) for a tern host. Every line here was measured on Bochs 2.7
//! (Debian) with OVMF; see `shared/TESTBED.md` and the notes below.
//!
//! - `cpu: model=tigerlake` is the model with VMX + EPT + PML + EPT A/D emulated (the
//!   default, [`DEFAULT_CPU`]). Other models (measured on Bochs 2.7 by booting tern with the
//!   heartbeat guest): `core2_penryn_t9600` has no EPT and `corei5_lynnfield_750` no
//!   unrestricted guest (VMXON refused, no VMs); `corei5_arrandale_m520`,
//!   `corei7_sandy_bridge_2600k` and `corei7_ivy_bridge_3770k` run VMs with EPT but no PML
//!   and no EPT A/D bits; `corei7_haswell_4770`, `broadwell_ult` and `corei3_cnl` add EPT
//!   A/D; `corei7_skylake_x`, `corei7_icelake_u` and `tigerlake` also have PML.
//! - The debugger-enabled Debian build needs `-rc FILE` with `c` (continue) and stdin from
//!   /dev/null; `display_library: rfb, options="timeout=0"` is the headless display that is
//!   built in (no `nogui`).
//! - Sound must be off: with the default ALSA output Bochs aborts at start-up ("buffer
//!   overflow detected") on machines without a sound card.
//! - The ESP is a host directory exposed as a FAT disk (`mode=vvfat`); OVMF boots
//!   `EFI/BOOT/BOOTX64.EFI` from it.
//! - ACPI soft power-off ends Bochs via a "panic" (`[ACPI] ACPI control: soft power off`)
//!   with exit status 1: that is the clean way out, see [`POWER_OFF_MESSAGE`].
//! - `com1: mode=socket-server` blocks Bochs start-up until a client connects ("waiting for
//!   client to connect"); `socket-client` connects at start-up: in both cases nothing printed
//!   on COM1 is lost.

use crate::HarnessError;
use crate::machine::{Machine, NicAttachment, SerialEndpoint};
use std::fmt::Write as _;
use std::process::Command;

/// OVMF firmware image from Debian's `ovmf` package.
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// VGA BIOS from Debian's `vgabios` package.
pub const VGABIOS: &str = "/usr/share/vgabios/vgabios.bin";
/// What Bochs prints (stdout and log) when the guest powers off through ACPI.
pub const POWER_OFF_MESSAGE: &str = "ACPI control: soft power off";
/// Instructions per emulated second: only maps instructions to emulated wall-clock time
/// (the guest TSC advances one per instruction regardless); TESTBED says keep it <= 50M.
pub const IPS: u32 = 50_000_000;

/// The Bochs CPU model unless a machine says otherwise.
pub const DEFAULT_CPU: &str = "tigerlake";

/// The bochsrc text for `machine`.
pub fn config_text(machine: &Machine) -> Result<String, HarnessError> {
    if machine.direct_kernel.is_some() {
        return Err(HarnessError::Unsupported(
            "direct kernel boot on Bochs (it boots through OVMF only)",
        ));
    }
    let mut rc = String::new();
    let esp = machine.esp_dir.display();
    let log = machine.work_dir.join("bochs.log");
    // `write!` into a String cannot fail; collect the lines with `push_str` to say so.
    let _ = writeln!(rc, "megs: {}", machine.memory_mib);
    let cpu = machine.bochs_cpu.as_deref().unwrap_or(DEFAULT_CPU);
    let _ = writeln!(
        rc,
        "cpu: model={cpu}, count=1, ips={IPS}, reset_on_triple_fault=0"
    );
    let _ = writeln!(rc, "romimage: file={OVMF}, address=0xffe00000");
    let _ = writeln!(rc, "vgaromimage: file={VGABIOS}");
    rc.push_str("display_library: rfb, options=\"timeout=0\"\n");
    rc.push_str("ata0: enabled=true, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14\n");
    match &machine.disk_image {
        Some(image) => {
            let _ = writeln!(
                rc,
                "ata0-master: type=disk, path=\"{}\", mode=flat",
                image.display()
            );
        }
        None => {
            let _ = writeln!(rc, "ata0-master: type=disk, path=\"{esp}\", mode=vvfat");
        }
    }
    rc.push_str("boot: disk\n");
    rc.push_str("speaker: enabled=false\n");
    rc.push_str("sound: waveoutdrv=dummy\n");
    rc.push_str("clock: sync=none, time0=local\n");
    match machine.serial {
        SerialEndpoint::ConnectTo(port) => {
            let _ = writeln!(
                rc,
                "com1: enabled=true, mode=socket-client, dev=localhost:{port}"
            );
        }
        SerialEndpoint::ListenOn(port) => {
            let _ = writeln!(
                rc,
                "com1: enabled=true, mode=socket-server, dev=localhost:{port}"
            );
        }
        SerialEndpoint::Stdio => {
            return Err(HarnessError::Unsupported(
                "Bochs has no stdio serial console",
            ));
        }
    }
    if let Some(nic) = machine.nic {
        let port = match nic.attachment {
            NicAttachment::BxHubPort(port) => port,
            NicAttachment::QemuListen(_)
            | NicAttachment::QemuConnect(_)
            | NicAttachment::QemuUserForward { .. } => {
                return Err(HarnessError::Unsupported("a QEMU netdev on Bochs"));
            }
        };
        rc.push_str("pci: enabled=1, chipset=i440fx, slot1=e1000\n");
        let _ = writeln!(
            rc,
            "e1000: enabled=1, mac={}, ethmod=socket, ethdev={port}",
            nic.mac_string()
        );
    }
    let _ = writeln!(rc, "log: \"{}\"", log.display());
    // A guest triple fault or an emulator error must end the run, not hang it.
    rc.push_str("panic: action=fatal\n");
    rc.push_str("error: action=report\n");
    rc.push_str("info: action=ignore\n");
    rc.push_str("debug: action=ignore\n");
    if !machine.extra.is_empty() {
        rc.push_str(&machine.extra);
        rc.push('\n');
    }
    Ok(rc)
}

/// Write `bochsrc` and the debugger script into the work directory and build the command.
pub fn command(machine: &Machine) -> Result<Command, HarnessError> {
    let rc_path = machine.work_dir.join("bochsrc");
    let dbg_path = machine.work_dir.join("bochs-debugger.rc");
    let io = |e, path: &std::path::Path| HarnessError::io(format!("write {}", path.display()), e);
    std::fs::write(&rc_path, config_text(machine)?).map_err(|e| io(e, &rc_path))?;
    std::fs::write(&dbg_path, "c\n").map_err(|e| io(e, &dbg_path))?;
    remove_stale_locks(machine);
    let mut cmd = Command::new("bochs");
    cmd.arg("-q")
        .arg("-f")
        .arg(&rc_path)
        .arg("-rc")
        .arg(&dbg_path);
    cmd.current_dir(&machine.work_dir);
    Ok(cmd)
}

/// Bochs leaves `PATH.lock` beside a disk it did not close (after a panic or a kill), and
/// refuses that disk next time. The ESP copy is ours alone, so a lock there is stale.
pub fn remove_stale_locks(machine: &Machine) {
    let disks = [Some(&machine.esp_dir), machine.disk_image.as_ref()];
    for disk in disks.into_iter().flatten() {
        let mut lock = disk.clone().into_os_string();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
    }
}
