//! The destination side: checks everything, applies nothing itself, and only lets the VM run
//! after the source released it.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::crypto::{self, Role};
use crate::digest::{Digest, constant_time_eq};
use crate::dirty::DirtyBitmap;
use crate::disk_digest::DiskDigestTable;
use crate::message::{Abort, DiskManifest, HelloReply, Message, NONCE_LEN, VmIdentity};
use crate::negotiation::Capabilities;
use crate::page_codec::PageRunView;
use crate::page_digest::{PageDigestKey, PageDigestTable};
use crate::wire::{MessageType, PAGE_SIZE, Writer};

use super::deadlines::Deadlines;
use super::guest_memory::{GuestMemory, apply_run};
use super::link::Link;
use super::receiving::{Incoming, IncomingDisk, on_receiving};
use super::{DestinationConfig, DestinationEvent, DestinationState};
use super::{Instant, SessionError, UsageError};

/// The receiving side of a migration.
pub struct DestinationSession {
    config: DestinationConfig,
    state: DestinationState,
    link: Link,
    nonce: [u8; NONCE_LEN],
    transcript: [u8; 32],
    incoming: Option<Incoming>,
    events: VecDeque<DestinationEvent>,
    error: Option<SessionError>,
    spare_page_buffers: Vec<Vec<u8>>,
    /// Bytes of decoded pages in queued `Pages` events.
    pending_page_bytes: usize,
    /// Time of the last input, for frames decoded later from `poll_event`.
    last_input: Instant,
    /// Version 3: the page-digest key, from the session keys.
    page_digest_key: Option<PageDigestKey>,
    /// One page for decompressing a delta page before it is applied.
    delta_scratch: Vec<u8>,
    /// Handshake and per-frame deadlines (see `deadlines`).
    deadlines: Deadlines,
    /// Storage migration: the source's disk manifest, once it arrived (before the `Offer`).
    disk_manifest: Option<DiskManifest>,
}

/// Whether decoding into events stops at `MAX_PENDING_PAGE_BYTES`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PendingLimit {
    Bounded,
    Unbounded,
}

/// Decoded page bytes queued in events above which `handle_input` holds frames back.
const MAX_PENDING_PAGE_BYTES: usize = 1024 * 1024;

/// Most page buffers kept for reuse (see `recycle_page_buffer`).
const MAX_SPARE_PAGE_BUFFERS: usize = 8;

impl DestinationSession {
    /// Starts a session on an accepted connection. `nonce` must be fresh random bytes.
    pub fn new(config: DestinationConfig, nonce: [u8; NONCE_LEN], now: Instant) -> Self {
        DestinationSession {
            config,
            state: DestinationState::AwaitingHello,
            link: Link::new(now),
            nonce,
            transcript: [0; 32],
            incoming: None,
            events: VecDeque::new(),
            error: None,
            spare_page_buffers: Vec::new(),
            pending_page_bytes: 0,
            last_input: now,
            page_digest_key: None,
            delta_scratch: Vec::new(),
            deadlines: Deadlines::new(now),
            disk_manifest: None,
        }
    }

    /// The disks the source announced (storage migration), once the manifest arrived: the
    /// caller creates a backend for each before it accepts the offer.
    pub fn disk_manifest(&self) -> Option<&DiskManifest> {
        self.disk_manifest.as_ref()
    }

    /// Gives the `data` of a `DestinationEvent::Pages` back once it was copied into guest
    /// memory, so that the next event reuses it instead of allocating (optional).
    pub fn recycle_page_buffer(&mut self, buffer: Vec<u8>) {
        if self.spare_page_buffers.len() < MAX_SPARE_PAGE_BUFFERS {
            self.spare_page_buffers.push(buffer);
        }
    }

    /// Sets the connection's endpoints as this host sees them (before the `Hello` is
    /// handled; version 3 binds the handshake to them, see `crypto::Endpoints`).
    pub fn set_endpoints(&mut self, endpoints: crate::crypto::Endpoints) {
        if self.state == DestinationState::AwaitingHello {
            self.config.endpoints = Some(endpoints);
        }
    }

    /// Current state.
    pub fn state(&self) -> DestinationState {
        self.state
    }

    /// Whether the VM may run here (only after `Released`).
    pub fn may_run_vm(&self) -> bool {
        self.state == DestinationState::Released
    }

    /// The error that ended the session, if it failed.
    pub fn error(&self) -> Option<&SessionError> {
        self.error.as_ref()
    }

