//! The migration system tests' shared scenario: two Bochs hosts with `[migration]` enabled,
//! the heartbeat guest `hb` on host 0, an operator typing `migrate_set_parameter` and
//! `migrate`, and the outcome read from both consoles.
//!
//! Why one helper: every migration test boots the same pair, waits for the guest's first
//! beat, sets a few parameters, types `migrate` and waits for the lines that end it on each
//! host, then checks the same things: where the heartbeat went on, with no gap, and that
//! nobody printed `CORRUPT`. Written once, a test reads as its scenario and its own checks.

use crate::heartbeat::{self, beats, migration_config};
use crate::pair::{Pair, PairHost, host_ip};
use crate::{EmulatorKind, HarnessError, TestResult};
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// Guest lines, migrations and boots in Bochs on a shared two-core machine are slow.
pub const TIMEOUT: Duration = Duration::from_secs(600);
/// The migration key both hosts have unless a test says otherwise.
pub const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The port `[migration]` listens on.
pub const PORT: u16 = 4444;
/// A guest that dirties 20 pages/s of a 1 MiB working set: below what the Bochs link moves
/// (~90 data pages/s), so live migrations converge within the downtime limit as they
/// should; the heavy case is the benchmark's.
pub const HB_CMDLINE: &str = "hb.interval_ms=250 hb.wss_mib=1 hb.dirty_pages_per_sec=20";
/// The source's last line after any failed migration.
pub const KEPT_ON_SOURCE: &str = "the VM keeps running on this host";
/// The destination's last line after a failed incoming migration.
pub const NOTHING_KEPT: &str = "nothing kept";
/// The destination's line once a VM arrived and runs.
pub const RUNNING_HERE: &str = "is running on this host";

/// A completed migration as its source saw it.
#[derive(Clone, Debug)]
pub struct Completed {
    /// The source's transcript once `info migrate` said `completed`.
    pub transcript: String,
    /// Its `migrate: completed in ...` statistics line.
    pub stats: String,
    /// The last beat `hb` printed on the source.
    pub last_beat: u64,
}

/// How to boot a [`MigrationPair`]: `hb` (16 MiB, [`HB_CMDLINE`]) on host 0, [`KEY`] on both.
#[derive(Clone, Debug)]
pub struct MigrationPairBuilder {
    name: String,
    keys: [String; 2],
    vm_memory: String,
    cmdline: String,
    host_memory_mib: [u32; 2],
    extra_config: [String; 2],
    bochs_cpu: [Option<String>; 2],
}

impl MigrationPairBuilder {
    /// Host `index` gets this migration key instead of [`KEY`].
    pub fn key(mut self, index: usize, key: &str) -> Self {
        self.keys[index] = key.to_string();
        self
    }

    /// `hb`'s memory (a config size such as `256M`).
    pub fn vm_memory(mut self, memory: &str) -> Self {
        self.vm_memory = memory.to_string();
        self
    }

    /// `hb`'s command line.
    pub fn cmdline(mut self, cmdline: &str) -> Self {
        self.cmdline = cmdline.to_string();
        self
    }

    /// Each host's RAM in MiB.
    pub fn host_memory_mib(mut self, mib: [u32; 2]) -> Self {
        self.host_memory_mib = mib;
        self
    }

    /// Host `index` emulates this Bochs CPU model (default tigerlake).
    pub fn bochs_cpu(mut self, index: usize, model: &str) -> Self {
        self.bochs_cpu[index] = Some(model.to_string());
        self
    }

    /// Config text appended to host `index`'s (e.g. a second `[vm]`).
    pub fn extra_config(mut self, index: usize, text: &str) -> Self {
        self.extra_config[index].push_str(text);
        self
    }

    /// Boots both hosts in Bochs to their prompts and waits for `hb`'s first beat on host 0.
    pub fn boot(self) -> Result<MigrationPair, HarnessError> {
        let config = |index: usize| {
            let vm = (index == 0).then_some(self.vm_memory.as_str());
            let mut text = migration_config(index, &self.keys[index], vm, &self.cmdline);
            text.push_str(&self.extra_config[index]);
            text
        };
        let host = |index: usize| {
            PairHost::new(config(index))
                .memory_mib(self.host_memory_mib[index])
                .bochs_cpu(self.bochs_cpu[index].as_deref())
        };
        let pair = Pair::boot_hosts(
            EmulatorKind::Bochs,
            &self.name,
            &crate::work_root(),
            [host(0), host(1)],
        )?;
        let mut pair = MigrationPair {
            pair,
            ports: [PORT; 2],
        };
        pair.next_beat(0)?;
        Ok(pair)
    }
}

