//! `block_migrate`: moving a running VM's disk to another backend on the same host (like
//! QEMU's drive-mirror or Storage vMotion).
//!
//! How: the source stays authoritative throughout: it answers every guest request. Every
//! guest write and discard is applied to the source first, then mirrored to the target; a
//! bulk pass copies the disk chunk by chunk behind that. Because both backends complete
//! inside `submit` and the hypervisor is one loop, a chunk copy never interleaves with a
//! guest write, so once the bulk pass has reached the end the target equals the source and
//! stays equal. A verification pass then compares BLAKE3 digests of every chunk on both
//! sides (catching a backend that lies), and only then the target takes over. Any failure
//! (a target write, a digest mismatch) or `block_migrate_cancel` ends the move with the
//! source kept and untouched by the move: the target's contents are then undefined.
//!
//! Phases: Copying -> Verifying -> Verified (cut over), or -> Failed / Cancelled (source
//! kept). `VmDisk::step` performs the swap once no guest completion is pending.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::vm_disk::VmDisk;
use crate::vm::virtio_blk::backend::{
    BackendError, BlockBackend, BlockCompletion, BlockOp, SECTOR_SIZE,
};

/// Bytes copied or verified per chunk: 64 KiB (128 sectors, one PIO command's worth).
pub const CHUNK_BYTES: u64 = 64 * 1024;

/// Where a move is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorPhase {
    /// Bulk copy, writes mirrored.
    Copying,
    /// Comparing digests of both sides, writes mirrored.
    Verifying,
    /// Both sides equal: the target takes over at the next step.
    Verified,
    /// Stopped by the operator: the source stays.
    Cancelled,
    /// Stopped by an error: the source stays.
    Failed(String),
}

/// A move's figures, for `info block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorProgress {
    /// `ram->host` etc.
    pub kind: &'static str,
    /// The phase.
    pub phase: MirrorPhase,
    /// Disk size in bytes.
    pub total_bytes: u64,
    /// Bytes the bulk pass has copied.
    pub copied_bytes: u64,
    /// Bytes verified.
    pub verified_bytes: u64,
    /// Guest writes and discards mirrored to the target.
    pub mirrored_writes: u64,
}

impl fmt::Display for MirrorProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |n: u64| (n * 100).checked_div(self.total_bytes).unwrap_or(100);
        write!(f, "block_migrate {}: ", self.kind)?;
        match &self.phase {
            MirrorPhase::Copying => write!(
                f,
                "copying {}% ({} of {} KiB)",
                pct(self.copied_bytes),
                self.copied_bytes / 1024,
                self.total_bytes / 1024
            )?,
            MirrorPhase::Verifying => write!(f, "verifying {}%", pct(self.verified_bytes))?,
            MirrorPhase::Verified => write!(f, "verified, cutting over")?,
            MirrorPhase::Cancelled => write!(f, "cancelled, source kept")?,
            MirrorPhase::Failed(why) => write!(f, "failed ({why}), source kept")?,
        }
        write!(f, ", {} writes mirrored", self.mirrored_writes)
    }
}

/// How a move ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorOutcome {
    /// The target is the VM's disk now.
    CutOver {
        /// `ram->host` etc.
        kind: &'static str,
        /// Bytes copied by the bulk pass.
        copied_bytes: u64,
        /// Guest writes mirrored during the move.
        mirrored_writes: u64,
    },
    /// The source is still the VM's disk.
    SourceKept {
        /// `ram->host` etc.
        kind: &'static str,
        /// Why (cancelled, or the error).
        why: String,
    },
}

impl fmt::Display for MirrorOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CutOver {
                kind,
                copied_bytes,
                mirrored_writes,
            } => write!(
                f,
                "block_migrate {kind}: done, {} KiB copied, {mirrored_writes} writes mirrored, \
                 digests verified, cut over",
                copied_bytes / 1024
            ),
            Self::SourceKept { kind, why } => {
                write!(f, "block_migrate {kind}: {why}; the source disk is kept")
            }
        }
    }
}

/// A running move.
pub struct BlockMirror {
    source: VmDisk,
    target: VmDisk,
    kind: &'static str,
    phase: MirrorPhase,
    copied: u64,
    verified: u64,
    mirrored_writes: u64,
    done: VecDeque<BlockCompletion>,
}

fn kind_of(source: &VmDisk, target: &VmDisk) -> &'static str {
    match (source.kind(), target.kind()) {
        ("ram", "host") => "ram->host",
        ("host", "ram") => "host->ram",
        ("ram", "ram") => "ram->ram",
        ("host", "host") => "host->host",
        _ => "?->?",
    }
}

impl BlockMirror {
    /// A move from `source` to `target` (same size, checked by the caller).
    pub fn new(source: VmDisk, target: VmDisk) -> Self {
        Self {
            kind: kind_of(&source, &target),
            source,
            target,
            phase: MirrorPhase::Copying,
            copied: 0,
            verified: 0,
            mirrored_writes: 0,
            done: VecDeque::new(),
        }
    }

    /// `ram->host` etc.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The authoritative side.
    pub fn source(&self) -> &VmDisk {
        &self.source
    }

    /// The figures.
    pub fn progress(&self) -> MirrorProgress {
        MirrorProgress {
            kind: self.kind,
            phase: self.phase.clone(),
            total_bytes: self.source.size_bytes(),
            copied_bytes: self.copied,
            verified_bytes: self.verified,
            mirrored_writes: self.mirrored_writes,
        }
    }