    /// Negotiated version and capabilities, once authenticated.
    pub fn negotiated(&self) -> Option<(u16, Capabilities)> {
        self.link
            .keyed
            .then_some((self.link.version, self.link.caps))
    }

    /// The VM being received, once offered.
    pub fn identity(&self) -> Option<&VmIdentity> {
        self.incoming.as_ref().map(|i| &i.identity)
    }

    /// The CPU descriptor of the VM being received, once offered (what the guest was
    /// shown; a snapshot receiver stores it with the VM).
    pub fn offered_cpu(&self) -> Option<&crate::cpu::CpuDescriptor> {
        self.incoming.as_ref().map(|i| &i.cpu)
    }

    /// Next event for the caller.
    ///
    /// Frames held back because decoded pages were waiting (see `handle_input`) are decoded
    /// here as the queue drains.
    pub fn poll_event(&mut self) -> Option<DestinationEvent> {
        if self.events.is_empty() && self.link.reader.buffered() > 0 {
            self.input::<[u8]>(&[], self.last_input, None, PendingLimit::Bounded);
        }
        let event = self.events.pop_front()?;
        if let DestinationEvent::Pages { data, .. } = &event {
            self.pending_page_bytes = self.pending_page_bytes.saturating_sub(data.len());
        }
        Some(event)
    }

    /// Bytes to write to the connection.
    pub fn pending_output(&self) -> &[u8] {
        self.link.pending_output()
    }

    /// Marks `n` bytes of `pending_output` as written.
    pub fn consume_output(&mut self, n: usize) {
        self.link.consume_output(n);
    }

