//! The guest's x87/SSE/AVX registers are its own (issue 9, item 2): two heartbeat guests
//! on one host hold different values in them (`hb.fpu=N`), check them on every pass across
//! thousands of exits and slices, and one of them migrates live and keeps its values on the
//! destination. A lost or mixed-up register prints `CORRUPT fpu`.

use std::time::{Duration, Instant};

use system_tests::TestResult;
use system_tests::heartbeat::complete_lines;
use system_tests::migration::{HB_CMDLINE, MigrationPair, RUNNING_HERE, TIMEOUT};

/// `[hb2] HB seq=N` numbers on host 0 so far, from complete lines only (the last line may
/// still be arriving: `seq=2` of `seq=26`).
fn hb2_beats(pair: &mut MigrationPair) -> Vec<u64> {
    complete_lines(&pair.hosts[0].console().transcript())
        .split("[hb2] HB seq=")
        .skip(1)
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Waits until hb2 has printed at least `count` beats on host 0.
fn wait_for_hb2(
    pair: &mut MigrationPair,
    count: usize,
) -> Result<Vec<u64>, system_tests::HarnessError> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let beats = hb2_beats(pair);
        if beats.len() >= count || Instant::now() > deadline {
            return Ok(beats);
        }
        std::thread::sleep(Duration::from_secs(5));
        pair.command(0, "vm list")?;
    }
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn fpu_registers_stay_with_their_vm_across_vms_and_a_live_migration() -> TestResult {
    let hb2 = format!(
        "\n[vm hb2]\nimage = tern/guests/heartbeat.elf\nmemory = 16M\n\
         cmdline = \"{HB_CMDLINE} hb.fpu=2\"\nautostart = yes\n"
    );
    let mut pair = MigrationPair::builder("guest-fpu")
        .cmdline(&format!("{HB_CMDLINE} hb.fpu=1"))
        .extra_config(0, &hb2)
        .boot()?;
    // Several beats of both, sharing the host's one register file slice by slice.
    let before = wait_for_hb2(&mut pair, 4)?;
    assert!(before.len() >= 4, "hb2 beats: {before:?}");
    let transcript = pair.hosts[0].console().transcript();
    // Both guests run the check (the test could not fail if they did not).
    for line in ["[hb] HB-FPU seed=1 sse=yes", "[hb2] HB-FPU seed=2 sse=yes"] {
        assert!(transcript.contains(line), "{line} missing:\n{transcript}");
    }
    pair.assert_no_corruption_on(0);
    pair.set_parameters(0, &["downtime-limit 500"])?;
    let answer = pair.migrate(0, "", "hb")?;
    assert!(answer.contains("live migration of 'hb'"), "{answer}");
    let completed = pair.expect_completed(0)?;
    pair.assert_arrived(1, &completed)?;
    // More checks on the destination, and on hb2 left behind.
    let arrived = pair.beats_after(1, RUNNING_HERE, 4)?;
    assert!(arrived.len() >= 4, "{arrived:?}");
    let hb2_after = wait_for_hb2(&mut pair, before.len() + 4)?;
    assert!(hb2_after.len() >= before.len() + 4, "{hb2_after:?}");
    let destination = pair.hosts[1].console().transcript();
    assert!(
        !destination.contains("has no XSAVE area"),
        "the area travelled: {destination}"
    );
    pair.assert_no_corruption();
    Ok(())
}
