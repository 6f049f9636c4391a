//! The host-disk backend (issue 10) in Bochs: a VM whose disk is a region of the host's own
//! ATA disk (`[host] host_disk = ata1-master`, `[vm] host_disk = 1M@1M`), and local storage
//! migration (`block_migrate`) between it and a RAM disk. One Bochs host per test, the
//! disk-mode heartbeat as the workload.
//!
//! - `host_disk_blocks_survive_a_host_reboot`: the heartbeat writes blocks on the host
//!   disk; after `reboot` the hypervisor probes the drive again, the VM boots from the same
//!   region and the guest finds every block it wrote before (`HB-DISK-RESUME`, no
//!   `CORRUPT`); the image file holds them at the region's offset.
//! - `block_migrate_ram_to_host_under_writes_and_cancel_keeps_the_source`: a cancelled
//!   move leaves the RAM disk in charge; a full move ends with the VM on the host disk,
//!   `blk=` still growing and no `CORRUPT`; and the move back to RAM likewise.
//! - `a_missing_host_disk_...`: `[host] host_disk` names a drive Bochs does not have.

use std::path::PathBuf;
use std::time::Duration;

use system_tests::heartbeat::disk_beats;
use system_tests::tern;
use system_tests::{Emulator, EmulatorKind, HarnessError, TestResult};

const GUEST_TIMEOUT: Duration = Duration::from_secs(240);

const DISK_CMDLINE: &str = "hb.interval_ms=250 hb.wss_mib=1 hb.dirty_pages_per_sec=100 \
                            hb.disk=1 hb.disk_blocks=32 hb.disk_writes_per_sec=50";

/// An 8-cylinder, 16-head, 63-sector drive (4032 KiB): geometry given explicitly, so Bochs
/// takes the flat image as it is.
const HOST_DISK_BYTES: u64 = 8 * 16 * 63 * 512;

fn host_disk_image(name: &str) -> Result<PathBuf, HarnessError> {
    let dir = system_tests::work_root();
    std::fs::create_dir_all(&dir).map_err(|e| HarnessError::io(format!("mkdir {dir:?}"), e))?;
    let path = dir.join(format!("{name}-hostdisk.img"));
    let file = std::fs::File::create(&path)
        .map_err(|e| HarnessError::io(format!("create {path:?}"), e))?;
    file.set_len(HOST_DISK_BYTES)
        .map_err(|e| HarnessError::io(format!("size {path:?}"), e))?;
    let mut lock = path.clone().into_os_string();
    lock.push(".lock");
    let _ = std::fs::remove_file(lock);
    Ok(path)
}

fn bochs_ata1(image: &std::path::Path) -> String {
    format!(
        "ata1: enabled=true, ioaddr1=0x170, ioaddr2=0x370, irq=15\n\
         ata1-master: type=disk, path=\"{}\", mode=flat, cylinders=8, heads=16, spt=63",
        image.display()
    )
}

fn config(vm_disk_lines: &str) -> String {
    format!(
        "[host]\nname = alpha\nhost_disk = ata1-master\n\n[net]\nmode = none\n\n[vm hb]\n\
         image = tern/guests/heartbeat.elf\nmemory = 16M\ncmdline = \"{DISK_CMDLINE}\"\n\
         autostart = yes\n{vm_disk_lines}"
    )
}

fn boot(name: &str, config: &str, image: &std::path::Path) -> Result<Emulator, HarnessError> {
    let host = Emulator::builder(EmulatorKind::Bochs)
        .name(name)
        .config(config)
        .extra(&bochs_ata1(image))
        .start()?;
    Ok(tern::to_prompt(host)?.host)
}

