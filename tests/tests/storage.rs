//! Guest disks (issue 10) in Bochs: the heartbeat guest in disk mode (`hb.disk=1`) on a
//! virtio-blk disk seeded from the ESP's test image, reached through the virtio-mmio window
//! tern names on its command line.
//!
//! - `disk_mode_heartbeat_writes_and_verifies_blocks` (one Bochs host): the guest finds the
//!   device, its block writes advance (`blk=` grows), every read-back matches (no `CORRUPT`),
//!   `info block` shows the disk with its driver ready.
//! - `migrate_b_...` (one Bochs pair, three migrations): plain `migrate` of a VM with a disk
//!   is refused; `migrate -b` with a block lost on the way is refused before commit and the
//!   VM and its disk run on at the source; `migrate -b` under continuous writes completes,
//!   the beats and the block sequence continue on the destination, no `CORRUPT`.
//! - `a_bad_disk_image_...` (QEMU, loader only): a missing or partial-sector image stops the
//!   boot with the config file and line.

use std::time::Duration;
use system_tests::heartbeat::disk_beats;
use system_tests::tern;
use system_tests::{Emulator, EmulatorKind, HarnessError, TestResult};

/// How long a guest may take to produce a line we wait for (Bochs).
const GUEST_TIMEOUT: Duration = Duration::from_secs(240);

/// Disk-mode heartbeat: four beats a second, small working set, 50 block writes a second
/// over 32 blocks (every block rewritten and re-read within a second of guest time).
const DISK_CMDLINE: &str = "hb.interval_ms=250 hb.wss_mib=1 hb.dirty_pages_per_sec=100 \
                            hb.disk=1 hb.disk_blocks=32 hb.disk_writes_per_sec=50";

fn config() -> String {
    format!(
        "[host]\nname = alpha\n\n[net]\nmode = none\n\n[vm hb]\nimage = tern/guests/heartbeat.elf\n\
         memory = 16M\ncmdline = \"{DISK_CMDLINE}\"\nautostart = yes\ndisk = tern/disks/test.img\n"
    )
}

