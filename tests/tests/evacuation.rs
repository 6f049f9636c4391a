//! `evacuate HOST:PORT` in Bochs (issue 12 item 4): host 0 runs two heartbeat guests, `hb`
//! and `hb2`. An evacuation to a port where nothing listens fails on the first VM and
//! leaves both running on host 0, with a line for the VM and a summary naming both; then
//! an evacuation to host 1's migration port moves both, one after another, and both beat
//! on host 1 without a gap or `CORRUPT`. One boot of the pair serves both.

use std::time::{Duration, Instant};

use system_tests::TestResult;
use system_tests::migration::{HB_CMDLINE, MigrationPair, RUNNING_HERE, TIMEOUT};

/// Every `[NAME] HB seq=N` number in `text`.
fn beats_of(name: &str, text: &str) -> Vec<u64> {
    text.split(&format!("[{name}] HB seq="))
        .skip(1)
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Whether `vm list` output names VM `name` (a whole word).
fn listed(list: &str, name: &str) -> bool {
    list.split_whitespace().any(|w| w == name)
}

/// VM `name` beats on host `index` after the last `after`, consecutively. The console
/// may hold half a line, so the last number seen is not trusted: three are awaited.
fn assert_beats_on(pair: &mut MigrationPair, index: usize, name: &str, after: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let transcript = pair.hosts[index].console().transcript();
        let tail = transcript.rsplit_once(after).map_or("", |(_, t)| t);
        let beats = beats_of(name, tail);
        if beats.len() >= 3 {
            let whole = &beats[..beats.len() - 1];
            assert!(
                whole.windows(2).all(|w| w[1] == w[0] + 1),
                "{name} on host {index} after {after:?}: {beats:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} does not beat on host {index} after {after:?}: {beats:?}"
        );
        std::thread::sleep(Duration::from_secs(3));
        pair.command(index, "vm list")
            .unwrap_or_else(|e| panic!("host {index}: {e:?}"));
    }
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn evacuate_moves_every_vm_and_a_failure_leaves_them_running() -> TestResult {
    let hb2 = format!(
        "\n[vm hb2]\nimage = tern/guests/heartbeat.elf\nmemory = 16M\ncmdline = \"{HB_CMDLINE}\"\nautostart = yes\n"
    );
    let mut pair = MigrationPair::builder("evacuate-two-vms")
        .extra_config(0, &hb2)
        .boot()?;
    pair.set_parameters(0, &["downtime-limit 500"])?;

    // Nothing listens on 5555: the first VM fails, nothing else is tried.
    let answer = pair.command(0, "evacuate 10.0.0.2:5555")?;
    assert!(
        answer.contains("evacuate: moving 2 VMs to 10.0.0.2:5555 one after another: hb, hb2"),
        "{answer}"
    );
    let summary = pair.expect(0, "staying on this host (running): hb, hb2", TIMEOUT)?;
    assert!(
        summary.contains("evacuate: [1/2] 'hb' failed:")
            && summary.contains("it keeps running on this host"),
        "{summary}"
    );
    assert!(
        summary.contains("evacuate: stopped after 'hb' failed: 0 of 2 VMs moved"),
        "{summary}"
    );
    assert!(!summary.contains("'hb2' moved"), "{summary}");
    let list = pair.command(0, "vm list")?;
    assert!(listed(&list, "hb") && listed(&list, "hb2"), "{list}");
    assert_beats_on(&mut pair, 0, "hb", "staying on this host");
    assert_beats_on(&mut pair, 0, "hb2", "staying on this host");

    // Now to host 1's migration port: both move, in order.
    let answer = pair.command(0, "evacuate 10.0.0.2:4444")?;
    assert!(answer.contains("live migration of 'hb'"), "{answer}");
    let done = pair.expect(
        0,
        "evacuate: done: 2 of 2 VMs moved to 10.0.0.2:4444",
        TIMEOUT,
    )?;
    let first = done.find("evacuate: [1/2] 'hb' moved to 10.0.0.2:4444");
    let second = done.find("evacuate: [2/2] 'hb2' moved to 10.0.0.2:4444");
    assert!(
        matches!((first, second), (Some(a), Some(b)) if a < b),
        "a line per VM, in order:\n{done}"
    );
    let list = pair.command(0, "vm list")?;
    assert!(
        !listed(&list, "hb") && !listed(&list, "hb2"),
        "host 0 released both: {list}"
    );
    pair.expect(1, &format!("migrate: VM 'hb2' {RUNNING_HERE}"), TIMEOUT)?;
    let arrived = pair.hosts[1].console().transcript();
    assert!(
        arrived.contains(&format!("migrate: VM 'hb' {RUNNING_HERE}")),
        "{arrived}"
    );
    assert_beats_on(&mut pair, 1, "hb", &format!("VM 'hb2' {RUNNING_HERE}"));
    assert_beats_on(&mut pair, 1, "hb2", &format!("VM 'hb2' {RUNNING_HERE}"));
    pair.assert_no_corruption();
    Ok(())
}
