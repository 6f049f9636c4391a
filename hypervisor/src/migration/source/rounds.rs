//! Rounds: sending a bitmap's pages, measuring, deciding, switching over, committing.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;

use migration_proto::digest::MemoryDigester;
use migration_proto::dirty::DirtyBitmap;
use migration_proto::message::Progress;
use migration_proto::session::Instant;
use migration_proto::wire::{MAX_PAGES_PER_FRAME, PAGE_SIZE};

use super::{MigratableVm, Phase, SourceEngine, SourceError, SourceStep};
use crate::migration::convergence::{Decision, DowntimeEstimate, RoundMeasurement};
use crate::migration::params::{FaultInjection, VerifyMode};
use crate::migration::report::RoundLine;

/// Guest memory hashed per poll during a whole-memory digest (`verify full`, or a
/// version-2 peer): the main loop, and with it the network, gets a turn between slices.
const HASH_BYTES_PER_POLL: u64 = 1 << 20;

/// Clean pages re-hashed per round against what was sent (`verify sample`): 64 KiB of
/// hashing per round sweeps a 16 MiB guest in 256 rounds, a 16 GiB one never; what it buys
/// is a chance per round to catch dirty tracking that silently lost writes, at a cost that
/// does not grow with the VM. `verify full` is the deterministic check.
const SAMPLE_PAGES_PER_ROUND: usize = 16;

/// vCPU and device state sent once the VM is paused, for the downtime estimate (the
/// heartbeat VM's is about 1.5 KiB: the VMX snapshot, the UART, the partial console line).
const STATE_BYTES_ESTIMATE: u64 = 4096;

fn rate(amount: u64, us: u64) -> u64 {
    u64::try_from(u128::from(amount) * 1_000_000 / u128::from(us.max(1))).unwrap_or(u64::MAX)
}

impl SourceEngine {
    pub(super) fn on_accepted(
        &mut self,
        vm: &mut impl MigratableVm,
        now: Instant,
    ) -> Result<(), SourceError> {
        self.round_started = now;
        self.round_wire_bytes = 0;
        let pages = (self.memory_bytes / PAGE_SIZE as u64) as usize;
        if !self.cold {
            vm.start_dirty_tracking(self.params.dirty_tracking)?;
            self.tracking = true;
        }
        self.start_disks(vm)?;
        self.lines.push_back(format!(
            "migrate: accepted by the destination, sending {} pages ({})",
            pages,
            if self.cold { "cold" } else { "live" }
        ));
        self.phase = Phase::Sending {
            bitmap: DirtyBitmap::all_dirty(pages),
            next_pfn: 0,
            final_copy: self.cold,
        };
        Ok(())
    }

    /// Sends pages while the session has room; ends rounds as bitmaps run out.
    pub(super) fn send_pages(
        &mut self,
        vm: &mut impl MigratableVm,
        now: Instant,
    ) -> Result<(), SourceError> {
        loop {
            if matches!(self.phase, Phase::Hashing { .. }) {
                return self.hash_step(vm, now);
            }
            let Phase::Sending {
                bitmap,
                next_pfn,
                final_copy,
            } = &mut self.phase
            else {
                return Ok(());
            };
            let Some((pfn, count)) = bitmap.runs_from(*next_pfn, MAX_PAGES_PER_FRAME).next() else {
                let final_copy = *final_copy;
                // The round's disk blocks follow its pages (storage migration).
                if !self.send_disk_blocks(vm, now)? {
                    return Ok(());
                }
                if !final_copy && !self.session.pending_output().is_empty() {
                    // End a live round only once its pages are on the wire: the round's
                    // throughput is then honest, and switching over does not start the
                    // downtime behind a queue of already-stale pages.
                    return Ok(());
                }
                return if final_copy {
                    self.finish_transfer(vm, now)
                } else {
                    self.end_of_round(vm, now)
                };
            };
            if !self.session.can_send_pages() {
                return Ok(());
            }
            let bytes = &mut self.scratch[..count * PAGE_SIZE];
            let gpa = (pfn * PAGE_SIZE) as u64;
            vm.read_memory(gpa, bytes)?;
            if self.params.fault_inject == FaultInjection::CorruptPage
                && !self.fault_injected
                && pfn + count == bitmap.len()
            {
                // Testing only (see `FaultInjection::CorruptPage`): the last byte of the
                // last page of RAM goes on the wire wrong, after it was hashed.
                self.session.corrupt_next_run_for_testing();
                self.fault_injected = true;
            }
            let counts = self
                .session
                .send_pages(gpa, bytes, now)
                .map_err(SourceStep::SendingPages.refused())?;
            // Zero pages cost two bytes; dirty pages are mostly data, so the estimate's
            // wire size per page counts the pages that carried data.
            self.round_data_pages += counts.raw + counts.lz4;
            *next_pfn = pfn + count;
            self.stats.zero_pages += counts.zero;
            self.stats.raw_pages += counts.raw;
            self.stats.lz4_pages += counts.lz4;
            self.stats.delta_pages += counts.delta;
        }
    }