fn boot(name: &str, config: &str) -> Result<Emulator, HarnessError> {
    let host = Emulator::builder(EmulatorKind::Bochs)
        .name(name)
        .config(config)
        .start()?;
    Ok(tern::to_prompt(host)?.host)
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn disk_mode_heartbeat_writes_and_verifies_blocks() -> TestResult {
    let mut host = boot("storage-disk-mode", &config())?;
    let text = host.console().expect("[hb] HB-DISK ", GUEST_TIMEOUT)?;
    assert!(
        text.contains("virtio_mmio.device=4K@0xfeb00000:5"),
        "tern told the guest where its disk is: {text}"
    );
    let line = host.console().expect("\n", GUEST_TIMEOUT)?;
    assert!(
        line.contains("base=0xfeb00000 irq=5 capacity_sectors=2048 blocks=32"),
        "{line}"
    );
    host.console().expect("[hb] HB seq=8 ", GUEST_TIMEOUT)?;
    host.console().expect("\n", GUEST_TIMEOUT)?;
    let transcript = host.console().transcript();
    let beats = disk_beats(&transcript);
    assert!(beats.len() >= 8, "disk-mode beat lines: {transcript}");
    let writes: Vec<u64> = beats.iter().map(|&(_, blk)| blk).collect();
    assert!(
        writes.windows(2).all(|w| w[0] <= w[1]),
        "blk= never goes back: {writes:?}"
    );
    assert!(
        writes.last().copied().unwrap_or(0) > 32,
        "more writes than blocks (every block rewritten at least once): {writes:?}"
    );
    assert!(
        !transcript.contains("CORRUPT") && !transcript.contains("HB-DISK-ERROR"),
        "{transcript}"
    );
    let info = tern::command(&mut host, "info block")?;
    assert!(
        info.contains("hb/vda: 1024 KiB, 512-byte blocks, backend ram")
            && info.contains("driver ready"),
        "{info}"
    );
    Ok(())
}

/// Host 0's transcript from `marker` on (the last occurrence).
fn after(transcript: &str, marker: &str) -> String {
    transcript
        .rsplit_once(marker)
        .map_or_else(String::new, |(_, tail)| tail.to_string())
}

/// One pair, three migrations of the disk-mode heartbeat, in order: without `-b` (refused:
/// the VM has a disk), `-b` with a block lost on the way (refused before commit: the VM and
/// its disk run on at the source), then `-b` for real under continuous writes: the beats
/// and the block sequence continue on the destination, no `CORRUPT` anywhere.
#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn migrate_b_moves_the_disk_under_writes_and_a_failure_leaves_it_on_the_source() -> TestResult {
    use system_tests::migration::{MigrationPair, TIMEOUT};
    let mut pair = MigrationPair::builder("storage-migrate-b")
        .cmdline(DISK_CMDLINE)
        .extra_config(0, "disk = tern/disks/test.img\n")
        .boot()?;

    let refused = pair.migrate(0, "", "hb")?;
    assert!(
        refused.contains("has a disk: migrate it with -b"),
        "{refused}"
    );

    pair.set_parameters(0, &["fault-inject drop-disk-block"])?;
    let answer = pair.migrate(0, "-b", "hb")?;
    assert!(answer.contains("with its disk"), "{answer}");
    let failure = pair.expect_failure_on_source()?;
    assert!(failure.contains("were never received"), "{failure}");
    let discarded = pair.expect_nothing_kept()?;
    assert!(discarded.contains("were never received"), "{discarded}");
    pair.assert_vm_stayed_on_source()?;
    let before = disk_beats(&pair.hosts[0].console().transcript());
    pair.expect(0, "[hb] HB seq=", TIMEOUT)?;
    pair.expect(0, "[hb] HB seq=", TIMEOUT)?;
    pair.expect(0, "\n", TIMEOUT)?;
    let source = disk_beats(&pair.hosts[0].console().transcript());
    assert!(
        source.last().map(|b| b.1) > before.last().map(|b| b.1),
        "the disk writes go on at the source: {source:?}"
    );
    pair.assert_no_corruption();

    pair.set_parameters(0, &["fault-inject none", "downtime-limit 500"])?;
    pair.migrate(0, "-b", "hb")?;
    let completed = pair.expect_completed(0)?;
    assert!(
        completed
            .transcript
            .contains("migrate: copying disk vda (1024 KiB, 512-byte blocks) with memory"),
        "{}",
        completed.transcript
    );
    let source_blk = disk_beats(&completed.transcript)
        .last()
        .map(|b| b.1)
        .unwrap_or(0);
    pair.assert_arrived(1, &completed)?;
    let destination = pair.hosts[1].console().transcript();
    assert!(
        destination.contains("migrate: incoming disk vda (1024 KiB)"),
        "{destination}"
    );
    let arrived = disk_beats(&after(&destination, "running on this host"));
    assert!(!arrived.is_empty(), "{destination}");
    let blk: Vec<u64> = arrived.iter().map(|b| b.1).collect();
    assert!(
        blk[0] >= source_blk && blk.windows(2).all(|w| w[0] <= w[1]),
        "the block sequence continues from {source_blk}: {blk:?}"
    );
    pair.assert_no_corruption();
    assert!(!destination.contains("HB-DISK-ERROR"), "{destination}");
    Ok(())
}

/// A disk image the loader cannot use stops the boot with the config file, the `disk`
/// key's line and the reason, before the hypervisor starts (QEMU: the loader needs no
/// VT-x): a missing file, then an image that is not whole sectors.
#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn a_bad_disk_image_is_refused_at_boot_with_file_and_line() -> TestResult {
    let config = |disk: &str| {
        format!(
            "[host]\nname = alpha\n[vm hb]\nimage = tern/guests/heartbeat.elf\nmemory = 16M\n\
             disk = {disk}\n"
        )
    };
    for (name, disk, file, reason) in [
        (
            "storage-disk-missing",
            "tern/disks/none.img",
            None,
            "[vm hb] disk = tern/disks/none.img: cannot read it from the ESP",
        ),
        (
            "storage-disk-partial",
            "tern/disks/odd.img",
            Some(vec![7u8; 1000]),
            "[vm hb] disk = tern/disks/odd.img: the image is 1000 bytes, not a multiple of \
             512-byte sectors",
        ),
    ] {
        let mut builder = Emulator::builder(EmulatorKind::Qemu)
            .name(name)
            .config(&config(disk));
        if let Some(bytes) = &file {
            builder = builder.file(disk, bytes);
        }
        let mut host = builder.start()?;
        let boot = host.kind().boot_timeout();
        let text = host.console().expect("tern/tern.cfg:6: ", boot)?;
        assert!(!text.contains(tern::PROMPT), "{text}");
        let line = host.console().expect("\n", boot)?;
        assert!(line.contains(reason), "{line}");
        host.console()
            .expect_absent(tern::PROMPT, Duration::from_secs(10))?;
    }
    Ok(())
}
