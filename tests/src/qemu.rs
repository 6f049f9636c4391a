//! QEMU command line for a tern host: q35 + OVMF + the ESP directory as a FAT drive.
//!
//! - TCG has no VT-x: the hypervisor must say so and keep its console alive.
//! - `-nic none` when the host has no NIC: otherwise OVMF spends seconds in iPXE.
//!   With a NIC, `romfile=` (empty) drops the iPXE option ROM for the same reason.
//! - `-no-reboot`: a triple fault ends the run instead of looping.
//! - ACPI power-off ends QEMU with status 0.

use crate::HarnessError;
use crate::bochs::OVMF;
use crate::machine::{EmulatorKind, Machine, NicAttachment, SerialEndpoint};
use std::process::Command;

/// The QEMU command for `machine` (kind `Qemu` or `Kvm`).
pub fn command(machine: &Machine) -> Result<Command, HarnessError> {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "q35", "-display", "none", "-no-reboot"]);
    if machine.kind == EmulatorKind::Kvm {
        cmd.args(["-enable-kvm", "-cpu", "host,+vmx"]);
    } else {
        cmd.args(["-cpu", "max"]);
    }
    cmd.arg("-m").arg(machine.memory_mib.to_string());
    if let Some(kernel) = &machine.direct_kernel {
        cmd.arg("-kernel").arg(&kernel.path);
        if let Some(initrd) = &kernel.initrd {
            cmd.arg("-initrd").arg(initrd);
        }
        cmd.arg("-append").arg(&kernel.cmdline);
    } else {
        cmd.arg("-bios").arg(OVMF);
        cmd.arg("-drive").arg(drive(machine));
    }
    match machine.serial {
        SerialEndpoint::ConnectTo(port) => {
            cmd.args([
                "-serial",
                &format!("tcp:127.0.0.1:{port}"),
                "-monitor",
                "none",
            ]);
        }
        SerialEndpoint::ListenOn(port) => {
            cmd.args([
                "-serial",
                &format!("tcp:127.0.0.1:{port},server=on,wait=on"),
                "-monitor",
                "none",
            ]);
        }
        SerialEndpoint::Stdio => {
            cmd.args(["-serial", "mon:stdio"]);
        }
    }
    match machine.nic {
        None => {
            cmd.args(["-nic", "none"]);
        }
        Some(nic) => {
            let netdev = match nic.attachment {
                NicAttachment::QemuListen(port) => format!("socket,id=n0,listen=127.0.0.1:{port}"),
                NicAttachment::QemuConnect(port) => {
                    format!("socket,id=n0,connect=127.0.0.1:{port}")
                }
                NicAttachment::QemuUserForward {
                    host_port,
                    guest_port,
                } => format!(
                    "user,id=n0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:{host_port}-10.0.2.15:{guest_port}"
                ),
                NicAttachment::BxHubPort(_) => {
                    return Err(HarnessError::Unsupported("a bxhub port on QEMU"));
                }
            };
            cmd.arg("-netdev").arg(netdev);
            cmd.arg("-device")
                .arg(format!("e1000,netdev=n0,mac={},romfile=", nic.mac_string()));
        }
    }
    cmd.args(machine.extra.split_whitespace());
    cmd.current_dir(&machine.work_dir);
    Ok(cmd)
}

/// The `-drive` value: the raw image if there is one, else the ESP directory as a FAT.
fn drive(machine: &Machine) -> std::ffi::OsString {
    match &machine.disk_image {
        Some(image) => {
            let mut drive = std::ffi::OsString::from("format=raw,file=");
            drive.push(image.as_os_str());
            drive
        }
        None => {
            let mut drive = std::ffi::OsString::from("format=raw,file=fat:rw:");
            drive.push(machine.esp_dir.as_os_str());
            drive
        }
    }
}