    fn end_of_round(
        &mut self,
        vm: &mut impl MigratableVm,
        now: Instant,
    ) -> Result<(), SourceError> {
        let duration_us = now.saturating_since(self.round_started).as_micros() as u64;
        let throughput = if self.round_wire_bytes > 0 {
            rate(self.round_wire_bytes, duration_us)
        } else {
            self.last_info.throughput_bytes_per_sec
        };
        if let Some(per_page) = self.round_wire_bytes.checked_div(self.round_data_pages) {
            self.wire_bytes_per_page = per_page;
        }
        // Read the samples before the harvest: a write between the two shows up in the
        // harvest and excuses its page.
        let samples = self.read_samples(vm)?;
        let mut dirty = vm.harvest_dirty()?;
        self.check_samples(&samples, &dirty)?;
        // Dirty disk blocks count as the pages they would fill: the stop phase sends both.
        let disk_bytes = self.harvest_disks(vm, false)?;
        let dirty_pages = dirty.count() as u64 + disk_bytes.div_ceil(PAGE_SIZE as u64);
        let round = self
            .session
            .end_round(dirty_pages, now)
            .map_err(SourceStep::EndingRound.refused())?;
        let expected = self.downtime_estimate(dirty_pages, throughput);
        let decision = self.policy.decide(
            RoundMeasurement {
                round: self.round,
                dirty_pages,
                throughput_bytes_per_sec: throughput,
                expected_downtime_us: expected,
            },
            self.params.downtime_limit_ms,
            self.params.max_rounds,
        );
        self.last_info.dirty_pages_per_sec = rate(dirty_pages, duration_us);
        self.last_info.throughput_bytes_per_sec = throughput;
        self.last_info.expected_downtime_us = expected;
        self.lines.push_back(format!(
            "{}",
            RoundLine {
                round: self.round + 1,
                pages_sent: round.pages_sent,
                dirty_pages,
                throughput_bytes_per_sec: throughput,
                expected_downtime_us: expected,
                brake: self.policy.brake(),
            }
        ));
        let progress = Progress {
            round: self.round + 1,
            bytes_sent: self.stats.wire_bytes,
            bytes_remaining: dirty_pages * PAGE_SIZE as u64,
            dirty_pages_per_sec: self.last_info.dirty_pages_per_sec,
            throughput_bytes_per_sec: throughput,
            expected_downtime_us: expected,
        };
        self.session
            .send_progress(progress, now)
            .map_err(SourceStep::Progress.refused())?;
        self.round += 1;
        self.round_started = now;
        self.round_wire_bytes = 0;
        self.round_data_pages = 0;
        let final_copy = match decision {
            Decision::Continue(brake) => {
                vm.set_throttle(brake.throttle_percent);
                vm.set_dirty_limit(brake.dirty_limit);
                false
            }
            Decision::SwitchOver(reason) => {
                vm.pause();
                self.paused_by_us = true;
                self.paused_at = Some(now);
                self.stats.estimated_downtime_us = expected;
                // Pages and blocks written between the harvest and the pause.
                dirty.merge(&vm.harvest_dirty()?);
                self.harvest_disks(vm, true)?;
                vm.stop_dirty_tracking();
                self.tracking = false;
                if self.params.fault_inject == FaultInjection::DropDirtyBit {
                    self.drop_a_changed_dirty_page(vm, &mut dirty)?;
                }
                self.lines.push_back(format!(
                    "migrate: switching over ({}), VM paused, {} pages left, expected downtime {} ms",
                    reason.describe(),
                    dirty.count(),
                    expected / 1000
                ));
                true
            }
        };
        // From now on the session refuses to commit until each of these was sent again.
        self.session
            .mark_dirty(&dirty)
            .map_err(SourceStep::DirtyPages.refused())?;
        self.phase = Phase::Sending {
            bitmap: dirty,
            next_pfn: 0,
            final_copy,
        };
        Ok(())
    }

