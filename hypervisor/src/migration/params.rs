//! Migration tunables and the console arguments of `migrate` / `migrate_set_parameter`.
//!
//! Parsing is separate from the kernel's command table so that every malformed line has a
//! host test and a one-line error message.

use alloc::string::{String, ToString};
use core::fmt;

use boot_proto::config::bounds::{self, Bounds};

use super::dirty::DirtyTrackingMode;

/// Tunables of the source side (`migrate_set_parameter NAME VALUE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationParams {
    /// Switch over when the expected downtime is at most this (milliseconds).
    pub downtime_limit_ms: u64,
    /// Cap on the bytes put on the wire, MiB/s; 0 = unlimited.
    pub max_bandwidth_mib: u64,
    /// Switch over after this many pre-copy rounds whatever the expected downtime.
    pub max_rounds: u32,
    /// How dirty pages are tracked.
    pub dirty_tracking: DirtyTrackingMode,
    /// How the destination's memory is verified before the commit.
    pub verify: VerifyMode,
    /// Percent of the core the migration may use while the guest runs (100 = no limit).
    pub cpu_budget_percent: u8,
    /// How a guest that outruns the link is slowed down.
    pub convergence: crate::migration::convergence::ConvergenceMode,
    /// MiB of copies of sent pages that pages sent again are XOR-delta encoded against
    /// (DELTA_PAGES; 0 = off). Only when the destination agrees (protocol v3).
    pub delta_cache_mib: u64,
    /// A deliberate fault for system tests; [`FaultInjection::None`] unless set.
    pub fault_inject: FaultInjection,
    /// Storage migration (`migrate -b`): the VM's disks move with it.
    pub block_migration: bool,
}

/// How memory is verified before the commit (`migrate_set_parameter verify sample|full`).
///
/// Both modes verify with the page digest of protocol version 3 (every page hashed as it is
/// sent and as it lands; the destination refuses a missing, stale or corrupted page) and
/// refuse a commit while a page reported dirty was not sent again. They differ in how they
/// guard against dirty tracking that *loses* a write, which the page digest cannot see
/// (both sides would hash the same stale copy):
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyMode {
    /// During pre-copy, re-hash a few clean pages per round against what was sent, sweeping
    /// all of memory over the rounds; a mismatch aborts the migration. Costs a few pages of
    /// hashing per round and nothing at stop time.
    #[default]
    Sample,
    /// Additionally hash all of guest memory on both hosts while the VM is paused (the
    /// version-2 digest): a lost write is always caught, at a downtime that grows with the
    /// VM's size. Also what a version-2 peer gets, whatever this setting says.
    Full,
}

impl VerifyMode {
    /// The console name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sample => "sample",
            Self::Full => "full",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Sample, Self::Full]
            .into_iter()
            .find(|v| v.name() == text)
    }
}

/// A deliberate fault the source injects, so that system tests can drive failure paths no
/// real link produces on demand (`migrate_set_parameter fault-inject NAME`). Not listed in
/// the command's usage or in the parameter line while off: operators never meet it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FaultInjection {
    /// No fault: the normal case.
    #[default]
    None,
    /// Once per migration the source flips one byte of the last page of guest RAM after
    /// reading it and before handing it to the session. The frame is authentic (encrypted
    /// and MACed like any other) but its content is wrong, so only the memory digest
    /// check at commit can catch it. The last page is chosen because the round that
    /// covers it sends it once and a guest that leaves it alone never dirties it again.
    CorruptPage,
    /// Once per migration the switch-over harvest (VM paused) loses the dirty bit of its
    /// first dirty page, as broken dirty tracking would: that page is not sent again and the
    /// destination would resume on a stale copy. Only `verify full` can catch it then.
    DropDirtyBit,
    /// When the source has the destination's `CommitAck` and has queued its `Release`, the
    /// kernel resets the connection before that frame leaves: the destination is left in
    /// doubt with the VM while the source has released it (`migration::in_doubt`).
    DropRelease,
    /// Storage migration: once per migration the first disk run (of the bulk pass) is
    /// recorded as sent but never leaves, as blocks lost between the hosts would. The
    /// destination must refuse to commit (`MissingDiskBlocks`).
    DropDiskBlock,
}

