//! The source side: owns the VM until the destination acknowledged the commit.

mod transfer;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use crate::crypto::{self, Role};
use crate::dirty::DirtyBitmap;
use crate::disk_digest::DiskDigestTable;
use crate::message::{
    Abort, AuthProof, DiskManifest, Hello, MAX_VCPUS, Message, NONCE_LEN, Offer, Progress,
};
use crate::negotiation::{Capabilities, VersionRange};
use crate::page_codec::{DeltaCache, PageCounts};
use crate::page_digest::{PageDigestKey, PageDigestTable};
use crate::wire::{MessageType, PAGE_SIZE, Writer};

use super::link::Link;
use super::{Instant, SessionError};
use super::{SourceConfig, SourceEvent, SourceState};

#[derive(Default)]
struct RoundTally {
    round: u32,
    counts: PageCounts,
    payload_bytes: u64,
    started: Instant,
}

/// The sending side of a migration.
pub struct SourceSession {
    config: SourceConfig,
    state: SourceState,
    link: Link,
    hello_payload: Vec<u8>,
    events: VecDeque<SourceEvent>,
    waiting_since: Instant,
    tally: RoundTally,
    progress: Progress,
    error: Option<SessionError>,
    vcpus_sent: Vec<bool>,
    /// Ids of the devices whose state was sent (the destination refuses one twice).
    devices_sent: Vec<alloc::string::String>,
    /// Version 3: the hash of every page as last sent (see `page_digest`).
    page_digest: Option<PageDigestTable>,
    /// Pages the caller declared dirty and has not sent again since.
    stale: DirtyBitmap,
    /// Testing only: the next page run is encoded with one byte changed after hashing.
    corrupt_next_run: bool,
    /// When the destination's `HelloReply` arrived (for the caller's round-trip estimate).
    hello_reply_at: Option<Instant>,
    /// DELTA_PAGES: the copies of sent pages deltas are computed against.
    delta_cache: Option<DeltaCache>,
    /// Storage migration: one digest table per manifest disk (`disk_digest`), and the
    /// blocks of each the caller declared dirty and has not sent again.
    disks: Vec<SourceDisk>,
    /// Testing only: the next disk run is hashed but never sent (a block lost on the way).
    drop_next_disk_run: bool,
}

/// One disk of the manifest on the source side.
pub(super) struct SourceDisk {
    pub(super) table: DiskDigestTable,
    pub(super) stale: DirtyBitmap,
}

impl SourceSession {
    /// Starts a session; the `Hello` is ready in `pending_output` at once. `nonce` must be
    /// fresh random bytes (RDRAND on the hypervisor).
    ///
    /// A configuration that breaks a protocol limit (VM name, memory size, vCPU count, CPU
    /// descriptor size) yields a session that is `Failed` from the start with
    /// `SessionError::InvalidConfig`, before anything is sent.
    pub fn new(mut config: SourceConfig, nonce: [u8; NONCE_LEN], now: Instant) -> Self {
        let manifest = (!config.disks.is_empty()).then(|| DiskManifest {
            disks: config.disks.clone(),
        });
        let invalid = config
            .identity
            .validate()
            .and_then(|()| config.cpu.validate())
            .and_then(|()| manifest.as_ref().map_or(Ok(()), DiskManifest::validate))
            .err();
        if manifest.is_some() {
            // Disks cannot be left behind: a destination without storage migration refuses.
            config.required = config.required.union(Capabilities::DISK_MIGRATION);
        }
        let hello = Hello {
            versions: config.versions,
            offered: config.offered,
            required: config.required,
            nonce,
        };
        let mut hello_payload = Vec::new();
        hello.encode(&mut Writer::new(&mut hello_payload));
        let link = Link::new(now);
        let vcpu_count = config.identity.vcpu_count.min(MAX_VCPUS) as usize;
        let pages = usize::try_from(config.identity.memory_bytes / PAGE_SIZE as u64).unwrap_or(0);
        let mut session = SourceSession {
            config,
            state: SourceState::AwaitingHelloReply,
            link,
            hello_payload,
            events: VecDeque::new(),
            waiting_since: now,
            tally: RoundTally::default(),
            progress: Progress::default(),
            error: None,
            vcpus_sent: vec![false; vcpu_count],
            devices_sent: Vec::new(),
            page_digest: None,
            stale: DirtyBitmap::new(if invalid.is_none() { pages } else { 0 }),
            corrupt_next_run: false,
            hello_reply_at: None,
            delta_cache: None,
            disks: Vec::new(),
            drop_next_disk_run: false,
        };
        if let Some(e) = invalid {
            session.state = SourceState::Failed;
            session.error = Some(SessionError::InvalidConfig(e.clone()));
            session
                .events
                .push_back(SourceEvent::Failed(SessionError::InvalidConfig(e)));
            return session;
        }
        // A Hello is 52 bytes: always below the frame limit.
        let _ = session
            .link
            .send_raw(MessageType::Hello, &session.hello_payload, now);
        session
    }

