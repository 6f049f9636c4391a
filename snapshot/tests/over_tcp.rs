//! The program's two directions over real TCP on loopback: a snapshot sent by `send` is
//! received by `receive` into a file, and the file restores onto a destination written
//! here directly on migration-proto's `DestinationSession` (standing in for a tern host).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;

use migration_proto::crypto::PreSharedKey;
use migration_proto::digest::digest_memory;
use migration_proto::message::{DeviceState, VcpuState};
use migration_proto::session::{DestinationConfig, DestinationEvent, DestinationSession, Instant};
use snapshot::format::{Snapshot, SnapshotDisk};
use snapshot::link::EndpointBinding;
use snapshot::receive::{ReceiveError, ReceiveOptions, receive_one, receiver_cpu};
use snapshot::send::{SendError, send_snapshot};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tern-snapshot-tcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir.join(name)
}

/// What a stand-in tern host received and committed.
struct Restored {
    memory: Vec<u8>,
    vcpus: Vec<VcpuState>,
    devices: Vec<DeviceState>,
    disks: Vec<SnapshotDisk>,
}

/// A destination host on `listener`: accepts, receives, verifies, commits; blocking.
fn host(listener: TcpListener, key: PreSharedKey) -> Result<Restored, String> {
    let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(5)))
        .map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    let now = || Instant::from_micros(start.elapsed().as_micros() as u64);
    let mut config = DestinationConfig::new(key, receiver_cpu(), 1 << 30);
    config.max_disk_bytes = 1 << 30;
    let mut session = DestinationSession::new(config, [5; 32], now());
    // A tern host binds the handshake to the connection's endpoints (protocol v3).
    if let Some(endpoints) = snapshot::link::endpoints(&stream, false).map_err(|e| e.to_string())? {
        session.set_endpoints(endpoints);
    }
    let (mut memory, mut vcpus, mut devices) = (Vec::new(), Vec::new(), Vec::new());
    let mut disks: Vec<SnapshotDisk> = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => session.connection_closed(now()),
            Ok(n) => session.handle_input_into(&buf[..n], now(), &mut memory),
            Err(_) => {}
        }
        while let Some(event) = session.poll_event() {
            match event {
                DestinationEvent::Offer(id) => {
                    memory = vec![0u8; id.memory_bytes as usize];
                    // Disk "backends" full of 0xee: every block must be overwritten.
                    for d in session.disk_manifest().map_or(&[][..], |m| &m.disks) {
                        disks.push(SnapshotDisk {
                            descriptor: d.clone(),
                            data: vec![0xee; d.size_bytes as usize],
                        });
                    }
                    session.accept_offer(now()).map_err(|e| e.to_string())?;
                }
                DestinationEvent::DiskBlocks(run) => {
                    let disk = disks
                        .iter_mut()
                        .find(|d| d.descriptor.disk_id == run.disk_id)
                        .ok_or("blocks of an unknown disk")?;
                    let start = run.first_lba as usize * run.block_size as usize;
                    disk.data[start..start + run.data.len()].copy_from_slice(&run.data);
                }
                DestinationEvent::VcpuState(s) => vcpus.push(*s),
                DestinationEvent::DeviceState(d) => devices.push(d),
                DestinationEvent::CommitRequested {
                    expected_digest: Some(_),
                } => session
                    .report_digest(digest_memory(&memory), now())
                    .map_err(|e| e.to_string())?,
                DestinationEvent::CommitRequested {
                    expected_digest: None,
                } => return Err(String::from("send must add the whole-memory digest")),
                DestinationEvent::Failed(e) => return Err(e.to_string()),
                _ => {}
            }
        }
        let out = session.pending_output().to_vec();
        if !out.is_empty() {
            stream.write_all(&out).map_err(|e| e.to_string())?;
            session.consume_output(out.len());
        }
        if session.may_run_vm() {
            return Ok(Restored {
                memory,
                vcpus,
                devices,
                disks,
            });
        }
    }
}