/// The last `blk=` on the console, after waiting for `beats` more beat lines.
fn blk_after(host: &mut Emulator, beats: usize) -> Result<u64, HarnessError> {
    for _ in 0..beats {
        host.console().expect("[hb] HB seq=", GUEST_TIMEOUT)?;
    }
    host.console().expect("\n", GUEST_TIMEOUT)?;
    Ok(disk_beats(&host.console().transcript())
        .last()
        .map_or(0, |b| b.1))
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn host_disk_blocks_survive_a_host_reboot() -> TestResult {
    let image = host_disk_image("storage-host-disk")?;
    let mut host = boot("storage-host-disk", &config("host_disk = 1M@1M\n"), &image)?;
    let text = host.console().transcript();
    assert!(
        text.contains("host disk ata1-master:") && text.contains("3 MiB, 1 VM region(s)"),
        "{text}"
    );
    host.console().expect("[hb] HB-DISK ", GUEST_TIMEOUT)?;
    let line = host.console().expect("\n", GUEST_TIMEOUT)?;
    assert!(line.contains("capacity_sectors=2048 blocks=32"), "{line}");
    let before = blk_after(&mut host, 8)?;
    assert!(
        before > 32,
        "every block written at least once: blk={before}"
    );
    let info = tern::command(&mut host, "info block")?;
    assert!(
        info.contains("hb/vda: 1024 KiB, 512-byte blocks, backend host")
            && info.contains("driver ready"),
        "{info}"
    );

    host.console().send_line("reboot")?;
    host.console()
        .expect("host disk ata1-master:", GUEST_TIMEOUT)?;
    let resume = host
        .console()
        .expect("[hb] HB-DISK-RESUME ", GUEST_TIMEOUT)?;
    let resume_line = host.console().expect("\n", GUEST_TIMEOUT)?;
    assert!(
        resume_line.contains("verified=32"),
        "every block of the previous boot read back intact: {resume}{resume_line}"
    );
    let writes: u64 = resume_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("writes="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        writes >= before,
        "resumed at {writes}, had written {before}"
    );
    let after = blk_after(&mut host, 4)?;
    assert!(
        after > writes,
        "writes continue after the reboot: {after} > {writes}"
    );
    let transcript = host.console().transcript();
    assert!(
        !transcript.contains("CORRUPT") && !transcript.contains("HB-DISK-ERROR"),
        "{transcript}"
    );
    host.kill();

    // The blocks are in the image file, at the region's offset (1 MiB).
    let bytes = std::fs::read(&image).map_err(|e| HarnessError::io("read image", e))?;
    for b in 0..32usize {
        let at = (1 << 20) + b * 512;
        assert_eq!(&bytes[at..at + 8], b"HBDISK01", "block {b} at byte {at}");
        assert_eq!(
            u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes")),
            b as u64
        );
    }
    assert!(
        bytes[..1 << 20].iter().all(|&x| x == 0),
        "nothing below the region"
    );
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn block_migrate_ram_to_host_and_back_under_writes_and_cancel_keeps_the_source() -> TestResult {
    let image = host_disk_image("storage-block-migrate")?;
    let mut host = boot(
        "storage-block-migrate",
        &config("disk = tern/disks/test.img\nhost_disk = 1M@1M\n"),
        &image,
    )?;
    host.console().expect("[hb] HB-DISK ", GUEST_TIMEOUT)?;
    blk_after(&mut host, 4)?;
    let info = tern::command(&mut host, "info block")?;
    assert!(info.contains("backend ram"), "{info}");

    // Cancel right after the start: the RAM disk stays in charge.
    let started = tern::command(&mut host, "block_migrate hb vda host")?;
    assert!(started.contains("started (1024 KiB to copy"), "{started}");
    let cancel = tern::command(&mut host, "block_migrate_cancel hb")?;
    assert!(cancel.contains("the source disk stays"), "{cancel}");
    host.console().expect(
        "block_migrate ram->host: cancelled; the source disk is kept",
        GUEST_TIMEOUT,
    )?;
    let info = tern::command(&mut host, "info block")?;
    assert!(
        info.contains("backend ram") && info.contains("last block_migrate ram->host: cancelled"),
        "{info}"
    );
    let during = blk_after(&mut host, 2)?;

    // The real move, under the heartbeat's writes.
    tern::command(&mut host, "block_migrate hb vda host")?;
    let done = host
        .console()
        .expect("digests verified, cut over", GUEST_TIMEOUT)?;
    assert!(
        done.contains("block_migrate ram->host: done, 1024 KiB copied"),
        "{done}"
    );
    let info = tern::command(&mut host, "info block")?;
    assert!(info.contains("backend host"), "{info}");
    let after = blk_after(&mut host, 4)?;
    assert!(
        after > during,
        "blk= continues on the host disk: {after} > {during}"
    );
    let transcript = host.console().transcript();
    assert!(
        !transcript.contains("CORRUPT") && !transcript.contains("HB-DISK-ERROR"),
        "{transcript}"
    );
    // And back to RAM, still under writes.
    tern::command(&mut host, "block_migrate hb vda ram")?;
    let back = host
        .console()
        .expect("digests verified, cut over", GUEST_TIMEOUT)?;
    assert!(back.contains("block_migrate host->ram: done"), "{back}");
    let info = tern::command(&mut host, "info block")?;
    assert!(info.contains("backend ram"), "{info}");
    let last = blk_after(&mut host, 4)?;
    assert!(
        last > after,
        "blk= continues on the RAM disk: {last} > {after}"
    );
    let transcript = host.console().transcript();
    assert!(
        !transcript.contains("CORRUPT") && !transcript.contains("HB-DISK-ERROR"),
        "{transcript}"
    );
    // The region holds the guest's blocks.
    host.kill();
    let bytes = std::fs::read(&image).map_err(|e| HarnessError::io("read image", e))?;
    assert_eq!(&bytes[1 << 20..(1 << 20) + 8], b"HBDISK01");
    Ok(())
}

/// A configured host disk that is not there: one boot line naming the drive and the config
/// line, the VM whose only disk it was is not created, the host runs on.
#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn a_missing_host_disk_is_named_at_boot_and_its_vm_not_created() -> TestResult {
    let host = Emulator::builder(EmulatorKind::Bochs)
        .name("storage-no-host-disk")
        .config(&config("host_disk = 1M@1M\n"))
        .start()?;
    let mut host = tern::to_prompt(host)?.host;
    let text = host.console().transcript();
    assert!(
        text.contains("host disk: line 3: [host] host_disk = ata1-master: no drive at ata1-master"),
        "{text}"
    );
    assert!(
        text.contains("vm hb: not created: host_disk 1M@1M (tern.cfg line 13): line 3: [host] host_disk = ata1-master: no drive at ata1-master"),
        "{text}"
    );
    let info = tern::command(&mut host, "info block")?;
    assert!(info.contains("no VM has a disk"), "{info}");
    Ok(())
}
