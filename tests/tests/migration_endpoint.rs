//! The migration listener of a host without VT-x (QEMU TCG), reached from the test machine
//! through QEMU user networking (`hostfwd` to the host's port 4444): no connection may turn
//! incoming migration off (issue 13, items 1 and 2).
//!
//! - a connection that closes at once: the session ends and the listener comes back;
//! - a peer that trickles one byte every 2 s (each byte would reset a 10 s idle timer): the
//!   handshake deadline ends the session, the host closes the connection after an `Abort`,
//!   and the listener comes back.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};
use system_tests::tern::{self, VTX_NOT_AVAILABLE};
use system_tests::{Emulator, EmulatorKind, HarnessError, Nic, NicAttachment, TestResult};

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const LISTENING: &str = "incoming: listening on port 4444";
/// Message type of `Hello` (docs/migration-protocol.md, section 3).
const HELLO: u16 = 1;

fn config() -> String {
    format!(
        "[host]\nname = lonely\n\n[net]\nmode = static\naddress = 10.0.2.15/24\ngateway = 10.0.2.2\n\n[migration]\nport = 4444\nkey = {KEY}\n"
    )
}

/// Boots the QEMU host; returns it and the local port forwarded to its port 4444.
fn boot(name: &str) -> Result<(Emulator, u16), HarnessError> {
    let port = system_tests::net::free_tcp_port()?;
    let host = Emulator::builder(EmulatorKind::Qemu)
        .name(name)
        .config(&config())
        .nic(Nic {
            mac: Nic::mac_for_host(0),
            attachment: NicAttachment::QemuUserForward {
                host_port: port,
                guest_port: 4444,
            },
        })
        .start()?;
    let booted = tern::to_prompt(host)?;
    assert!(
        booted.boot_log.contains(VTX_NOT_AVAILABLE),
        "{}",
        booted.boot_log
    );
    Ok((booted.host, port))
}

/// `info migrate` until it shows the listener, within `timeout`; the last answer otherwise.
fn wait_for_listener(host: &mut Emulator, timeout: Duration) -> Result<String, HarnessError> {
    let deadline = Instant::now() + timeout;
    loop {
        let info = tern::command(host, "info migrate")?;
        if info.contains(LISTENING) || Instant::now() >= deadline {
            return Ok(info);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn connect(port: u16) -> Result<TcpStream, HarnessError> {
    TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| HarnessError::io(format!("connect to 127.0.0.1:{port}"), e))
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn a_connection_that_closes_at_once_does_not_turn_incoming_migration_off() -> TestResult {
    let (mut host, port) = boot("endpoint-close")?;
    let info = wait_for_listener(&mut host, Duration::from_secs(30))?;
    assert!(info.contains(LISTENING), "before any connection:\n{info}");
    for round in 0..2 {
        let stream = connect(port)?;
        let _ = stream.shutdown(Shutdown::Both);
        drop(stream);
        host.console()
            .expect("migrate: incoming connection", Duration::from_secs(30))?;
        // The session notices the close (or, at worst, the handshake deadline) and the
        // listener is armed again.
        let info = wait_for_listener(&mut host, Duration::from_secs(40))?;
        assert!(
            info.contains(LISTENING),
            "round {round}: the listener did not come back:\n{info}"
        );
    }
    let answer = tern::command(&mut host, "migrate_incoming 4445")?;
    assert!(
        !answer.contains("an incoming migration is running"),
        "{answer}"
    );
    Ok(())
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn a_peer_trickling_bytes_is_cut_off_by_the_handshake_deadline() -> TestResult {
    let (mut host, port) = boot("endpoint-trickle")?;
    let info = wait_for_listener(&mut host, Duration::from_secs(30))?;
    assert!(info.contains(LISTENING), "{info}");
    let mut stream = connect(port)?;
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| HarnessError::io("set a read timeout", e))?;
    let started = Instant::now();
    let mut received = Vec::new();
    let mut closed = false;
    // A well-formed frame header (magic "TRNM", Hello, no flags, 64-byte payload, seq 0)
    // and its payload, one byte every 2 s: never 10 s of silence.
    let mut bytes = b"TRNM".to_vec();
    bytes.extend_from_slice(&HELLO.to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&64u32.to_le_bytes());
    bytes.extend_from_slice(&[0; 12]);
    bytes.extend_from_slice(&[0; 64]);
    'trickle: for byte in bytes.iter().cycle() {
        if started.elapsed() > Duration::from_secs(90) {
            break;
        }
        if stream.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        let pause = Instant::now();
        while pause.elapsed() < Duration::from_secs(2) {
            let mut buf = [0u8; 256];
            match stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break 'trickle;
                }
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => {
                    closed = true;
                    break 'trickle;
                }
            }
        }
    }
    let took = started.elapsed();
    assert!(
        closed,
        "the host kept a trickling peer for {took:?} (it sent {} bytes)",
        received.len()
    );
    assert!(
        took < Duration::from_secs(45),
        "cut off only after {took:?} (handshake deadline 10 s)"
    );
    // The console line may reach us a moment after the connection's end does.
    let why = host.console().expect("too slow", Duration::from_secs(20))?;
    assert!(why.contains("incoming migration failed"), "{why}");
    let info = wait_for_listener(&mut host, Duration::from_secs(40))?;
    assert!(info.contains(LISTENING), "{info}");
    Ok(())
}
