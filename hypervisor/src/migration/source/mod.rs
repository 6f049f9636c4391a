//! The source engine: drives a `SourceSession` over a [`Transport`] for one VM.
//!
//! ```text
//! migrate ─► Connecting ─► Handshake ─► Sending(round 0: all pages) ─► end of round:
//!            harvest, measure, decide ─┬─► Sending(round n+1: dirty pages, maybe throttled)
//!                                      └─► pause ─► Sending(final: last dirty pages)
//!            ─► vCPU + device state, memory digest, Commit ─► AwaitingCommit ─► Completed
//! any failure before Completed ─► stop tracking, unthrottle, resume: the VM runs here on
//! ```
//! Cold migration pauses the VM when it starts and sends one full round. The engine is
//! polled from the host's main loop with the current time; it never blocks and never reads
//! a clock, so the host simulation in `migration::sim` drives it exactly like the kernel.

mod disks;
mod error;
mod rounds;
mod vm;

pub use error::{SourceError, SourceStep};
pub use vm::MigratableVm;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use migration_proto::cpu::CpuDescriptor;
use migration_proto::crypto::PreSharedKey;
use migration_proto::digest::MemoryDigester;
use migration_proto::dirty::DirtyBitmap;
use migration_proto::message::Progress;
use migration_proto::session::{Instant, SourceConfig, SourceEvent, SourceSession};
use migration_proto::wire::{MAX_PAGES_PER_FRAME, PAGE_SIZE};

use super::convergence::ConvergencePolicy;
use super::params::MigrationParams;
use super::report::{FinalStats, MigrationInfo};
use super::transport::Transport;

/// How long the TCP connection may take to establish.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Output buffered inside the session before page sends are refused: small, so that
/// "sent" means "on the wire or nearly" and measured throughput is honest.
const SESSION_OUTPUT_LIMIT: usize = 128 * 1024;
/// Largest burst the bandwidth cap allows, in milliseconds of the cap.
const BANDWIDTH_BURST_MS: u64 = 20;

enum Phase {
    Connecting,
    Handshake,
    Sending {
        bitmap: DirtyBitmap,
        next_pfn: usize,
        final_copy: bool,
    },
    /// VM paused, everything sent but the digest: hash guest memory a slice per poll, so
    /// that the last pages and the state reach the destination (which hashes its copy in
    /// parallel) while we hash.
    Hashing {
        digester: Box<MemoryDigester>,
        next_gpa: u64,
    },
    AwaitingCommit,
    Finished,
}

/// How a migration ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceOutcome {
    /// The destination owns the VM: destroy the (paused) local copy. For a snapshot
    /// (`keep_vm_after_commit`) the destination holds a copy and the VM runs on here.
    Completed(FinalStats),
    /// The VM was resumed here, intact; the error says why the migration failed.
    Failed(SourceError),
}

/// One outgoing migration.
pub struct SourceEngine {
    session: SourceSession,
    params: MigrationParams,
    cold: bool,
    phase: Phase,
    policy: ConvergencePolicy,
    paused_by_us: bool,
    tracking: bool,
    started: Instant,
    round_started: Instant,
    paused_at: Option<Instant>,
    /// When the last pages and the state were queued, and when the commit was sent.
    state_queued_at: Option<Instant>,
    commit_sent_at: Option<Instant>,
    memory_bytes: u64,
    stats: FinalStats,
    round: u32,
    round_wire_bytes: u64,
    /// The last round's measurements (round and byte counts are filled in by `info`).
    last_info: Progress,
    tokens: u64,
    tokens_at: Instant,
    scratch: Vec<u8>,
    lines: VecDeque<String>,
    outcome: Option<SourceOutcome>,
    closed: bool,
    broken: bool,
    /// The fault of `params.fault_inject` has been applied (once per migration).
    fault_injected: bool,
    /// When the connection was established (the handshake round trip is measured from it).
    established_at: Option<Instant>,
    /// Next page `verify sample` re-hashes (a sweep over all of memory across rounds).
    sample_cursor: usize,
    /// Wire bytes per data-carrying page of the last live round (downtime estimate).
    wire_bytes_per_page: u64,
    /// Pages with data (raw or LZ4) sent in the current round.
    round_data_pages: u64,
    /// Whether page work is allowed this poll (`cpu-budget`; ignored while the VM is
    /// paused).
    pages_allowed: bool,
    /// Storage migration (`migrate -b`): each disk's copy state (empty otherwise).
    disks: Vec<disks::DiskCopy>,
    /// Snapshot: the source keeps (and resumes) its VM after the commit.
    keeps_vm: bool,
    /// Snapshot: when the VM was resumed (once the commit was sent).
    resumed_at: Option<Instant>,
}