/// Two booted Bochs hosts with migration enabled and `hb` beating on host 0; derefs to the
/// [`Pair`] for anything else (consoles, `kill`, `cut_network`).
pub struct MigrationPair {
    pair: Pair,
    /// The port each host's migration listener is on.
    ports: [u16; 2],
}

impl Deref for MigrationPair {
    type Target = Pair;
    fn deref(&self) -> &Pair {
        &self.pair
    }
}

impl DerefMut for MigrationPair {
    fn deref_mut(&mut self) -> &mut Pair {
        &mut self.pair
    }
}

impl MigrationPair {
    /// A pair named `name` (instance directories `name-0`, `name-1`) with the defaults.
    pub fn builder(name: &str) -> MigrationPairBuilder {
        MigrationPairBuilder {
            name: name.to_string(),
            keys: [KEY.to_string(), KEY.to_string()],
            vm_memory: "16M".to_string(),
            cmdline: HB_CMDLINE.to_string(),
            host_memory_mib: [crate::machine::DEFAULT_MEMORY_MIB; 2],
            extra_config: [String::new(), String::new()],
            bochs_cpu: [None, None],
        }
    }

    /// [`MigrationPair::builder`] booted with the defaults.
    pub fn boot(name: &str) -> Result<MigrationPair, HarnessError> {
        MigrationPair::builder(name).boot()
    }

    /// The sequence number of the next `[hb] HB seq=N` line on host `index`.
    pub fn next_beat(&mut self, index: usize) -> Result<u64, HarnessError> {
        heartbeat::next_beat(&mut self.pair, index, TIMEOUT)
    }

    /// `migrate_set_parameter NAME VALUE` on host `index` for each `"NAME VALUE"`; each
    /// answer must repeat the setting.
    pub fn set_parameters(&mut self, index: usize, settings: &[&str]) -> TestResult {
        for setting in settings {
            let answer = self.command(index, &format!("migrate_set_parameter {setting}"))?;
            assert!(answer.contains(setting), "{setting}: {answer}");
        }
        Ok(())
    }

    /// `migrate_incoming PORT` on host `index`: later migrations to it use that port.
    pub fn listen_on(&mut self, index: usize, port: u16) -> TestResult {
        let answer = self.command(index, &format!("migrate_incoming {port}"))?;
        assert!(
            answer.contains(&format!("listening for incoming migrations on port {port}")),
            "{answer}"
        );
        self.ports[index] = port;
        Ok(())
    }

    /// `migrate [FLAGS] ADDRESS:PORT [VM]` typed on host `from`, to the other host: `flags`
    /// (`-c`) go before the address, `vm` after it; either may be empty. Returns the
    /// immediate answer.
    pub fn migrate(&mut self, from: usize, flags: &str, vm: &str) -> Result<String, HarnessError> {
        let to = 1 - from;
        let line = format!("migrate {flags} {}:{} {vm}", host_ip(to), self.ports[to]);
        self.command(from, line.trim())
    }

    /// A migration of `hb` from host 0 slowed to 1 MiB/s, so that whatever the test does
    /// next lands in pre-copy: returns once the destination accepted it.
    pub fn start_slow_migration(&mut self) -> TestResult {
        self.set_parameters(0, &["max-bandwidth 1"])?;
        self.migrate(0, "", "")?;
        self.expect(0, "migrate: accepted by the destination", TIMEOUT)?;
        Ok(())
    }

    /// Waits for host 0's rollback line; returns the text up to it (which says why).
    pub fn expect_failure_on_source(&mut self) -> Result<String, HarnessError> {
        let failure = self.expect(0, KEPT_ON_SOURCE, TIMEOUT)?;
        assert!(failure.contains("migrate: failed"), "{failure}");
        Ok(failure)
    }

    /// A failed migration from host 0: waits for its rollback line, then checks that the VM
    /// stayed on the source ([`Self::assert_vm_stayed_on_source`]); returns the text up to
    /// the rollback line (which says why).
    pub fn expect_rolled_back(&mut self) -> Result<String, HarnessError> {
        let failure = self.expect_failure_on_source()?;
        self.assert_vm_stayed_on_source()?;
        Ok(failure)
    }

    /// Waits for host 1's "nothing kept"; returns the text up to it (which says why).
    pub fn expect_nothing_kept(&mut self) -> Result<String, HarnessError> {
        self.expect(1, NOTHING_KEPT, TIMEOUT)
    }

