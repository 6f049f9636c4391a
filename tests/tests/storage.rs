//! Guest disks (issue 10) in Bochs: the heartbeat guest in disk mode (`hb.disk=1`) on a
//! virtio-blk disk seeded from the ESP's test image, reached through the virtio-mmio window
//! tern names on its command line.
//!
//! One boot, several assertions: the guest finds the device, its block writes advance
//! (`blk=` grows) and every read-back matches (no `CORRUPT`), and the guest's console says
//! where the disk is.

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
    Ok(())
}