    /// Testing only (`FaultInjection::DropDirtyBit`): forget the dirty bit of the first
    /// dirty page whose content really differs from the copy sent (a page dirtied before
    /// its send in the same round is dirty but current, and dropping it would prove
    /// nothing), as tracking that lost a write would.
    fn drop_a_changed_dirty_page(
        &mut self,
        vm: &mut impl MigratableVm,
        dirty: &mut DirtyBitmap,
    ) -> Result<(), SourceError> {
        if self.fault_injected {
            return Ok(());
        }
        let candidates: alloc::vec::Vec<usize> = dirty.iter_set().collect();
        for pfn in candidates {
            let page = &mut self.scratch[..PAGE_SIZE];
            vm.read_memory((pfn * PAGE_SIZE) as u64, page)?;
            if self.session.page_matches_sent(pfn, page) == Some(false) {
                dirty.clear(pfn);
                self.fault_injected = true;
                return Ok(());
            }
        }
        Ok(())
    }

    /// The stop phase's expected cost if the VM paused now with `dirty_pages` left.
    fn downtime_estimate(&self, dirty_pages: u64, throughput: u64) -> u64 {
        let round_trip_us = match (self.established_at, self.session.hello_reply_at()) {
            (Some(sent), Some(reply)) => reply.saturating_since(sent).as_micros() as u64,
            _ => 0,
        };
        DowntimeEstimate {
            dirty_pages,
            wire_bytes_per_page: self.wire_bytes_per_page,
            state_bytes: STATE_BYTES_ESTIMATE,
            throughput_bytes_per_sec: throughput,
            round_trip_us,
        }
        .micros()
    }

    /// `verify sample`: the next few pages of the sweep, as they are now.
    fn read_samples(
        &mut self,
        vm: &mut impl MigratableVm,
    ) -> Result<alloc::vec::Vec<(usize, bool)>, SourceError> {
        let pages = (self.memory_bytes / PAGE_SIZE as u64) as usize;
        if self.params.verify != VerifyMode::Sample || !self.session.uses_page_digest() {
            return Ok(alloc::vec::Vec::new());
        }
        let mut samples = alloc::vec::Vec::with_capacity(SAMPLE_PAGES_PER_ROUND);
        for _ in 0..SAMPLE_PAGES_PER_ROUND.min(pages) {
            let pfn = self.sample_cursor;
            self.sample_cursor = (self.sample_cursor + 1) % pages;
            let page = &mut self.scratch[..PAGE_SIZE];
            vm.read_memory((pfn * PAGE_SIZE) as u64, page)?;
            if let Some(matches) = self.session.page_matches_sent(pfn, page) {
                samples.push((pfn, matches));
            }
        }
        Ok(samples)
    }