impl FaultInjection {
    /// The console name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::CorruptPage => "corrupt-page",
            Self::DropDirtyBit => "drop-dirty-bit",
            Self::DropRelease => "drop-release",
            Self::DropDiskBlock => "drop-disk-block",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::None,
            Self::CorruptPage,
            Self::DropDirtyBit,
            Self::DropRelease,
            Self::DropDiskBlock,
        ]
        .into_iter()
        .find(|f| f.name() == text)
    }
}

impl Default for MigrationParams {
    fn default() -> Self {
        Self {
            downtime_limit_ms: 300,
            max_bandwidth_mib: 0,
            max_rounds: 30,
            dirty_tracking: DirtyTrackingMode::WriteProtect,
            verify: VerifyMode::Sample,
            delta_cache_mib: 4,
            cpu_budget_percent: 50,
            convergence: crate::migration::convergence::ConvergenceMode::AutoConverge,
            fault_inject: FaultInjection::None,
            block_migration: false,
        }
    }
}

/// A refused console argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// Unknown parameter name.
    UnknownParameter(String),
    /// The value does not fit the parameter.
    BadValue {
        /// Parameter.
        name: &'static str,
        /// What was given.
        value: String,
        /// What is expected.
        expected: &'static str,
    },
    /// Wrong number of arguments or an unknown flag; the usage line.
    Usage(&'static str),
    /// `HOST:PORT` is malformed.
    BadAddress(String),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownParameter(n) => write!(
                f,
                "unknown parameter '{n}' (downtime-limit, max-bandwidth, max-rounds, dirty-tracking, verify, delta-cache, convergence, cpu-budget)"
            ),
            Self::BadValue {
                name,
                value,
                expected,
            } => write!(f, "{name}: '{value}' is not {expected}"),
            Self::Usage(u) => write!(f, "usage: {u}"),
            Self::BadAddress(a) => write!(f, "'{a}' is not an IPv4 HOST:PORT"),
        }
    }
}

/// A numeric parameter, within the range `tern.cfg` also uses (`boot_proto::config::bounds`).
fn number(name: &'static str, value: &str, bounds: Bounds) -> Result<u64, ArgError> {
    bounds.parse(value).map_err(|expected| ArgError::BadValue {
        name,
        value: value.to_string(),
        expected,
    })
}

impl MigrationParams {
    /// Applies `migrate_set_parameter NAME VALUE`.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ArgError> {
        match name {
            "downtime-limit" => {
                self.downtime_limit_ms =
                    number("downtime-limit", value, bounds::DOWNTIME_LIMIT_MS)?;
            }
            "max-bandwidth" => {
                self.max_bandwidth_mib = number("max-bandwidth", value, bounds::MAX_BANDWIDTH_MIB)?;
            }
            "max-rounds" => {
                // The table's maximum fits a u32 (asserted there).
                self.max_rounds = u32::try_from(number("max-rounds", value, bounds::MAX_ROUNDS)?)
                    .unwrap_or(u32::MAX);
            }
            "dirty-tracking" => {
                self.dirty_tracking =
                    DirtyTrackingMode::parse(value).ok_or_else(|| ArgError::BadValue {
                        name: "dirty-tracking",
                        value: value.to_string(),
                        expected: "wp or pml",
                    })?;
            }
            "cpu-budget" => {
                // The table's maximum is 100.
                self.cpu_budget_percent =
                    u8::try_from(number("cpu-budget", value, bounds::CPU_BUDGET_PERCENT)?)
                        .unwrap_or(100);
            }
            "convergence" => {
                self.convergence = crate::migration::convergence::ConvergenceMode::parse(value)
                    .ok_or_else(|| ArgError::BadValue {
                        name: "convergence",
                        value: value.to_string(),
                        expected: "auto-converge or dirty-limit",
                    })?;
            }
            "delta-cache" => {
                self.delta_cache_mib = number("delta-cache", value, bounds::DELTA_CACHE_MIB)?;
            }
            "verify" => {
                self.verify = VerifyMode::parse(value).ok_or_else(|| ArgError::BadValue {
                    name: "verify",
                    value: value.to_string(),
                    expected: "sample or full",
                })?;
            }
            "fault-inject" => {
                self.fault_inject =
                    FaultInjection::parse(value).ok_or_else(|| ArgError::BadValue {
                        name: "fault-inject",
                        value: value.to_string(),
                        expected: "none, corrupt-page, drop-dirty-bit or drop-release",
                    })?;
            }
            other => return Err(ArgError::UnknownParameter(other.to_string())),
        }
        Ok(())
    }
}

