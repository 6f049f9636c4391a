//! Snapshots end to end (issue 12 item 2): backup and disaster recovery in Bochs.
//!
//! Host A (`alpha`, 10.0.0.1) runs the heartbeat guest. The snapshot receiver is
//! `tern-snapshot`'s library on the test machine, reached through `gateway::Gateway` (one
//! more port on the hub, 10.0.0.9). `snapshot 10.0.0.9:4444 hb` on A writes the file while
//! the guest keeps beating on A; A is stopped; host B (`beta`, 10.0.0.2) boots empty and
//! `send` restores the file there: the heartbeat continues from the snapshot's beat with
//! its verified working set (no `CORRUPT`). An altered copy of the file is refused.
//! The guest runs in disk mode (`hb.disk=1`, virtio-blk) with a local-APIC timer
//! (`hb.irq=lapic`): the snapshot holds the disk and every device state (interrupt models,
//! CPU model, the disk's queues), so on B the block sequence `blk=` continues from the
//! snapshot's and verifies, and the interrupt count `irqs=` keeps rising.
//! One emulator runs at a time.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use migration_proto::crypto::PreSharedKey;
use snapshot::format::{FormatError, Snapshot};
use snapshot::link::EndpointBinding;
use snapshot::receive::{ReceiveOptions, receive_one};
use snapshot::send::send_snapshot;
use system_tests::gateway::{Gateway, GatewayPlan};
use system_tests::heartbeat::{beat_field, beats, disk_beats, disk_config, migration_config};
use system_tests::migration::{HB_CMDLINE, KEY, PORT, TIMEOUT};
use system_tests::{BxHub, Emulator, EmulatorKind, HarnessError, Nic, TestResult, tern};

const GATEWAY_IP: [u8; 4] = [10, 0, 0, 9];
const GATEWAY_HUB_PORT: u8 = 2;

/// The heartbeat with a local-APIC timer interrupt and (with `disk_config`'s `hb.disk=1`)
/// 50 block writes a second over 32 blocks of its disk.
const SNAPSHOT_CMDLINE: &str = "hb.interval_ms=250 hb.wss_mib=1 hb.dirty_pages_per_sec=20 \
                                hb.irq=lapic hb.irq_hz=100 hb.disk_blocks=32 \
                                hb.disk_writes_per_sec=50";

fn key() -> PreSharedKey {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&KEY[2 * i..2 * i + 2], 16).expect("KEY is hex");
    }
    PreSharedKey::new(bytes)
}

fn program_error(what: &str, e: impl std::fmt::Display) -> HarnessError {
    HarnessError::io(what.to_string(), std::io::Error::other(e.to_string()))
}

fn boot(hub: &BxHub, index: u8, name: &str, config: &str) -> Result<Emulator, HarnessError> {
    let mut host = Emulator::builder(EmulatorKind::Bochs)
        .name(name)
        .work_root(system_tests::work_root())
        .config(config)
        .nic(hub.nic(index)?)
        .start()?;
    let timeout = EmulatorKind::Bochs.boot_timeout();
    host.console().expect(tern::BANNER, timeout)?;
    host.console().expect(tern::PROMPT, timeout)?;
    Ok(host)
}

/// Waits until `host` printed `count` whole beats after the last `after`; returns them
/// ([`beats`] only counts complete lines).
fn beats_after(host: &mut Emulator, after: &str, count: usize) -> Result<Vec<u64>, HarnessError> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let text = host.console().transcript();
        let found = text
            .rsplit_once(after)
            .map_or_else(Vec::new, |(_, t)| beats(t));
        if found.len() >= count || Instant::now() > deadline {
            return Ok(found);
        }
        thread::sleep(Duration::from_secs(5));
        tern::command(host, "vm list")?;
    }
}