fn key(byte: u8) -> PreSharedKey {
    PreSharedKey::new([byte; 32])
}

#[test]
fn snapshot_to_a_file_and_restore_from_it() {
    let original = common::snapshot();
    let path = scratch("roundtrip.snap");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let options = ReceiveOptions {
        key: key(1),
        output: path.clone(),
        max_memory_bytes: 1 << 30,
        max_disk_bytes: 1 << 30,
        binding: EndpointBinding::Socket,
    };
    let receiver = thread::spawn(move || receive_one(&listener, &options, &mut |_| {}));
    send_snapshot(
        &original,
        addr,
        &key(1),
        EndpointBinding::Socket,
        &mut |_| {},
    )
    .expect("send to the receiver");
    let received = receiver.join().expect("thread").expect("receive");
    assert_eq!(received.identity, original.identity);

    // The file holds exactly the VM that was sent.
    let saved = Snapshot::read_file(&path).expect("the file verifies");
    assert_eq!(saved.memory, original.memory);
    assert_eq!(saved.vcpus, original.vcpus);
    assert_eq!(saved.devices, original.devices);
    assert_eq!(
        saved.cpu, original.cpu,
        "the offered CPU descriptor is kept"
    );
    assert_eq!(saved.header.memory_digest, original.header.memory_digest);
    assert_eq!(saved.header.protocol_version, 3);
    assert!(!PathBuf::from(format!("{}.partial", path.display())).exists());

    // And it restores onto a host.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let host = thread::spawn(move || host(listener, key(1)));
    send_snapshot(&saved, addr, &key(1), EndpointBinding::Socket, &mut |_| {}).expect("restore");
    let restored = host.join().expect("thread").expect("host");
    assert_eq!(restored.memory, original.memory);
    assert_eq!(restored.vcpus, original.vcpus);
    assert_eq!(restored.devices, original.devices);
    std::fs::remove_file(&path).expect("cleanup");
}

#[test]
fn a_vm_with_a_disk_is_saved_with_it_and_restored_with_it() {
    let original = common::snapshot_with_disk();
    let path = scratch("with-disk.snap");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let options = ReceiveOptions {
        key: key(1),
        output: path.clone(),
        max_memory_bytes: 1 << 30,
        max_disk_bytes: 1 << 30,
        binding: EndpointBinding::Socket,
    };
    let receiver = thread::spawn(move || receive_one(&listener, &options, &mut |_| {}));
    // `send` is a storage-migration source: manifest, every block, disk digests at commit.
    send_snapshot(
        &original,
        addr,
        &key(1),
        EndpointBinding::Socket,
        &mut |_| {},
    )
    .expect("send to the receiver");
    receiver.join().expect("thread").expect("receive");
    let saved = Snapshot::read_file(&path).expect("the file verifies");
    assert_eq!(saved.disks, original.disks);
    assert_eq!(saved.header.disks, original.header.disks);
    assert_eq!(
        saved.devices, original.devices,
        "every device state is kept"
    );
    assert_eq!(saved.memory, original.memory);

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let host = thread::spawn(move || host(listener, key(1)));
    send_snapshot(&saved, addr, &key(1), EndpointBinding::Socket, &mut |_| {}).expect("restore");
    let restored = host.join().expect("thread").expect("host");
    assert_eq!(restored.disks, original.disks);
    assert_eq!(restored.devices, original.devices);
    assert_eq!(restored.memory, original.memory);
    std::fs::remove_file(&path).expect("cleanup");
}