impl fmt::Display for MigrationParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "downtime-limit {} ms, max-bandwidth {}, max-rounds {}, dirty-tracking {}, verify {}, delta-cache {} MiB, convergence {}, cpu-budget {}%",
            self.downtime_limit_ms,
            match self.max_bandwidth_mib {
                0 => String::from("unlimited"),
                n => alloc::format!("{n} MiB/s"),
            },
            self.max_rounds,
            self.dirty_tracking.name(),
            self.verify.name(),
            self.delta_cache_mib,
            self.convergence.name(),
            self.cpu_budget_percent
        )?;
        match self.fault_inject {
            FaultInjection::None => Ok(()),
            fault => write!(f, ", fault-inject {}", fault.name()),
        }
    }
}

/// `migrate [-c] [-b] HOST:PORT [VM]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateArgs {
    /// `-c`: cold migration.
    pub cold: bool,
    /// `-b`: block (storage) migration: the VM's disks move with it.
    pub block: bool,
    /// Destination IPv4 address.
    pub host: [u8; 4],
    /// Destination TCP port.
    pub port: u16,
    /// VM name (optional when the host runs one VM).
    pub vm: Option<String>,
}

const MIGRATE_USAGE: &str = "migrate [-c] [-b] HOST:PORT [VM]";

/// Parses the arguments after `migrate`.
pub fn parse_migrate<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<MigrateArgs, ArgError> {
    let mut cold = false;
    let mut block = false;
    let mut positional = alloc::vec::Vec::new();
    for arg in args {
        match arg {
            "-c" => cold = true,
            "-b" => block = true,
            flag if flag.starts_with('-') => return Err(ArgError::Usage(MIGRATE_USAGE)),
            other => positional.push(other),
        }
    }
    let (address, vm) = match positional.as_slice() {
        [a] => (*a, None),
        [a, vm] => (*a, Some(vm.to_string())),
        _ => return Err(ArgError::Usage(MIGRATE_USAGE)),
    };
    let (host, port) = parse_host_port(address)?;
    Ok(MigrateArgs {
        cold,
        block,
        host,
        port,
        vm,
    })
}

