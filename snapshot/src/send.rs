//! `send`: an ordinary authenticated migration source that reads its VM from a snapshot.
//!
//! A cold migration of a VM that is already stopped: one round with every page (the
//! destination's page digest needs each page once; zero pages cost a few bytes), the vCPU
//! and device states, then `Commit` with the whole-memory digest from the file's header,
//! so the destination also checks its complete memory against what was saved. The tern
//! host resumes the VM at `Release`, as after any migration.
//!
//! A snapshot with disks is sent as storage migration (`migrate -b`): the disk manifest
//! before the offer (the host refuses it when it has no room), then every block of every
//! disk once after the pages (the destination requires each block at least once; zero
//! blocks are sent too), and the per-region disk digests at commit.

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use migration_proto::crypto::PreSharedKey;
use migration_proto::message::{DiskBlocks, MAX_DISK_RUN_LEN};
use migration_proto::session::{
    SessionError, SourceConfig, SourceEvent, SourceSession, UsageError,
};
use migration_proto::wire::{MAX_PAGES_PER_FRAME, PAGE_SIZE};

use crate::format::Snapshot;
use crate::link::{self, Clock, EndpointBinding, Received};

/// How long the TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the VM was not handed over.
#[derive(Debug)]
pub enum SendError {
    /// Connecting or the nonce failed.
    Io(std::io::Error),
    /// The destination refused or the migration failed; it does not run the VM.
    Session(SessionError),
    /// The session refused a call (a state this program should never reach).
    Usage(UsageError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Io(e) => write!(f, "{e}"),
            SendError::Session(e) => {
                write!(
                    f,
                    "restore failed: {e}; the destination does not run the VM"
                )
            }
            SendError::Usage(e) => write!(f, "internal error: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

impl From<std::io::Error> for SendError {
    fn from(e: std::io::Error) -> Self {
        SendError::Io(e)
    }
}

impl From<UsageError> for SendError {
    fn from(e: UsageError) -> Self {
        SendError::Usage(e)
    }
}

enum Phase {
    Handshake,
    Pages { next_pfn: usize },
    Disks { disk: usize, next_byte: usize },
    Committing,
}

/// Sends the snapshot's VM to the tern host at `to`; returns once it committed.
pub fn send_snapshot(
    snapshot: &Snapshot,
    to: SocketAddr,
    key: &PreSharedKey,
    binding: EndpointBinding,
    say: &mut dyn FnMut(&str),
) -> Result<(), SendError> {
    let mut stream = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)?;
    let endpoints = link::bound_endpoints(&mut stream, binding, true)?;
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    let clock = Clock::start();
    let mut config =
        SourceConfig::new(key.clone(), snapshot.identity.clone(), snapshot.cpu.clone());
    config.disks = snapshot
        .disks
        .iter()
        .map(|d| d.descriptor.clone())
        .collect();
    let mut session = SourceSession::new(config, link::nonce()?, clock.now());
    if let Some(endpoints) = endpoints {
        session.set_endpoints(endpoints);
    }
    let pages = snapshot.memory.len() / PAGE_SIZE;
    let mut phase = Phase::Handshake;
    let mut buf = vec![0u8; 64 * 1024];
    let mut closed = false;
    loop {
        let mut moved = false;
        if !closed {
            match link::read_some(&mut stream, &mut buf) {
                Received::Bytes(n) => {
                    session.handle_input(&buf[..n], clock.now());
                    moved = true;
                }
                Received::Nothing => {}
                Received::Closed => {
                    closed = true;
                    session.connection_closed(clock.now());
                }
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                SourceEvent::Accepted { version, .. } => {
                    say(&format!(
                        "send: VM '{}' accepted by {to} (protocol v{version}); sending {} MiB",
                        snapshot.identity.name,
                        snapshot.memory.len() >> 20
                    ));
                    phase = Phase::Pages { next_pfn: 0 };
                }
                SourceEvent::Completed => {
                    // Flush the Release before the connection goes.
                    let deadline = std::time::Instant::now() + Duration::from_secs(5);
                    while !session.pending_output().is_empty()
                        && std::time::Instant::now() < deadline
                    {
                        match link::write_some(&mut stream, session.pending_output()) {
                            Some(n) => session.consume_output(n),
                            None => break,
                        }
                        link::idle();
                    }
                    say(&format!(
                        "send: VM '{}' committed on {to}: it runs there now",
                        snapshot.identity.name
                    ));
                    return Ok(());
                }
                SourceEvent::Failed(e) => return Err(SendError::Session(e)),
            }
        }
        if let Phase::Pages { next_pfn } = &mut phase {
            while *next_pfn < pages && session.can_send_pages() {
                let count = MAX_PAGES_PER_FRAME.min(pages - *next_pfn);
                let start = *next_pfn * PAGE_SIZE;
                let run = &snapshot.memory[start..start + count * PAGE_SIZE];
                session.send_pages(start as u64, run, clock.now())?;
                *next_pfn += count;
                moved = true;
            }
            if *next_pfn == pages {
                phase = Phase::Disks {
                    disk: 0,
                    next_byte: 0,
                };
            }
        }
        if let Phase::Disks { disk, next_byte } = &mut phase {
            while let Some(d) = snapshot.disks.get(*disk)
                && session.can_send_pages()
            {
                if *next_byte >= d.data.len() {
                    *disk += 1;
                    *next_byte = 0;
                    continue;
                }
                let block_size = d.descriptor.block_size as usize;
                let end = d.data.len().min(*next_byte + MAX_DISK_RUN_LEN);
                session.send_disk_blocks(
                    &DiskBlocks {
                        disk_id: d.descriptor.disk_id,
                        first_lba: (*next_byte / block_size.max(1)) as u64,
                        block_size: d.descriptor.block_size,
                        data: d.data[*next_byte..end].to_vec(),
                    },
                    clock.now(),
                )?;
                *next_byte = end;
                moved = true;
            }
            if *disk == snapshot.disks.len() {
                session.end_round(0, clock.now())?;
                for vcpu in &snapshot.vcpus {
                    session.send_vcpu_state(vcpu, clock.now())?;
                }
                for device in &snapshot.devices {
                    session.send_device_state(device, clock.now())?;
                }
                session.commit(Some(snapshot.header.memory_digest), clock.now())?;
                phase = Phase::Committing;
            }
        }
        if !closed {
            match link::write_some(&mut stream, session.pending_output()) {
                Some(n) => {
                    session.consume_output(n);
                    moved |= n > 0;
                }
                None => {
                    closed = true;
                    session.connection_closed(clock.now());
                }
            }
        }
        if session.poll_timeout().is_some_and(|t| clock.now() >= t) {
            session.handle_timeout(clock.now());
        }
        if !moved {
            link::idle();
        }
    }
}