    /// Current state.
    pub fn state(&self) -> SourceState {
        self.state
    }

    /// True until the destination acknowledged the commit: while true, any failure means
    /// "resume the VM here".
    pub fn owns_vm(&self) -> bool {
        self.state != SourceState::Completed
    }

    /// The error that ended the session, if it failed.
    pub fn error(&self) -> Option<&SessionError> {
        self.error.as_ref()
    }

    /// Sets the connection's endpoints once the caller knows them (before the destination's
    /// reply is handled; version 3 binds the handshake to them, see `crypto::Endpoints`).
    pub fn set_endpoints(&mut self, endpoints: crate::crypto::Endpoints) {
        if self.state == SourceState::AwaitingHelloReply {
            self.config.endpoints = Some(endpoints);
        }
    }

    /// When the destination's `HelloReply` arrived: with the time the connection was
    /// established (the `Hello` leaves then), one measured round trip.
    pub fn hello_reply_at(&self) -> Option<Instant> {
        self.hello_reply_at
    }

    /// Negotiated version and capabilities, once authenticated.
    pub fn negotiated(&self) -> Option<(u16, Capabilities)> {
        self.link
            .keyed
            .then_some((self.link.version, self.link.caps))
    }

    /// Next event for the caller.
    pub fn poll_event(&mut self) -> Option<SourceEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the connection.
    pub fn pending_output(&self) -> &[u8] {
        self.link.pending_output()
    }

    /// Marks `n` bytes of `pending_output` as written.
    pub fn consume_output(&mut self, n: usize) {
        self.link.consume_output(n);
    }

    /// Whether `send_pages` will take another run now (transferring, and the output buffer
    /// below its limit). Use this for backpressure.
    pub fn can_send_pages(&self) -> bool {
        self.state == SourceState::Transferring
            && self.link.buffered_output() < self.config.output_limit
    }