/// Parses `A.B.C.D:PORT` (port 1..=65535).
pub fn parse_host_port(text: &str) -> Result<([u8; 4], u16), ArgError> {
    let bad = || ArgError::BadAddress(text.to_string());
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(bad)?;
    let mut octets = [0u8; 4];
    let mut parts = host.split('.');
    for octet in &mut octets {
        *octet = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((octets, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_arguments() {
        let a = parse_migrate(["-c", "10.0.0.2:4444", "web1"]).unwrap();
        assert_eq!(
            a,
            MigrateArgs {
                cold: true,
                block: false,
                host: [10, 0, 0, 2],
                port: 4444,
                vm: Some("web1".into())
            }
        );
        assert!(!parse_migrate(["10.0.0.2:1"]).unwrap().cold);
        let b = parse_migrate(["-b", "10.0.0.2:1", "hb"]).unwrap();
        assert!(b.block && !b.cold);
        for bad in [
            &["10.0.0.2"][..],
            &["10.0.0.2:0"],
            &["10.0.0:5"],
            &["10.0.0.2.1:5"],
            &["300.0.0.1:5"],
            &[],
            &["-x", "1.2.3.4:5"],
            &["1.2.3.4:5", "a", "b"],
        ] {
            assert!(parse_migrate(bad.iter().copied()).is_err(), "{bad:?}");
        }
    }

    /// The console accepts exactly the range `tern.cfg` accepts (one table, issue 13
    /// item 8), and a refusal says what that range is.
    #[test]
    fn console_and_config_share_the_bounds() {
        for (name, b) in [
            ("downtime-limit", bounds::DOWNTIME_LIMIT_MS),
            ("max-bandwidth", bounds::MAX_BANDWIDTH_MIB),
        ] {
            let mut p = MigrationParams::default();
            assert!(p.set(name, &alloc::format!("{}", b.max)).is_ok(), "{name}");
            assert!(p.set(name, &alloc::format!("{}", b.min)).is_ok(), "{name}");
            let e = p.set(name, &alloc::format!("{}", b.max + 1)).unwrap_err();
            assert_eq!(
                alloc::format!("{e}"),
                alloc::format!("{name}: '{}' is not {}", b.max + 1, b.expected)
            );
        }
        let file = |ms: u64| {
            boot_proto::config::parse(&alloc::format!(
                "[host]\nname = a\n[migration]\ndowntime_limit_ms = {ms}\n"
            ))
        };
        assert!(file(bounds::DOWNTIME_LIMIT_MS.max).is_ok());
        assert!(file(bounds::DOWNTIME_LIMIT_MS.max + 1).is_err());
    }

    #[test]
    fn parameters() {
        let mut p = MigrationParams::default();
        p.set("downtime-limit", "50").unwrap();
        p.set("max-bandwidth", "8").unwrap();
        p.set("max-rounds", "5").unwrap();
        p.set("dirty-tracking", "pml").unwrap();
        assert_eq!(p.verify, VerifyMode::Sample, "sampling by default");
        p.set("verify", "full").unwrap();
        assert!(p.set("verify", "none").is_err());
        assert!(p.set("delta-cache", "2000").is_err());
        assert!(p.set("cpu-budget", "0").is_err());
        assert!(p.set("cpu-budget", "101").is_err());
        assert_eq!(
            p,
            MigrationParams {
                downtime_limit_ms: 50,
                max_bandwidth_mib: 8,
                max_rounds: 5,
                dirty_tracking: DirtyTrackingMode::Pml,
                verify: VerifyMode::Full,
                delta_cache_mib: 4,
                cpu_budget_percent: 50,
                convergence: crate::migration::convergence::ConvergenceMode::AutoConverge,
                fault_inject: FaultInjection::None,
                block_migration: false,
            }
        );
        assert!(
            !alloc::format!("{p}").contains("fault-inject"),
            "hidden while off"
        );
        p.set("fault-inject", "corrupt-page").unwrap();
        assert_eq!(p.fault_inject, FaultInjection::CorruptPage);
        assert!(alloc::format!("{p}").ends_with(", fault-inject corrupt-page"));
        p.set("fault-inject", "drop-release").unwrap();
        assert_eq!(p.fault_inject, FaultInjection::DropRelease);
        assert!(p.set("fault-inject", "all").is_err());
        p.set("fault-inject", "drop-dirty-bit").unwrap();
        assert_eq!(p.fault_inject, FaultInjection::DropDirtyBit);
        p.set("fault-inject", "none").unwrap();
        assert_eq!(p.fault_inject, FaultInjection::None);
        assert!(p.set("downtime-limit", "0").is_err());
        assert!(p.set("max-rounds", "x").is_err());
        assert!(p.set("dirty-tracking", "ad").is_err());
        let e = p.set("speed", "1").unwrap_err();
        assert!(alloc::format!("{e}").contains("unknown parameter 'speed'"));
        assert_eq!(p.downtime_limit_ms, 50, "refused values change nothing");
    }
}