impl SourceEngine {
    /// Starts migrating `vm` (connection set up by the caller's transport). A cold
    /// migration pauses the VM right away.
    pub fn new(
        vm: &mut impl MigratableVm,
        key: PreSharedKey,
        cpu: CpuDescriptor,
        params: MigrationParams,
        cold: bool,
        nonce: [u8; 32],
        now: Instant,
    ) -> Self {
        let identity = vm.identity();
        let memory_bytes = identity.memory_bytes;
        let mut config = SourceConfig::new(key, identity, cpu);
        config.output_limit = SESSION_OUTPUT_LIMIT;
        config.delta_cache_bytes =
            usize::try_from(params.delta_cache_mib << 20).unwrap_or(usize::MAX);
        let disks: Vec<disks::DiskCopy> = if params.block_migration {
            vm.disks().into_iter().map(disks::DiskCopy::new).collect()
        } else {
            Vec::new()
        };
        config.disks = disks.iter().map(|d| d.disk.clone()).collect();
        if cold {
            vm.pause();
        }
        SourceEngine {
            session: SourceSession::new(config, nonce, now),
            params,
            cold,
            phase: Phase::Connecting,
            policy: ConvergencePolicy::new(params.convergence),
            paused_by_us: cold,
            tracking: false,
            started: now,
            round_started: now,
            paused_at: cold.then_some(now),
            state_queued_at: None,
            commit_sent_at: None,
            memory_bytes,
            stats: FinalStats {
                memory_bytes,
                estimated_downtime_us: u64::MAX,
                ..FinalStats::default()
            },
            round: 0,
            round_wire_bytes: 0,
            last_info: Progress {
                expected_downtime_us: u64::MAX,
                ..Progress::default()
            },
            tokens: 0,
            tokens_at: now,
            scratch: vec![0; MAX_PAGES_PER_FRAME * PAGE_SIZE],
            lines: VecDeque::new(),
            outcome: None,
            closed: false,
            broken: false,
            fault_injected: false,
            established_at: None,
            sample_cursor: 0,
            wire_bytes_per_page: 0,
            round_data_pages: 0,
            pages_allowed: true,
            disks,
            keeps_vm: false,
            resumed_at: None,
        }
    }

    /// The outcome once the migration has ended.
    pub fn outcome(&self) -> Option<&SourceOutcome> {
        self.outcome.as_ref()
    }

    /// Lines for the console (progress, result), oldest first.
    pub fn take_line(&mut self) -> Option<String> {
        self.lines.pop_front()
    }

    /// The connection's endpoints as this host sees them (its own, the one dialed): the
    /// handshake is bound to them (protocol v3), so a redirected connection fails.
    pub fn set_endpoints(&mut self, endpoints: migration_proto::crypto::Endpoints) {
        self.session.set_endpoints(endpoints);
    }

    /// Whether the next polls may read and encode pages while the VM runs (the caller's CPU
    /// budget, `migration::cpu_budget`); the connection is served either way, and a paused
    /// VM's pages always move.
    pub fn allow_page_work(&mut self, allowed: bool) {
        self.pages_allowed = allowed;
    }

    /// Snapshot mode (`snapshot` console command): after `Completed` the VM stays on this
    /// host and runs on, resumed here if the migration paused it. The protocol is
    /// unchanged (the destination sees an ordinary migration and commits a copy): whether
    /// the source keeps running its VM is the source's business once the copy committed.
    pub fn keep_vm_after_commit(&mut self) {
        self.keeps_vm = true;
    }