    /// Polls `info migrate` on host `from` until the migration ended (or [`TIMEOUT`]);
    /// prints both hosts' NIC counters (for diagnosis) and returns `from`'s transcript.
    pub fn wait_for_outcome(&mut self, from: usize) -> Result<String, HarnessError> {
        let started = Instant::now();
        loop {
            std::thread::sleep(Duration::from_secs(15));
            let info = self.command(from, "info migrate")?;
            if info.contains("completed") || info.contains("failed") || started.elapsed() > TIMEOUT
            {
                for index in 0..2 {
                    eprintln!("host {index} net:\n{}", self.command(index, "net")?);
                }
                return Ok(self.hosts[from].console().transcript());
            }
        }
    }

    /// Waits for the migration from host `from` to end (see [`Self::wait_for_outcome`]) and
    /// for it to have completed.
    pub fn expect_completed(&mut self, from: usize) -> Result<Completed, HarnessError> {
        let transcript = self.wait_for_outcome(from)?;
        let stats = transcript
            .lines()
            .find(|l| l.contains("migrate: completed in"))
            .unwrap_or_else(|| panic!("migration did not complete:\n{transcript}"))
            .to_string();
        let last_beat = beats(&transcript)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("no beats on host {from}:\n{transcript}"));
        Ok(Completed {
            transcript,
            stats,
            last_beat,
        })
    }

    /// After `completed`: host `to` says `hb` runs there, and its heartbeat continues from
    /// the source's next number with no gap; returns the (at least two) beats seen there.
    pub fn assert_arrived(
        &mut self,
        to: usize,
        completed: &Completed,
    ) -> Result<Vec<u64>, HarnessError> {
        let arrived = self.beats_after(to, RUNNING_HERE, 2)?;
        let transcript = self.hosts[to].console().transcript();
        assert!(
            transcript.contains("migrate: VM 'hb' is running on this host"),
            "{transcript}"
        );
        assert_eq!(
            arrived.first().copied(),
            Some(completed.last_beat + 1),
            "the heartbeat continues with no gap; {}",
            completed.stats
        );
        assert!(arrived.windows(2).all(|w| w[1] == w[0] + 1), "{arrived:?}");
        Ok(arrived)
    }

    /// Waits until host `index`'s transcript holds `count` beats after the last `after`
    /// (or [`TIMEOUT`]); returns those found.
    pub fn beats_after(
        &mut self,
        index: usize,
        after: &str,
        count: usize,
    ) -> Result<Vec<u64>, HarnessError> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text = self.hosts[index].console().transcript();
            let found = match text.rsplit_once(after) {
                Some((_, tail)) => beats(tail),
                None => Vec::new(),
            };
            if found.len() >= count || Instant::now() > deadline {
                return Ok(found);
            }
            std::thread::sleep(Duration::from_secs(5));
            self.command(index, "vm list")?;
        }
    }

    /// Every beat host `index` has printed so far.
    pub fn beats(&mut self, index: usize) -> Vec<u64> {
        beats(&self.hosts[index].console().transcript())
    }

    /// After a failed migration, on host 0: the heartbeat goes on with the next numbers and
    /// never skipped one, and no `CORRUPT` line.
    pub fn assert_source_kept_running(&mut self) -> TestResult {
        let before = self.next_beat(0)?;
        let after = self.next_beat(0)?;
        assert_eq!(after, before + 1, "heartbeat goes on on the source");
        let all = self.beats(0);
        assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "no gap: {all:?}");
        self.assert_no_corruption_on(0);
        Ok(())
    }

    /// After a failed migration, on host 1: no VM `hb` listed, no `CORRUPT` line.
    pub fn assert_destination_kept_nothing(&mut self) -> TestResult {
        let list = self.command(1, "vm list")?;
        assert!(!list.contains("hb"), "the destination kept nothing: {list}");
        self.assert_no_corruption_on(1);
        Ok(())
    }

    /// Both of the above: the VM stayed on the source, whole, and only there.
    pub fn assert_vm_stayed_on_source(&mut self) -> TestResult {
        self.assert_source_kept_running()?;
        self.assert_destination_kept_nothing()
    }

    /// Neither host printed `CORRUPT` (the guest's own verification).
    pub fn assert_no_corruption(&mut self) {
        self.assert_no_corruption_on(0);
        self.assert_no_corruption_on(1);
    }

    /// Host `index` never printed `CORRUPT`.
    pub fn assert_no_corruption_on(&mut self, index: usize) {
        let transcript = self.hosts[index].console().transcript();
        assert!(
            !transcript.contains("CORRUPT"),
            "host {index} reported corruption:\n{transcript}"
        );
    }
}