    /// A sampled page that differs from what was sent and is not in the harvest was written
    /// without the dirty tracking noticing: the destination would resume on a stale copy.
    fn check_samples(
        &self,
        samples: &[(usize, bool)],
        dirty: &DirtyBitmap,
    ) -> Result<(), SourceError> {
        match samples
            .iter()
            .find(|(pfn, matches)| !matches && !dirty.is_set(*pfn))
        {
            Some((pfn, _)) => Err(SourceError::LostWrite {
                gpa: (pfn * PAGE_SIZE) as u64,
                tracking: self.params.dirty_tracking.name(),
            }),
            None => Ok(()),
        }
    }

    /// VM paused, last pages queued: state, digest, commit.
    fn finish_transfer(
        &mut self,
        vm: &mut impl MigratableVm,
        now: Instant,
    ) -> Result<(), SourceError> {
        self.session
            .end_round(0, now)
            .map_err(SourceStep::EndingLastRound.refused())?;
        for state in vm.vcpu_states()? {
            self.session
                .send_vcpu_state(&state, now)
                .map_err(SourceStep::VcpuState.refused())?;
        }
        for device in vm.device_states()? {
            self.session
                .send_device_state(&device, now)
                .map_err(|error| SourceError::Refused {
                    step: SourceStep::DeviceState(device.id.clone()),
                    error,
                })?;
        }
        self.state_queued_at = Some(now);
        if self.full_digest() {
            self.phase = Phase::Hashing {
                digester: Box::new(MemoryDigester::new(self.memory_bytes)),
                next_gpa: 0,
            };
            return Ok(());
        }
        // Version 3: the page digest the session kept is the verification; commit now.
        self.commit(vm, None, now)
    }

    /// Whether the commit carries a whole-memory digest (`verify full`, or a version-2
    /// peer, which has no page digest).
    pub(super) fn full_digest(&self) -> bool {
        self.params.verify == VerifyMode::Full || !self.session.uses_page_digest()
    }

    fn commit(
        &mut self,
        vm: &mut impl MigratableVm,
        digest: Option<[u8; 32]>,
        now: Instant,
    ) -> Result<(), SourceError> {
        self.session
            .commit(digest, now)
            .map_err(SourceStep::Commit.refused())?;
        self.commit_sent_at = Some(now);
        self.lines.push_back(String::from(
            "migrate: state and digest sent, waiting for the destination's commit",
        ));
        self.phase = Phase::AwaitingCommit;
        if self.keeps_vm && self.paused_by_us {
            // A snapshot: everything the copy holds is encoded in the session's output,
            // and this host keeps the VM whatever the receiver answers, so the VM need not
            // wait for the commit (a file receiver writes and re-reads the file first).
            self.release_vm(vm);
            vm.resume();
            self.paused_by_us = false;
            self.resumed_at = Some(now);
            self.lines.push_back(String::from(
                "snapshot: copy complete on this side; the VM runs on while the receiver commits",
            ));
        }
        Ok(())
    }

    /// Hashes up to [`HASH_BYTES_PER_POLL`] of guest memory; commits when all is hashed.
    fn hash_step(&mut self, vm: &mut impl MigratableVm, now: Instant) -> Result<(), SourceError> {
        let Phase::Hashing { digester, next_gpa } = &mut self.phase else {
            return Ok(());
        };
        if *next_gpa == 0 && !self.session.pending_output().is_empty() {
            // Let the last pages and the state leave first: the destination hashes its
            // copy as soon as the state arrives, in parallel with us.
            return Ok(());
        }
        let stop = (*next_gpa + HASH_BYTES_PER_POLL).min(self.memory_bytes);
        while *next_gpa < stop {
            let len = (stop - *next_gpa).min(self.scratch.len() as u64) as usize;
            let chunk = &mut self.scratch[..len];
            vm.read_memory(*next_gpa, chunk)?;
            digester.update(chunk);
            *next_gpa += len as u64;
        }
        if *next_gpa < self.memory_bytes {
            return Ok(());
        }
        let digest = digester.finalize();
        self.commit(vm, Some(digest), now)
    }
}