    /// Stops the move at the next step; the source stays.
    pub fn cancel(&mut self) {
        if matches!(self.phase, MirrorPhase::Copying | MirrorPhase::Verifying) {
            self.phase = MirrorPhase::Cancelled;
        }
    }

    fn mirroring(&self) -> bool {
        matches!(self.phase, MirrorPhase::Copying | MirrorPhase::Verifying)
    }

    /// Whether the move has ended (cut-over or fallback due).
    pub fn finished(&self) -> bool {
        !self.mirroring()
    }

    /// Whether guest completions wait to be collected (no swap before they are).
    pub fn has_pending_completions(&self) -> bool {
        !self.done.is_empty()
    }

    fn fail(&mut self, why: String) {
        if self.mirroring() {
            log::warn!("block_migrate {}: {why}", self.kind);
            self.phase = MirrorPhase::Failed(why);
        }
    }

    fn collect_source(&mut self) {
        while let Some(c) = self.source.poll_completion() {
            self.done.push_back(c);
        }
    }

    /// A guest request: the source executes it; writes and discards (and flushes) are then
    /// repeated on the target while the move runs.
    pub fn submit(&mut self, tag: u64, op: BlockOp) {
        let mirror = match &op {
            BlockOp::Write { .. } | BlockOp::Discard { .. } | BlockOp::Flush => {
                self.mirroring().then(|| op.clone())
            }
            BlockOp::Read { .. } => None,
        };
        self.source.submit(tag, op);
        self.collect_source();
        let Some(op) = mirror else {
            return;
        };
        // A write the source refused (out of range) is refused by the target too: only the
        // source's answer matters to the guest, and the sides stay equal.
        let source_ok = self
            .done
            .iter()
            .rev()
            .find(|c| c.tag == tag)
            .is_some_and(|c| c.result.is_ok());
        if !source_ok {
            return;
        }
        let mut stray = Vec::new();
        let result = self.target.run_sync(op, &mut stray);
        self.done.extend(stray);
        match result {
            Ok(_) => self.mirrored_writes += 1,
            Err(e) => self.fail(format!("the target refused a mirrored write: {e}")),
        }
    }

    /// The next guest completion.
    pub fn poll_completion(&mut self) -> Option<BlockCompletion> {
        self.collect_source();
        self.done.pop_front()
    }

    fn read_chunk(
        side: &mut VmDisk,
        at: u64,
        len: u64,
        stray: &mut Vec<BlockCompletion>,
    ) -> Result<Vec<u8>, BackendError> {
        side.run_sync(
            BlockOp::Read {
                sector: at / SECTOR_SIZE,
                len: len as u32,
            },
            stray,
        )
    }

    /// Copies or verifies at most `budget_bytes` (at least one chunk).
    pub fn step(&mut self, budget_bytes: u64) {
        let total = self.source.size_bytes();
        let mut spent = 0u64;
        let mut stray = Vec::new();
        while self.mirroring() && spent < budget_bytes.max(1) {
            match self.phase {
                MirrorPhase::Copying => {
                    if self.copied >= total {
                        self.phase = MirrorPhase::Verifying;
                        continue;
                    }
                    let len = CHUNK_BYTES.min(total - self.copied);
                    let at = self.copied;
                    let data = match Self::read_chunk(&mut self.source, at, len, &mut stray) {
                        Ok(d) => d,
                        Err(e) => {
                            self.fail(format!("reading the source at byte {at}: {e}"));
                            break;
                        }
                    };
                    let op = BlockOp::Write {
                        sector: at / SECTOR_SIZE,
                        data,
                    };
                    if let Err(e) = self.target.run_sync(op, &mut stray) {
                        self.fail(format!("writing the target at byte {at}: {e}"));
                        break;
                    }
                    self.copied += len;
                    spent += len;
                }
                MirrorPhase::Verifying => {
                    if self.verified >= total {
                        self.phase = MirrorPhase::Verified;
                        break;
                    }
                    let len = CHUNK_BYTES.min(total - self.verified);
                    let at = self.verified;
                    let src = Self::read_chunk(&mut self.source, at, len, &mut stray);
                    let dst = Self::read_chunk(&mut self.target, at, len, &mut stray);
                    match (src, dst) {
                        (Ok(a), Ok(b)) if blake3::hash(&a) == blake3::hash(&b) => {}
                        (Ok(_), Ok(_)) => {
                            self.fail(format!(
                                "digest mismatch in the {} KiB at byte {at}",
                                len / 1024
                            ));
                            break;
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            self.fail(format!("reading for verification at byte {at}: {e}"));
                            break;
                        }
                    }
                    self.verified += len;
                    spent += len;
                }
                _ => break,
            }
        }
        self.done.extend(stray);
    }

    /// Splits an ended move into the disk to keep and how it ended.
    pub fn into_outcome(self) -> (VmDisk, MirrorOutcome) {
        match self.phase {
            MirrorPhase::Verified => (
                self.target,
                MirrorOutcome::CutOver {
                    kind: self.kind,
                    copied_bytes: self.copied,
                    mirrored_writes: self.mirrored_writes,
                },
            ),
            MirrorPhase::Cancelled => (
                self.source,
                MirrorOutcome::SourceKept {
                    kind: self.kind,
                    why: "cancelled".into(),
                },
            ),
            MirrorPhase::Failed(why) => (
                self.source,
                MirrorOutcome::SourceKept {
                    kind: self.kind,
                    why,
                },
            ),
            MirrorPhase::Copying | MirrorPhase::Verifying => (
                self.source,
                MirrorOutcome::SourceKept {
                    kind: self.kind,
                    why: "ended before verification".into(),
                },
            ),
        }
    }
}