    /// Whether this is a snapshot (the VM stays here after the commit).
    pub fn keeps_vm(&self) -> bool {
        self.keeps_vm
    }

    /// Whether the VM is paused by this migration (stop-and-copy, or cold).
    pub fn vm_paused(&self) -> bool {
        self.paused_by_us
    }

    /// Operator cancel (`migrate_cancel`): takes effect at the next poll.
    pub fn cancel(&mut self, now: Instant) {
        if self.outcome.is_none() {
            self.session.cancel(now);
        }
    }

    /// `info migrate`.
    pub fn info(&self, now: Instant) -> MigrationInfo {
        let (state, remaining_pages) = match &self.phase {
            Phase::Connecting | Phase::Handshake => ("connecting", 0),
            Phase::Sending {
                bitmap,
                next_pfn,
                final_copy,
            } => (
                if *final_copy {
                    "stop-and-copy"
                } else {
                    "pre-copy"
                },
                bitmap.iter_set_from(*next_pfn).count() as u64,
            ),
            Phase::Hashing { .. } => ("stop-and-copy", 0),
            Phase::AwaitingCommit => ("committing", 0),
            Phase::Finished => match self.outcome {
                Some(SourceOutcome::Completed(_)) => ("completed", 0),
                _ => ("failed", 0),
            },
        };
        MigrationInfo {
            state,
            cold: self.cold,
            progress: Progress {
                // Rounds count from 1 everywhere (progress lines, `info migrate`, the final
                // statistics); the stop-and-copy pass is the last round.
                round: self.round + 1,
                bytes_sent: self.stats.wire_bytes,
                bytes_remaining: remaining_pages * PAGE_SIZE as u64
                    + self.disks.iter().map(|d| d.remaining_bytes()).sum::<u64>()
                    + self.session.pending_output().len() as u64,
                ..self.last_info
            },
            throttle_percent: self.policy.throttle(),
            dirty_limit: self.policy.brake().dirty_limit,
            elapsed_us: now.saturating_since(self.started).as_micros() as u64,
        }
    }

    /// Advances the migration: reads, reacts to the session, sends, flushes. Returns the
    /// outcome once it is known (the same outcome on every later call).
    pub fn poll(
        &mut self,
        vm: &mut impl MigratableVm,
        link: &mut impl Transport,
        now: Instant,
    ) -> Option<&SourceOutcome> {
        if self.outcome.is_none() {
            self.step(vm, link, now);
        }
        if self.outcome.is_some() && !self.closed {
            // Let the peer hear our Abort or Release before the connection goes.
            self.flush(link, now);
            if self.session.pending_output().is_empty() || self.broken {
                link.close();
                self.closed = true;
            }
        }
        self.outcome.as_ref()
    }

    fn step(&mut self, vm: &mut impl MigratableVm, link: &mut impl Transport, now: Instant) {
        if matches!(self.phase, Phase::Connecting) {
            if link.is_established() {
                self.phase = Phase::Handshake;
                self.tokens_at = now;
                self.established_at = Some(now);
            } else if link.send(&[]).is_err() {
                self.rollback(vm, SourceError::ConnectionRefused);
                return;
            } else if now.saturating_since(self.started) >= CONNECT_TIMEOUT {
                link.close();
                self.rollback(vm, SourceError::ConnectTimeout);
                return;
            } else {
                return;
            }
        }
        self.receive(link, now);
        if self.session.poll_timeout().is_some_and(|t| now >= t) {
            self.session.handle_timeout(now);
        }
        while let Some(event) = self.session.poll_event() {
            match event {
                SourceEvent::Accepted { .. } => {
                    if let Err(e) = self.on_accepted(vm, now) {
                        self.abort(vm, link, now, e);
                    }
                }
                SourceEvent::Completed => self.on_completed(vm, now),
                SourceEvent::Failed(e) => self.rollback(vm, SourceError::Session(e)),
            }
            if self.outcome.is_some() {
                return;
            }
        }
        if (self.pages_allowed || self.paused_by_us)
            && let Err(e) = self.send_pages(vm, now)
        {
            self.abort(vm, link, now, e);
            return;
        }
        self.flush(link, now);
    }

