//! The destination engine: receives one VM over a [`Transport`] into a freshly built VM.
//!
//! ```text
//! accept ─► handshake (version, key proofs, CPU check: refused before any memory moves)
//!        ─► Offer: build the VM (refused when it does not fit) ─► pages decoded straight
//!           into its RAM, page by page, each hashed where it landed (page digest, v3)
//!        ─► vCPU / device state loaded ─► Commit: the session compared the page digests;
//!           (verify full / v2 peer: digest of our RAM == source's?) ─► CommitAck
//!        ─► Release ─► the caller starts the VM
//! any failure before CommitAck ─► the half-built VM is discarded; the source still has it
//! connection lost after CommitAck, before Release ─► in doubt: the VM is kept, paused, for
//!        the operator (the source completed iff it got CommitAck; see `in_doubt`)
//! ```

mod error;

pub use error::DestinationError;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;

use migration_proto::cpu::CpuDescriptor;
use migration_proto::crypto::PreSharedKey;
use migration_proto::digest::MemoryDigester;
use migration_proto::message::{DeviceState, DiskDescriptor, VcpuState, VmIdentity};
use migration_proto::session::{
    DestinationConfig, DestinationEvent, DestinationSession, DestinationState, GuestMemory,
    Instant, SessionError,
};
use migration_proto::wire::MessageType;

use super::transport::Transport;
use super::vm_error::VmError;

/// A VM being built from an incoming stream; its memory starts zero-filled.
///
/// Pages are decoded by the session straight into guest frames (`page_mut`), and hashed
/// there for the page digest: no copy, no allocation, and what is verified is the memory
/// the VM will run on.
pub trait IncomingVm {
    /// The guest page at `gpa` (page aligned, 4096 bytes), or `None` outside RAM.
    fn page_mut(&mut self, gpa: u64) -> Option<&mut [u8]>;
    /// Loads one vCPU's state.
    fn load_vcpu(&mut self, state: &VcpuState) -> Result<(), VmError>;
    /// Restores one device model.
    fn load_device(&mut self, state: &DeviceState) -> Result<(), VmError>;
    /// Copies guest memory at `gpa` into `out` (for the whole-memory digest).
    fn read_memory(&mut self, gpa: u64, out: &mut [u8]) -> Result<(), VmError>;
    /// Storage migration: gives the VM an empty disk like `disk` (before any block).
    fn create_disk(&mut self, disk: &DiskDescriptor) -> Result<(), VmError> {
        Err(VmError::Disk(format!(
            "this host cannot receive disk {} (no disk backend)",
            disk.name
        )))
    }
    /// Storage migration: writes whole blocks of disk `disk_id` from block `lba` (the
    /// session checked the range against the manifest).
    fn write_disk(&mut self, disk_id: u32, _lba: u64, _data: &[u8]) -> Result<(), VmError> {
        Err(VmError::Disk(format!("no disk {disk_id} here")))
    }
}

/// An incoming VM's RAM as the session's page-granular `GuestMemory`.
struct IncomingRam<'a, V>(&'a mut V);

impl<V: IncomingVm> GuestMemory for IncomingRam<'_, V> {
    fn page_mut(&mut self, gpa: u64) -> Option<&mut [u8]> {
        self.0.page_mut(gpa)
    }
}

/// Builds and discards incoming VMs (allocates their memory).
pub trait IncomingVmFactory {
    /// The VM type.
    type Vm: IncomingVm;
    /// A paused VM for `identity`, or why not (e.g. out of memory).
    fn create(&mut self, identity: &VmIdentity) -> Result<Self::Vm, VmError>;
    /// Frees a VM that will never run.
    fn discard(&mut self, vm: Self::Vm);
}

/// How an incoming migration ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationOutcome {
    /// Committed and released: take the VM with [`DestinationEngine::take_vm`] and start it.
    Ready,
    /// Nothing was kept; the error says why (a local failure, a [`DestinationError`],
    /// reaches it as `SessionError::Rejected` with that error's text, the text the source
    /// was sent).
    Failed(SessionError),
    /// The commit was acknowledged but `Release` never came: the VM is kept (take it with
    /// [`DestinationEngine::take_vm`]) and must stay paused until the operator resolves it.
    /// The error is why the release did not arrive.
    InDoubt(SessionError),
}

/// One incoming migration.
pub struct DestinationEngine<V> {
    session: DestinationSession,
    vm: Option<V>,
    identity: Option<VmIdentity>,
    pages_rounds: u32,
    lines: VecDeque<String>,
    outcome: Option<DestinationOutcome>,
    closed: bool,
    /// Digest of our memory computed when the vCPU state arrived (no page since).
    early_digest: Option<[u8; 32]>,
}