    /// Feeds bytes read from the connection.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.state.is_terminal() {
            return;
        }
        self.link.reader.push(bytes);
        self.link.last_rx = now;
        loop {
            let header = match self.link.reader.next_frame() {
                Ok(Some(h)) => h,
                Ok(None) => return,
                Err(e) => return self.fail(SessionError::Frame(e), now),
            };
            let result = self.on_frame(header.msg_type, now);
            self.link.reader.consume();
            if let Err(e) = result {
                return self.fail(e, now);
            }
            if self.state.is_terminal() {
                return;
            }
        }
    }

    fn on_frame(&mut self, msg_type: MessageType, now: Instant) -> Result<(), SessionError> {
        self.waiting_since = now;
        let payload = self.link.reader.payload();
        let msg = Message::decode(msg_type, payload).map_err(|e| SessionError::Frame(e.into()))?;
        match (self.state, msg) {
            (_, Message::Abort(a)) => Err(SessionError::PeerAborted {
                reason: a.reason,
                detail: a.detail,
            }),
            (SourceState::AwaitingHelloReply, Message::HelloReply(reply)) => {
                self.hello_reply_at = Some(now);
                let mut transcript =
                    crypto::transcript_hash(&self.hello_payload, self.link.reader.payload());
                // Version 3 binds the handshake to the connection's endpoints; a version
                // outside our range fails below anyway.
                if reply.version >= MessageType::PageDigest.since_version() {
                    transcript =
                        crypto::bind_endpoints(&transcript, self.config.endpoints.as_ref());
                }
                if !crypto::verify_proof(
                    &self.config.key,
                    Role::Destination,
                    &transcript,
                    &reply.proof,
                ) {
                    return Err(SessionError::AuthenticationFailed);
                }
                if !self.config.versions.contains(reply.version) {
                    let peer = VersionRange {
                        min: reply.version,
                        max: reply.version,
                    };
                    return Err(SessionError::UnsupportedVersion {
                        ours: self.config.versions,
                        peer,
                    });
                }
                let allowed = self.config.offered.intersection(Capabilities::IMPLEMENTED);
                let extra = reply.capabilities.difference(allowed);
                if !extra.is_empty() {
                    return Err(SessionError::CapabilityNotOffered(extra));
                }
                let missing = self.config.required.difference(reply.capabilities);
                if !missing.is_empty() {
                    return Err(SessionError::MissingCapabilities(missing));
                }
                self.link.version = reply.version;
                self.link.caps = reply.capabilities;
                let proof = crypto::proof(&self.config.key, Role::Source, &transcript);
                self.send(&Message::Auth(AuthProof { proof }), now);
                let keys = crypto::session_keys(&self.config.key, &transcript);
                self.link
                    .install_keys(&keys.source_to_destination, &keys.destination_to_source);
                if self.link.version >= MessageType::PageDigest.since_version() {
                    let pages = self.stale.len();
                    let table = PageDigestTable::try_new(PageDigestKey(keys.page_digest), pages)
                        .ok_or(SessionError::OutOfMemory {
                            what: "page digest",
                            bytes: PageDigestTable::bytes_for(pages),
                        })?;
                    self.page_digest = Some(table);
                }
                if self.link.caps.contains(Capabilities::DELTA_PAGES) {
                    // No memory for the cache only means no deltas.
                    self.delta_cache = DeltaCache::try_new(self.config.delta_cache_bytes);
                }
                if !self.config.disks.is_empty() {
                    self.start_disks(PageDigestKey(keys.page_digest), now)?;
                }
                let offer = Offer {
                    identity: self.config.identity.clone(),
                    cpu: self.config.cpu.clone(),
                };
                self.send(&Message::Offer(Box::new(offer)), now);
                self.state = SourceState::AwaitingAccept;
                Ok(())
            }
            (SourceState::AwaitingAccept, Message::Accept) => {
                self.state = SourceState::Transferring;
                self.tally.started = now;
                self.events.push_back(SourceEvent::Accepted {
                    version: self.link.version,
                    capabilities: self.link.caps,
                });
                Ok(())
            }
            (SourceState::AwaitingCommitAck, Message::CommitAck) => {
                self.send(&Message::Release, now);
                self.state = SourceState::Completed;
                self.events.push_back(SourceEvent::Completed);
                Ok(())
            }
            (state, msg) => Err(SessionError::UnexpectedMessage {
                state: state.name(),
                msg_type: msg.msg_type(),
            }),
        }
    }

    /// Storage migration: a digest table per disk, and the manifest (before the `Offer`).
    fn start_disks(&mut self, key: PageDigestKey, now: Instant) -> Result<(), SessionError> {
        for disk in &self.config.disks {
            let table =
                DiskDigestTable::try_new(key.clone(), disk).ok_or(SessionError::OutOfMemory {
                    what: "disk digest",
                    bytes: DiskDigestTable::bytes_for(disk),
                })?;
            let blocks = usize::try_from(disk.blocks()).unwrap_or(0);
            self.disks.push(SourceDisk {
                table,
                stale: DirtyBitmap::new(blocks),
            });
        }
        let manifest = DiskManifest {
            disks: self.config.disks.clone(),
        };
        self.send(&Message::DiskManifest(manifest), now);
        Ok(())
    }

    /// Sends a message built by the session itself (always within limits).
    fn send(&mut self, msg: &Message, now: Instant) {
        let _ = self.link.send(msg, now);
    }

    fn fail(&mut self, error: SessionError, now: Instant) {
        if self.state.is_terminal() {
            return;
        }
        if !matches!(
            error,
            SessionError::PeerAborted { .. } | SessionError::ConnectionClosed { .. }
        ) {
            let msg = match error {
                SessionError::Cancelled => Message::Cancel,
                _ => Message::Abort(Abort::new(error.abort_reason(), &error.to_string())),
            };
            self.send(&msg, now);
        }
        self.state = SourceState::Failed;
        self.error = Some(error.clone());
        self.events.push_back(SourceEvent::Failed(error));
    }

    /// When `handle_timeout` should be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            SourceState::AwaitingHelloReply
            | SourceState::AwaitingAccept
            | SourceState::AwaitingCommitAck => Some(self.waiting_since + self.config.idle_timeout),
            SourceState::Transferring => Some(self.link.last_tx + self.config.keepalive_interval),
            SourceState::Completed | SourceState::Failed => None,
        }
    }

    /// Advances timers: fails a wait that lasted longer than the idle timeout, and sends a
    /// keep-alive during long pauses of the transfer.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            SourceState::AwaitingHelloReply
            | SourceState::AwaitingAccept
            | SourceState::AwaitingCommitAck => {
                if now >= self.waiting_since + self.config.idle_timeout {
                    self.fail(
                        SessionError::Timeout {
                            state: self.state.name(),
                        },
                        now,
                    );
                }
            }
            SourceState::Transferring => {
                if now >= self.link.last_tx + self.config.keepalive_interval {
                    let progress = self.progress;
                    self.send(&Message::Progress(progress), now);
                }
            }
            SourceState::Completed | SourceState::Failed => {}
        }
    }

    /// The connection ended (EOF or reset).
    pub fn connection_closed(&mut self, now: Instant) {
        let partial_frame_bytes = self.link.reader.buffered();
        self.fail(
            SessionError::ConnectionClosed {
                partial_frame_bytes,
            },
            now,
        );
    }

    /// Cancels the migration (operator request); the VM stays here.
    pub fn cancel(&mut self, now: Instant) {
        self.fail(SessionError::Cancelled, now);
    }
}