    /// Feeds bytes read from the connection; pages come out as `DestinationEvent::Pages`.
    /// Memory stays bounded: once 1 MiB of decoded pages waits in the queue, further frames
    /// stay buffered (as received) and are decoded as `poll_event` drains the queue, so a
    /// few bytes of zero-page frames never expand into a flood of buffers.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.input::<[u8]>(bytes, now, None, PendingLimit::Bounded);
    }

    /// Feeds bytes read from the connection; pages are decoded straight into `memory`
    /// (zero-filled when the session started) and produce no event.
    pub fn handle_input_into<M: GuestMemory + ?Sized>(
        &mut self,
        bytes: &[u8],
        now: Instant,
        memory: &mut M,
    ) {
        self.input(bytes, now, Some(memory), PendingLimit::Bounded);
    }

    fn input<M: GuestMemory + ?Sized>(
        &mut self,
        bytes: &[u8],
        now: Instant,
        mut memory: Option<&mut M>,
        limit: PendingLimit,
    ) {
        if self.state.is_terminal() {
            return;
        }
        self.link.reader.push(bytes);
        if !bytes.is_empty() {
            self.link.last_rx = now;
            self.last_input = now;
        }
        loop {
            // A few bytes of zero-page frames decode to megabytes: stop decoding into events
            // while enough pages wait to be taken; `poll_event` resumes.
            if memory.is_none()
                && limit == PendingLimit::Bounded
                && self.pending_page_bytes >= MAX_PENDING_PAGE_BYTES
            {
                return;
            }
            let header = match self.link.reader.next_frame() {
                Ok(Some(h)) => h,
                Ok(None) => {
                    if self.link.reader.buffered() > 0 {
                        self.deadlines.partial_frame(now);
                    }
                    return;
                }
                Err(e) => return self.fail(SessionError::Frame(e), now),
            };
            let result = if header.msg_type == MessageType::Pages
                && self.state == DestinationState::Receiving
            {
                self.on_pages(memory.as_deref_mut())
            } else {
                self.on_frame(header.msg_type, now)
            };
            self.link.reader.consume();
            self.deadlines.frame_complete();
            if let Err(e) = result {
                return self.fail(e, now);
            }
            if self.state.is_terminal() {
                return;
            }
        }
    }

    fn on_frame(&mut self, msg_type: MessageType, now: Instant) -> Result<(), SessionError> {
        use DestinationState as S;
        if self.link.version != 0 && msg_type.since_version() > self.link.version {
            return Err(SessionError::MessageNotInVersion {
                msg_type,
                version: self.link.version,
            });
        }
        let msg = Message::decode(msg_type, self.link.reader.payload())
            .map_err(|e| SessionError::Frame(e.into()))?;
        let incoming = self.incoming.as_mut();
        match (self.state, msg, incoming) {
            (_, Message::Abort(a), _) => Err(SessionError::PeerAborted {
                reason: a.reason,
                detail: a.detail,
            }),
            (_, Message::Cancel, _) => Err(SessionError::PeerCancelled),
            (S::AwaitingHello, Message::Hello(hello), _) => {
                let Some(version) = self.config.versions.highest_common(hello.versions) else {
                    return Err(SessionError::UnsupportedVersion {
                        ours: self.config.versions,
                        peer: hello.versions,
                    });
                };
                let mut caps = hello
                    .offered
                    .intersection(self.config.offered)
                    .intersection(Capabilities::IMPLEMENTED);
                if version < MessageType::PageDigest.since_version() {
                    caps = caps.difference(Capabilities::DELTA_PAGES);
                    caps = caps.difference(Capabilities::DISK_MIGRATION);
                }
                let missing = hello.required.union(self.config.required).difference(caps);
                if !missing.is_empty() {
                    return Err(SessionError::MissingCapabilities(missing));
                }
                let mut reply = HelloReply {
                    version,
                    capabilities: caps,
                    nonce: self.nonce,
                    proof: [0; 32],
                };
                let mut reply_payload = Vec::new();
                reply.encode(&mut Writer::new(&mut reply_payload));
                self.transcript =
                    crypto::transcript_hash(self.link.reader.payload(), &reply_payload);
                if version >= MessageType::PageDigest.since_version() {
                    self.transcript =
                        crypto::bind_endpoints(&self.transcript, self.config.endpoints.as_ref());
                }
                reply.proof = crypto::proof(&self.config.key, Role::Destination, &self.transcript);
                self.link.version = version;
                self.link.caps = caps;
                self.send(&Message::HelloReply(reply), now);
                self.state = S::AwaitingAuth;
                Ok(())
            }
            (S::AwaitingAuth, Message::Auth(auth), _) => {
                if !crypto::verify_proof(
                    &self.config.key,
                    Role::Source,
                    &self.transcript,
                    &auth.proof,
                ) {
                    return Err(SessionError::AuthenticationFailed);
                }
                let keys = crypto::session_keys(&self.config.key, &self.transcript);
                self.link
                    .install_keys(&keys.destination_to_source, &keys.source_to_destination);
                if self.link.version >= MessageType::PageDigest.since_version() {
                    self.page_digest_key = Some(PageDigestKey(keys.page_digest));
                }
                self.state = S::AwaitingOffer;
                Ok(())
            }
            (S::AwaitingOffer, Message::DiskManifest(manifest), _) => {
                if !self.link.caps.contains(Capabilities::DISK_MIGRATION) {
                    return Err(SessionError::EncodingNotNegotiated(
                        Capabilities::DISK_MIGRATION,
                    ));
                }
                if self.disk_manifest.is_some() {
                    return Err(SessionError::Duplicate("disk manifest"));
                }
                let needed = manifest
                    .disks
                    .iter()
                    .fold(0u64, |sum, d| sum.saturating_add(d.size_bytes));
                if needed > self.config.max_disk_bytes {
                    return Err(SessionError::NoRoomForDisks {
                        needed,
                        available: self.config.max_disk_bytes,
                    });
                }
                self.disk_manifest = Some(manifest);
                Ok(())
            }
            (S::AwaitingOffer, Message::Offer(offer), _) => {
                let limit = self.config.max_memory_bytes;
                if offer.identity.memory_bytes > limit {
                    return Err(SessionError::VmTooLarge {
                        memory_bytes: offer.identity.memory_bytes,
                        limit,
                    });
                }
                let problems = offer.cpu.compare(&self.config.cpu);
                if !problems.is_empty() {
                    return Err(SessionError::CpuIncompatible(problems));
                }
                let offer = *offer;
                let pages = (offer.identity.memory_bytes / PAGE_SIZE as u64) as usize;
                let page_digest = match self.page_digest_key.clone() {
                    Some(key) => Some(PageDigestTable::try_new(key, pages).ok_or(
                        SessionError::OutOfMemory {
                            what: "page digest",
                            bytes: PageDigestTable::bytes_for(pages),
                        },
                    )?),
                    None => None,
                };
                let mut disks = Vec::new();
                if let (Some(manifest), Some(key)) = (&self.disk_manifest, &self.page_digest_key) {
                    for disk in &manifest.disks {
                        let table = DiskDigestTable::try_new(key.clone(), disk).ok_or(
                            SessionError::OutOfMemory {
                                what: "disk digest",
                                bytes: DiskDigestTable::bytes_for(disk),
                            },
                        )?;
                        disks.push(IncomingDisk {
                            table,
                            source_digest: None,
                        });
                    }
                }
                self.incoming = Some(Incoming {
                    disks,
                    vcpus_received: vec![false; offer.identity.vcpu_count as usize],
                    identity: offer.identity.clone(),
                    cpu: offer.cpu,
                    devices: Vec::new(),
                    digest: None,
                    page_digest,
                    source_page_digest: None,
                    maybe_nonzero: DirtyBitmap::new(pages),
                });
                self.events
                    .push_back(DestinationEvent::Offer(offer.identity));
                self.state = S::AwaitingDecision;
                Ok(())
            }
            (S::Receiving, Message::DiskBlocks(_) | Message::DiskDigest(_), _)
                if !self.link.caps.contains(Capabilities::DISK_MIGRATION) =>
            {
                Err(SessionError::EncodingNotNegotiated(
                    Capabilities::DISK_MIGRATION,
                ))
            }
            (S::Receiving, msg, Some(inc)) => {
                on_receiving(inc, msg, &mut self.events, &mut self.state)
            }
            (S::AwaitingDigestCheck, Message::Commit, _) => Err(SessionError::Duplicate("commit")),
            (S::AwaitingDigestCheck | S::AwaitingRelease, msg, _)
                if msg.msg_type() != MessageType::Release =>
            {
                Err(SessionError::AfterCommit(msg.msg_type()))
            }
            (S::AwaitingRelease, Message::Release, _) => {
                self.state = S::Released;
                self.events.push_back(DestinationEvent::Released);
                Ok(())
            }
            (state, msg, _) => Err(SessionError::UnexpectedMessage {
                state: state.name(),
                msg_type: msg.msg_type(),
            }),
        }
    }

    fn on_pages<M: GuestMemory + ?Sized>(
        &mut self,
        memory: Option<&mut M>,
    ) -> Result<(), SessionError> {
        let Some(inc) = self.incoming.as_mut() else {
            return Err(SessionError::UnexpectedMessage {
                state: self.state.name(),
                msg_type: MessageType::Pages,
            });
        };
        if inc.sealed() {
            return Err(SessionError::AfterCommit(MessageType::Pages));
        }
        let view = PageRunView::parse(self.link.reader.payload())
            .map_err(|e| SessionError::Frame(e.into()))?;
        let not_negotiated = view.required_capabilities().difference(self.link.caps);
        if !not_negotiated.is_empty() {
            return Err(SessionError::EncodingNotNegotiated(not_negotiated));
        }
        let memory_bytes = inc.identity.memory_bytes;
        let len = view.byte_len() as u64;
        if view
            .first_gpa()
            .checked_add(len)
            .is_none_or(|end| end > memory_bytes)
        {
            return Err(SessionError::PageOutOfRange {
                first_gpa: view.first_gpa(),
                len,
                memory_bytes,
            });
        }
        if let Some(data) = apply_run(
            &view,
            &mut inc.maybe_nonzero,
            inc.page_digest.as_mut(),
            memory,
            &mut self.delta_scratch,
            &mut self.spare_page_buffers,
        )? {
            self.pending_page_bytes += data.len();
            self.events.push_back(DestinationEvent::Pages {
                first_gpa: view.first_gpa(),
                data,
            });
        }
        Ok(())
    }

    fn send(&mut self, msg: &Message, now: Instant) {
        let _ = self.link.send(msg, now);
    }

    fn fail(&mut self, error: SessionError, now: Instant) {
        if self.state.is_terminal() {
            return;
        }
        let silent = matches!(
            error,
            SessionError::PeerAborted { .. }
                | SessionError::PeerCancelled
                | SessionError::ConnectionClosed { .. }
        );
        if !silent {
            self.send(
                &Message::Abort(Abort::new(error.abort_reason(), &error.to_string())),
                now,
            );
        }
        // Only the source's own Abort or Cancel settles a commit we acknowledged: the source
        // sends either only while it still owns the VM (never after it completed), so it
        // never saw the acknowledgement and kept the VM.
        let error = if self.state == DestinationState::AwaitingRelease
            && !matches!(
                error,
                SessionError::PeerAborted { .. } | SessionError::PeerCancelled
            ) {
            SessionError::InDoubt(Box::new(error))
        } else {
            error
        };
        self.state = DestinationState::Failed;
        self.error = Some(error.clone());
        self.events.push_back(DestinationEvent::Failed(error));
    }

    /// When `handle_timeout` should be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self
            .state
            .waits_for_peer()
            .then(|| self.link.last_rx + self.config.idle_timeout);
        let other = self.deadlines.next(
            self.state,
            self.config.handshake_timeout,
            self.config.frame_timeout,
        );
        match (idle, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fails the session if the source stayed silent past the idle timeout, took too long
    /// over the handshake or over one frame.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state.waits_for_peer() && now >= self.link.last_rx + self.config.idle_timeout {
            self.fail(
                SessionError::Timeout {
                    state: self.state.name(),
                },
                now,
            );
        } else if let Some(e) = self.deadlines.expired(
            self.state,
            self.config.handshake_timeout,
            self.config.frame_timeout,
            now,
        ) {
            self.fail(e, now);
        }
    }

    /// The connection ended (EOF or reset).
    pub fn connection_closed(&mut self, now: Instant) {
        // Complete frames held back for the event queue still count: decode them first.
        self.input::<[u8]>(&[], now, None, PendingLimit::Unbounded);
        let partial_frame_bytes = self.link.reader.buffered();
        self.fail(
            SessionError::ConnectionClosed {
                partial_frame_bytes,
            },
            now,
        );
    }

    /// Accepts the offered VM: the source starts sending.
    pub fn accept_offer(&mut self, now: Instant) -> Result<(), UsageError> {
        self.require("accept the offer", DestinationState::AwaitingDecision)?;
        self.send(&Message::Accept, now);
        self.state = DestinationState::Receiving;
        self.link.last_rx = now;
        Ok(())
    }

    /// Refuses the offered VM with an explanation for the source's operator.
    pub fn reject_offer(&mut self, why: &str, now: Instant) -> Result<(), UsageError> {
        self.require("reject the offer", DestinationState::AwaitingDecision)?;
        self.fail(SessionError::Rejected(String::from(why)), now);
        Ok(())
    }

    /// Ends the session because of a local failure (e.g. the VM refused a vCPU state): the
    /// source reads `why` in the `Abort` and keeps its VM. After the commit was acknowledged
    /// this has the same effect as any other failure there (in doubt).
    pub fn abort_locally(&mut self, why: &str, now: Instant) {
        self.fail(SessionError::Rejected(String::from(why)), now);
    }

    /// Reports the whole-memory digest of the destination's memory after applying every
    /// page, when `CommitRequested` carried the source's (version 2, or version 3 with
    /// `verify full`). Equal: the commit is acknowledged. Different: the migration fails.
    pub fn report_digest(&mut self, computed: Digest, now: Instant) -> Result<(), UsageError> {
        self.require("report the digest", DestinationState::AwaitingDigestCheck)?;
        let Some(expected) = self.incoming.as_ref().and_then(|i| i.digest) else {
            return Err(UsageError::WrongState {
                operation: "report a digest the source did not send",
                state: self.state.name(),
            });
        };
        if constant_time_eq(&expected, &computed) {
            self.acknowledge_commit(now);
        } else {
            self.fail(SessionError::DigestMismatch { expected, computed }, now);
        }
        Ok(())
    }

    /// Acknowledges the commit when `CommitRequested` carried no whole-memory digest
    /// (version 3: the session already verified the page digest when `Commit` arrived). The
    /// caller calls this once it has loaded and checked the vCPU and device state: after the
    /// acknowledgement the source gives the VM up.
    pub fn confirm_commit(&mut self, now: Instant) -> Result<(), UsageError> {
        self.require("confirm the commit", DestinationState::AwaitingDigestCheck)?;
        if self.incoming.as_ref().is_some_and(|i| i.digest.is_some()) {
            return Err(UsageError::WrongState {
                operation: "confirm the commit without the memory digest the source sent",
                state: self.state.name(),
            });
        }
        self.acknowledge_commit(now);
        Ok(())
    }

    fn acknowledge_commit(&mut self, now: Instant) {
        self.send(&Message::CommitAck, now);
        self.state = DestinationState::AwaitingRelease;
        self.link.last_rx = now;
        self.events.push_back(DestinationEvent::Committed);
    }

    fn require(&self, operation: &'static str, state: DestinationState) -> Result<(), UsageError> {
        if self.state == state {
            Ok(())
        } else {
            Err(UsageError::WrongState {
                operation,
                state: self.state.name(),
            })
        }
    }
}