impl<V: IncomingVm> DestinationEngine<V> {
    /// Serves one accepted connection.
    /// `max_disk_bytes` is the room this host has for incoming disks (storage migration;
    /// 0 refuses any VM that brings a disk, before anything moves).
    pub fn new(
        key: PreSharedKey,
        cpu: CpuDescriptor,
        max_memory_bytes: u64,
        max_disk_bytes: u64,
        nonce: [u8; 32],
        now: Instant,
    ) -> Self {
        let mut config = DestinationConfig::new(key, cpu, max_memory_bytes);
        config.max_disk_bytes = max_disk_bytes;
        DestinationEngine {
            session: DestinationSession::new(config, nonce, now),
            vm: None,
            identity: None,
            pages_rounds: 0,
            lines: VecDeque::new(),
            outcome: None,
            closed: false,
            early_digest: None,
        }
    }

    /// The connection's endpoints as this host sees them (the source's, its own): the
    /// handshake is bound to them (protocol v3).
    pub fn set_endpoints(&mut self, endpoints: migration_proto::crypto::Endpoints) {
        self.session.set_endpoints(endpoints);
    }

    /// The outcome once known.
    pub fn outcome(&self) -> Option<&DestinationOutcome> {
        self.outcome.as_ref()
    }

    /// The incoming VM's identity once offered.
    pub fn identity(&self) -> Option<&VmIdentity> {
        self.identity.as_ref()
    }

    /// The committed VM (once, after [`DestinationOutcome::Ready`] or
    /// [`DestinationOutcome::InDoubt`]).
    pub fn take_vm(&mut self) -> Option<V> {
        match self.outcome {
            Some(DestinationOutcome::Ready | DestinationOutcome::InDoubt(_)) => self.vm.take(),
            _ => None,
        }
    }