    fn receive(&mut self, link: &mut impl Transport, now: Instant) {
        let mut buf = [0u8; 2048];
        loop {
            match link.recv(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.session.handle_input(&buf[..n], now),
                Err(_) => {
                    self.session.connection_closed(now);
                    break;
                }
            }
        }
    }

    /// Moves buffered output to the transport, within the bandwidth cap.
    fn flush(&mut self, link: &mut impl Transport, now: Instant) {
        let mut allowed = usize::MAX;
        if self.params.max_bandwidth_mib > 0 {
            let per_sec = self.params.max_bandwidth_mib << 20;
            let elapsed_us = now.saturating_since(self.tokens_at).as_micros() as u64;
            let burst = (per_sec * BANDWIDTH_BURST_MS / 1000).max(4096);
            self.tokens = (self.tokens + per_sec * elapsed_us / 1_000_000).min(burst);
            self.tokens_at = now;
            allowed = usize::try_from(self.tokens).unwrap_or(usize::MAX);
        }
        let pending = self.session.pending_output();
        let take = pending.len().min(allowed);
        if take == 0 {
            return;
        }
        match link.send(&pending[..take]) {
            Ok(n) => {
                self.session.consume_output(n);
                self.stats.wire_bytes += n as u64;
                self.round_wire_bytes += n as u64;
                self.tokens = self.tokens.saturating_sub(n as u64);
            }
            Err(_) => {
                self.broken = true;
                self.session.connection_closed(now);
            }
        }
    }

    /// Any failure before the commit: the VM runs on here as if nothing had happened.
    fn rollback(&mut self, vm: &mut impl MigratableVm, why: SourceError) {
        self.release_vm(vm);
        if self.paused_by_us {
            vm.resume();
            self.paused_by_us = false;
        }
        self.lines.push_back(alloc::format!(
            "migrate: failed: {why}; the VM keeps running on this host"
        ));
        self.phase = Phase::Finished;
        self.outcome = Some(SourceOutcome::Failed(why));
    }

    /// A local failure: tell the peer (the session's Abort) and roll back.
    fn abort(
        &mut self,
        vm: &mut impl MigratableVm,
        link: &mut impl Transport,
        now: Instant,
        why: SourceError,
    ) {
        self.session.cancel(now);
        while self.session.poll_event().is_some() {}
        self.flush(link, now);
        self.rollback(vm, why);
    }

    /// Ends what the migration did to the VM besides pausing it: tracking, throttle, limit.
    fn release_vm(&mut self, vm: &mut impl MigratableVm) {
        if self.tracking {
            vm.stop_dirty_tracking();
            self.tracking = false;
        }
        vm.set_throttle(0);
        vm.set_dirty_limit(None);
    }

    fn on_completed(&mut self, vm: &mut impl MigratableVm, now: Instant) {
        self.release_vm(vm);
        self.stats.total_us = now.saturating_since(self.started).as_micros() as u64;
        // A snapshot's VM ran again from `resumed_at`; a migrated VM is down until now.
        let down_until = self.resumed_at.unwrap_or(now);
        self.stats.downtime_us = self
            .paused_at
            .map_or(0, |p| down_until.saturating_since(p).as_micros() as u64);
        self.stats.rounds = self.round + 1;
        self.lines.push_back(alloc::format!("{}", self.stats));
        if let (Some(paused), Some(queued), Some(committed)) =
            (self.paused_at, self.state_queued_at, self.commit_sent_at)
        {
            let ms = |a: Instant, b: Instant| b.saturating_since(a).as_millis();
            self.lines.push_back(alloc::format!(
                "migrate: downtime = {} ms last pages + state queued, {} ms whole-memory digest ({}), {} ms until the commit acknowledgement",
                ms(paused, queued),
                ms(queued, committed),
                if self.full_digest() {
                    "verify full"
                } else {
                    "none: page digest"
                },
                ms(committed, now)
            ));
        }
        if self.keeps_vm && self.paused_by_us {
            vm.resume();
            self.paused_by_us = false;
        }
        self.phase = Phase::Finished;
        self.outcome = Some(SourceOutcome::Completed(self.stats));
    }
}
