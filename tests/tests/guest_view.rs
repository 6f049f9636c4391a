//! What a guest sees of tern (issue 14, item 6), in Bochs: a guest is left as the operator
//! configured it.
//!
//! - Its command line arrives byte for byte: tern appends nothing (it used to append
//!   ` hb.tsc_khz=...`, a parameter a guest that is not ours never asked for).
//! - It learns the TSC rate the way hypervisors tell it: CPUID leaf 0x4000_0010 EAX (kHz),
//!   and the value is the rate the host calibrated.
//!
//! The guest image is put on the ESP by the test under a path of its own (not
//! `tern/guests/`), as an operator installs a guest that was not built in-tree.

use std::time::Duration;
use system_tests::tern;
use system_tests::{Emulator, EmulatorKind, TestResult};

/// A guest line may take this long (Bochs on a shared core).
const GUEST_TIMEOUT: Duration = Duration::from_secs(240);

/// A command line that looks like a real guest's: foreign parameters, a comma list, a path,
/// `--`, a doubled space and a `#` (not a comment inside quotes), plus the heartbeat's own.
const CMDLINE: &str = "console=ttyS0,115200n8 root=PARTUUID=4c2a-01 ro  init=/sbin/x -- \
                       a=b;c #7 hb.interval_ms=250 hb.wss_mib=1 hb.dirty_pages_per_sec=100";

/// Where the test installs the guest image.
const IMAGE: &str = "vendor/guests/plain.elf";

/// The number after `key` in `text` (up to the first non-digit).
fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn guest_command_line_arrives_unchanged_and_tsc_rate_comes_from_cpuid() -> TestResult {
    let image = std::fs::read(system_tests::esp_dir()?.join("tern/guests/heartbeat.elf"))
        .map_err(|e| system_tests::HarnessError::io("read the heartbeat image", e))?;
    let config = format!(
        "[host]\nname = alpha\n\n[net]\nmode = none\n\n[vm plain]\nimage = {IMAGE}\n\
         memory = 16M\ncmdline = \"{CMDLINE}\"\nautostart = yes\n"
    );
    let host = Emulator::builder(EmulatorKind::Bochs)
        .name("guest-view")
        .config(&config)
        .file(IMAGE, &image)
        .start()?;
    let mut booted = tern::to_prompt(host)?;
    let host = &mut booted.host;

    let start = host.console().expect("[plain] HB-START ", GUEST_TIMEOUT)?;
    let start_line = host.console().expect("\n", GUEST_TIMEOUT)?;
    host.console()
        .expect("[plain] HB-CMDLINE ", GUEST_TIMEOUT)?;
    let cmdline_line = host.console().expect("\n", GUEST_TIMEOUT)?;
    let expected = format!("bytes={} \"{CMDLINE}\"", CMDLINE.len());
    assert_eq!(
        cmdline_line.trim_end_matches(['\r', '\n']),
        expected,
        "the guest's command line changed on the way"
    );

    // The rate comes from CPUID and is the host's calibrated one (`tsc: 50.002 MHz` at boot
    // is 50002 kHz).
    assert!(
        start_line.contains("tsc_from=cpuid"),
        "the guest did not take its TSC rate from CPUID: {start_line}"
    );
    let boot_log = format!("{}{start}", booted.boot_log);
    let tsc_line = boot_log
        .lines()
        .find(|l| l.contains("tsc: ") && l.contains(" MHz"))
        .unwrap_or_else(|| panic!("no `tsc: ... MHz` boot line:\n{boot_log}"));
    let mhz = number_after(tsc_line, "tsc: ").expect("MHz");
    let fraction = number_after(tsc_line, &format!("tsc: {mhz}.")).expect("kHz part");
    let guest_khz = number_after(&start_line, "tsc_khz=").expect("tsc_khz in HB-START");
    assert_eq!(
        guest_khz,
        mhz * 1000 + fraction,
        "{tsc_line} vs {start_line}"
    );

    // And the guest runs on it.
    host.console().expect("[plain] HB seq=1 ", GUEST_TIMEOUT)?;
    assert!(!host.console().transcript().contains("CORRUPT"));
    Ok(())
}