    /// State name for `info migrate`.
    pub fn state_name(&self) -> &'static str {
        self.session.state().name()
    }

    /// Lines for the console, oldest first.
    pub fn take_line(&mut self) -> Option<String> {
        self.lines.pop_front()
    }

    /// Advances the migration.
    pub fn poll<F: IncomingVmFactory<Vm = V>>(
        &mut self,
        factory: &mut F,
        link: &mut impl Transport,
        now: Instant,
    ) -> Option<&DestinationOutcome> {
        if self.outcome.is_none() {
            self.step(factory, link, now);
        }
        self.flush(link, now);
        if self.outcome.is_some() && !self.closed && self.session.pending_output().is_empty() {
            link.close();
            self.closed = true;
        }
        self.outcome.as_ref()
    }

    fn step<F: IncomingVmFactory<Vm = V>>(
        &mut self,
        factory: &mut F,
        link: &mut impl Transport,
        now: Instant,
    ) {
        let mut buf = vec![0u8; 4096];
        loop {
            match link.recv(&mut buf) {
                Ok(0) => break,
                // Once the VM exists, pages go straight into it; before (handshake, offer)
                // no page may arrive.
                Ok(n) => match self.vm.as_mut() {
                    Some(vm) => {
                        self.session
                            .handle_input_into(&buf[..n], now, &mut IncomingRam(vm))
                    }
                    None => self.session.handle_input(&buf[..n], now),
                },
                Err(_) => {
                    self.session.connection_closed(now);
                    break;
                }
            }
            if self.session.state() == DestinationState::Failed {
                break;
            }
        }
        if self.session.poll_timeout().is_some_and(|t| now >= t) {
            self.session.handle_timeout(now);
        }
        while let Some(event) = self.session.poll_event() {
            if let Err(why) = self.on_event(factory, event, now) {
                // A local failure: abort with the reason (the source resumes its VM and its
                // operator reads why); the session's Failed event discards ours.
                self.session.abort_locally(&why.to_string(), now);
                self.lines
                    .push_back(format!("migrate: incoming migration failed: {why}"));
            }
            if self.outcome.is_some() {
                return;
            }
        }
    }

    fn on_event<F: IncomingVmFactory<Vm = V>>(
        &mut self,
        factory: &mut F,
        event: DestinationEvent,
        now: Instant,
    ) -> Result<(), DestinationError> {
        match event {
            DestinationEvent::Offer(identity) => {
                let disks = self
                    .session
                    .disk_manifest()
                    .map(|m| m.disks.clone())
                    .unwrap_or_default();
                let built = factory.create(&identity).and_then(|mut vm| {
                    for disk in &disks {
                        if let Err(e) = vm.create_disk(disk) {
                            factory.discard(vm);
                            return Err(e);
                        }
                    }
                    Ok(vm)
                });
                match built {
                    Ok(vm) => {
                        self.vm = Some(vm);
                        for disk in &disks {
                            self.lines.push_back(format!(
                                "migrate: incoming disk {} ({} KiB), receiving with memory",
                                disk.name,
                                disk.size_bytes / 1024
                            ));
                        }
                        self.session.accept_offer(now)?;
                        self.lines.push_back(format!(
                            "migrate: incoming VM '{}' ({} MiB), receiving",
                            identity.name,
                            identity.memory_bytes >> 20
                        ));
                    }
                    Err(cause) => {
                        let why = DestinationError::CannotBuild {
                            name: identity.name.clone(),
                            cause,
                        };
                        self.session.reject_offer(&why.to_string(), now)?;
                    }
                }
                self.identity = Some(identity);
            }
            DestinationEvent::Pages { first_gpa, .. } => {
                // Only `handle_input` produces these, and only before the VM exists, when
                // the session refuses pages anyway.
                return Err(DestinationError::PagesBeforeVm { first_gpa });
            }
            DestinationEvent::RoundEnd(_) => self.pages_rounds += 1,
            DestinationEvent::Progress(_) | DestinationEvent::Committed => {}
            DestinationEvent::VcpuState(state) => {
                let vm = self
                    .vm
                    .as_mut()
                    .ok_or(DestinationError::BeforeVm("vCPU state"))?;
                vm.load_vcpu(&state)?;
                // A version-2 source sends vCPU state after the last page and then spends a
                // while hashing its own memory: hash ours now, in parallel, so the downtime
                // pays for one digest instead of two. Version 3 needs no whole-memory digest
                // unless the source asks (verify full), which it says only with the commit.
                let page_digest = self
                    .session
                    .negotiated()
                    .is_some_and(|(version, _)| version >= MessageType::PageDigest.since_version());
                if !page_digest && self.early_digest.is_none() {
                    self.early_digest = Some(self.digest()?);
                }
            }
            DestinationEvent::DeviceState(state) => {
                let vm = self
                    .vm
                    .as_mut()
                    .ok_or(DestinationError::BeforeVm("device state"))?;
                vm.load_device(&state)?;
            }
            DestinationEvent::DiskBlocks(blocks) => {
                let vm = self
                    .vm
                    .as_mut()
                    .ok_or(DestinationError::BeforeVm("disk blocks"))?;
                vm.write_disk(blocks.disk_id, blocks.first_lba, &blocks.data)?;
            }
            DestinationEvent::CommitRequested {
                expected_digest: Some(_),
            } => {
                let digest = match self.early_digest.take() {
                    Some(digest) => digest,
                    None => self.digest()?,
                };
                self.session.report_digest(digest, now)?;
            }
            DestinationEvent::CommitRequested {
                expected_digest: None,
            } => {
                // The page digest matched (the session checked it when `Commit` arrived),
                // and every vCPU and device state was loaded without error above.
                self.session.confirm_commit(now)?;
            }
            DestinationEvent::Released => {
                self.lines.push_back(format!(
                    "migrate: incoming VM committed after {} rounds, starting it",
                    self.pages_rounds
                ));
                self.outcome = Some(DestinationOutcome::Ready);
            }
            DestinationEvent::Failed(SessionError::InDoubt(cause)) if self.vm.is_some() => {
                self.lines.push_back(format!(
                    "migrate: incoming VM committed but the release did not arrive ({cause}): \
                     kept paused, in doubt; resolve with migrate_resolve NAME run|discard"
                ));
                self.outcome = Some(DestinationOutcome::InDoubt(*cause));
            }
            DestinationEvent::Failed(e) => {
                if let Some(vm) = self.vm.take() {
                    factory.discard(vm);
                }
                self.lines.push_back(format!(
                    "migrate: incoming migration failed: {e}; nothing kept"
                ));
                self.outcome = Some(DestinationOutcome::Failed(e));
            }
        }
        Ok(())
    }

    fn digest(&mut self) -> Result<[u8; 32], DestinationError> {
        let before_vm = DestinationError::BeforeVm("memory digest");
        let identity = self.identity.as_ref().ok_or(before_vm.clone())?;
        let vm = self.vm.as_mut().ok_or(before_vm)?;
        let mut digester = MemoryDigester::new(identity.memory_bytes);
        let mut chunk = vec![0u8; 64 * 4096];
        let mut gpa = 0;
        while gpa < identity.memory_bytes {
            let len = (identity.memory_bytes - gpa).min(chunk.len() as u64) as usize;
            vm.read_memory(gpa, &mut chunk[..len])?;
            digester.update(&chunk[..len]);
            gpa += len as u64;
        }
        Ok(digester.finalize())
    }

    fn flush(&mut self, link: &mut impl Transport, now: Instant) {
        let pending = self.session.pending_output();
        if pending.is_empty() {
            return;
        }
        match link.send(pending) {
            Ok(n) => self.session.consume_output(n),
            Err(_) => {
                if self.outcome.is_none() {
                    self.session.connection_closed(now);
                } else {
                    self.closed = true;
                }
            }
        }
    }
}