#[test]
fn disks_above_the_receivers_limit_are_refused_before_any_page() {
    let path = scratch("disk-too-big.snap");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let options = ReceiveOptions {
        key: key(1),
        output: path.clone(),
        max_memory_bytes: 1 << 30,
        max_disk_bytes: 1 << 20,
        binding: EndpointBinding::Socket,
    };
    let receiver = thread::spawn(move || receive_one(&listener, &options, &mut |_| {}));
    let sent = send_snapshot(
        &common::snapshot_with_disk(),
        addr,
        &key(1),
        EndpointBinding::Socket,
        &mut |_| {},
    );
    let message = sent.expect_err("refused").to_string();
    assert!(message.contains("room"), "{message}");
    let received = receiver.join().expect("thread");
    assert!(
        matches!(received, Err(ReceiveError::Session(_))),
        "{received:?}"
    );
    let told = received.expect_err("refused").to_string();
    assert!(told.contains("--max-disk MIB"), "{told}");
    assert!(told.contains("at least 2 MiB"), "{told}");
    assert!(!path.exists());
}

#[test]
fn a_wrong_key_writes_no_file() {
    let path = scratch("wrong-key.snap");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let options = ReceiveOptions {
        key: key(1),
        output: path.clone(),
        max_memory_bytes: 1 << 30,
        max_disk_bytes: 1 << 30,
        binding: EndpointBinding::Socket,
    };
    let receiver = thread::spawn(move || receive_one(&listener, &options, &mut |_| {}));
    let sent = send_snapshot(
        &common::snapshot(),
        addr,
        &key(2),
        EndpointBinding::Socket,
        &mut |_| {},
    );
    assert!(matches!(sent, Err(SendError::Session(_))), "{sent:?}");
    let received = receiver.join().expect("thread");
    assert!(
        matches!(received, Err(ReceiveError::Session(_))),
        "{received:?}"
    );
    assert!(!path.exists());
}

#[test]
fn a_vm_above_the_receivers_limit_is_refused_before_any_page() {
    let path = scratch("too-big.snap");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let options = ReceiveOptions {
        key: key(1),
        output: path.clone(),
        max_memory_bytes: 1 << 20,
        max_disk_bytes: 1 << 30,
        binding: EndpointBinding::Socket,
    };
    let receiver = thread::spawn(move || receive_one(&listener, &options, &mut |_| {}));
    let sent = send_snapshot(
        &common::snapshot(),
        addr,
        &key(1),
        EndpointBinding::Socket,
        &mut |_| {},
    );
    let message = sent.expect_err("refused").to_string();
    assert!(message.contains("restore failed"), "{message}");
    assert!(receiver.join().expect("thread").is_err());
    assert!(!path.exists());
}

#[test]
fn refused_connection_is_an_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let sent = send_snapshot(
        &common::snapshot(),
        addr,
        &key(1),
        EndpointBinding::Socket,
        &mut |_| {},
    );
    assert!(matches!(sent, Err(SendError::Io(_))), "{sent:?}");
    let _ = TcpStream::connect(addr);
}

#[test]
fn a_file_that_cannot_be_written_aborts_before_the_commit_so_the_source_keeps_its_vm() {
    // The receiver acknowledges the commit only once the file is safely written: here it
    // cannot be (no such directory), so the source is told to keep its VM.
    let path = scratch("no-such-dir").join("x.snap");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let options = ReceiveOptions {
        key: key(1),
        output: path.clone(),
        max_memory_bytes: 1 << 30,
        max_disk_bytes: 1 << 30,
        binding: EndpointBinding::Socket,
    };
    let receiver = thread::spawn(move || receive_one(&listener, &options, &mut |_| {}));
    let sent = send_snapshot(
        &common::snapshot(),
        addr,
        &key(1),
        EndpointBinding::Socket,
        &mut |_| {},
    );
    let message = sent.expect_err("the source must not complete").to_string();
    assert!(
        message.contains("snapshot file"),
        "the abort carries the reason: {message}"
    );
    let received = receiver.join().expect("thread");
    assert!(
        matches!(received, Err(ReceiveError::File(_))),
        "{received:?}"
    );
    assert!(!path.exists());
}