fn assert_no_corruption(host: &mut Emulator, which: &str) {
    let transcript = host.console().transcript();
    assert!(
        !transcript.contains("CORRUPT"),
        "{which} reported corruption:\n{transcript}"
    );
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn snapshot_stop_the_host_restore_on_another() -> TestResult {
    let dir = system_tests::work_root().join(format!("snapshot-dr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| HarnessError::io("create dir", e))?;
    let file = dir.join("hb.snap");
    let hub = BxHub::start(3, &dir.join("hub"))?;

    // The receiver listens on loopback; the gateway hands it connections to 10.0.0.9:4444
    // and offers a loopback listener that dials host B's migration port.
    let receiver = TcpListener::bind("127.0.0.1:0").map_err(|e| HarnessError::io("bind", e))?;
    let receiver_addr = receiver
        .local_addr()
        .map_err(|e| HarnessError::io("addr", e))?;
    let gateway = Gateway::start(
        hub.base(),
        GATEWAY_HUB_PORT,
        Nic::mac_for_host(9),
        GATEWAY_IP,
        GatewayPlan {
            inbound: vec![(PORT, receiver_addr)],
            outbound: vec![([10, 0, 0, 2], PORT)],
        },
    )?;
    let to_host_b: SocketAddr = gateway.outbound_listeners[0];

    // Host A: the guest beats; snapshot it live while it keeps running.
    let config_a = disk_config(0, KEY, "16M", SNAPSHOT_CMDLINE);
    let mut host_a = boot(&hub, 0, "snapshot-dr-a", &config_a)?;
    host_a.console().expect("[hb] HB seq=", TIMEOUT)?;
    let options = ReceiveOptions {
        key: key(),
        output: file.clone(),
        max_memory_bytes: 1 << 30,
        max_disk_bytes: 1 << 30,
        binding: EndpointBinding::FromRelay,
    };
    let receiving =
        thread::spawn(move || receive_one(&receiver, &options, &mut |line| eprintln!("{line}")));
    let answer = tern::command(&mut host_a, "snapshot 10.0.0.9:4444 hb")?;
    assert!(
        answer.contains("snapshot: live snapshot of 'hb' with its disk"),
        "{answer}"
    );
    let saved_line = host_a.console().expect("snapshot: VM 'hb' ", TIMEOUT)?;
    let verdict = host_a.console().expect("\n", TIMEOUT)?;
    assert!(verdict.starts_with("saved"), "{saved_line}{verdict}");
    let received = receiving.join().expect("receiver thread");
    let received = received.map_err(|e| program_error("tern-snapshot receive", e))?;
    assert_eq!(received.identity.name, "hb");
    // The guest was paused at the switch-over and copied as it stood: its beat then lies
    // between the last one A printed before "switching over" and the last before "saved".
    let (before_switch, _) = saved_line
        .split_once("switching over")
        .unwrap_or_else(|| panic!("no switch-over line:\n{saved_line}"));
    let paused_at_least = beats(before_switch).last().copied().unwrap_or(0);
    let paused_at_most = beats(&saved_line).last().copied().unwrap_or(0);
    // The VM runs on at A after the snapshot.
    let after = beats_after(&mut host_a, "snapshot: VM 'hb' saved", 2)?;
    assert!(
        after.len() >= 2 && after[1] == after[0] + 1,
        "A keeps beating: {after:?}"
    );
    assert_no_corruption(&mut host_a, "host A");
    let list = tern::command(&mut host_a, "vm list")?;
    assert!(list.contains("hb"), "A still has its VM: {list}");

    // The file verifies; an altered copy does not.
    let snap = Snapshot::read_file(&file).expect("the snapshot verifies");
    assert_eq!(snap.identity.memory_bytes, 16 << 20);
    let disks: Vec<&str> = snap
        .disks
        .iter()
        .map(|d| d.descriptor.name.as_str())
        .collect();
    assert_eq!(disks, ["vda"], "the file holds the VM's disk");
    let ids: Vec<&str> = snap.devices.iter().map(|d| d.id.as_str()).collect();
    for id in [
        "vda",
        "com1",
        "tsc-rate",
        "cpu-model",
        "lapic0",
        "ioapic",
        "pic",
        "pit",
        "rtc",
        "events0",
    ] {
        assert!(ids.contains(&id), "device state {id} kept: {ids:?}");
    }
    // The blocks and interrupts counted at A's last beat before the copy was taken.
    let on_a = host_a.console().transcript();
    let blk_at_snapshot = disk_beats(&on_a)
        .iter()
        .find(|(seq, _)| *seq == paused_at_least)
        .map(|b| b.1)
        .unwrap_or_else(|| panic!("no blk= at beat {paused_at_least}:\n{on_a}"));
    let irqs_at_snapshot = beat_field(&on_a, "irqs")
        .iter()
        .find(|(seq, _)| *seq == paused_at_least)
        .map(|b| b.1)
        .unwrap_or_else(|| panic!("no irqs= at beat {paused_at_least}:\n{on_a}"));
    let mut altered = std::fs::read(&file).map_err(|e| HarnessError::io("read", e))?;
    let at = altered.len() / 2;
    altered[at] ^= 0x20;
    let altered_path = dir.join("altered.snap");
    std::fs::write(&altered_path, &altered).map_err(|e| HarnessError::io("write", e))?;
    assert!(matches!(
        Snapshot::read_file(&altered_path),
        Err(FormatError::DigestMismatch)
    ));

    // Disaster: host A goes away. Host B boots with no VM and restores the snapshot.
    host_a.kill();
    drop(host_a);
    let config_b = migration_config(1, KEY, None, HB_CMDLINE);
    let mut host_b = boot(&hub, 1, "snapshot-dr-b", &config_b)?;
    send_snapshot(
        &snap,
        to_host_b,
        &key(),
        EndpointBinding::FromRelay,
        &mut |line| eprintln!("{line}"),
    )
    .map_err(|e| program_error("tern-snapshot send", e))?;
    host_b
        .console()
        .expect("migrate: VM 'hb' is running on this host", TIMEOUT)?;
    let restored = beats_after(&mut host_b, "is running on this host", 2)?;
    assert!(restored.len() >= 2, "B beats: {restored:?}");
    // The restored guest continues from the snapshot's beat, with no gap after it.
    assert!(
        (paused_at_least + 1..=paused_at_most + 1).contains(&restored[0]),
        "B continues from the snapshot (paused between beats {paused_at_least} and \
         {paused_at_most}): {restored:?}"
    );
    assert!(
        restored.windows(2).all(|w| w[1] == w[0] + 1),
        "{restored:?}"
    );
    // The disk came back with the VM: the block sequence goes on from the snapshot's and
    // every read-back verifies; the interrupt models too: the timer keeps interrupting.
    let on_b = host_b.console().transcript();
    let on_b = on_b
        .rsplit_once("is running on this host")
        .map_or("", |(_, t)| t);
    let blk: Vec<u64> = disk_beats(on_b).iter().map(|b| b.1).collect();
    assert!(
        blk.len() >= 2
            && blk[0] >= blk_at_snapshot
            && blk.windows(2).all(|w| w[0] <= w[1])
            && blk[blk.len() - 1] > blk[0],
        "blk= continues from {blk_at_snapshot} and rises on B: {blk:?}"
    );
    let irqs: Vec<u64> = beat_field(on_b, "irqs").iter().map(|b| b.1).collect();
    assert!(
        irqs.len() >= 2 && irqs[0] >= irqs_at_snapshot && irqs.windows(2).all(|w| w[0] < w[1]),
        "irqs= continues from {irqs_at_snapshot} and keeps rising on B: {irqs:?}"
    );
    assert!(!on_b.contains("HB-DISK-ERROR"), "{on_b}");
    assert_no_corruption(&mut host_b, "host B");
    drop(gateway);
    let _ = std::fs::remove_file(&altered_path);
    assert_file_kept(&file);
    Ok(())
}

fn assert_file_kept(file: &Path) {
    assert!(file.exists(), "the snapshot stays for the next restore");
}
