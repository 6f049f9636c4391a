//! The section state machine: feeds classified lines into one draft per section and turns the
//! drafts into a [`Config`] once the whole file has been read.
//!
//! Keys are collected first and checked for presence only in [`ConfigBuilder::finish`], so
//! keys may come in any order within a section, and an error about a missing key points at the
//! section header that lacks it.

mod drafts;
mod slot;

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

use super::line::Line;
use super::{Config, ConfigError, ConfigErrorKind, MAX_VMS, MigrationConfig, NetConfig, NetMode};
use drafts::{HostDraft, MigrationDraft, NetDraft, VmDraft};

/// Which section the following `key = value` lines belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    Outside,
    Host,
    Net,
    Migration,
    /// The last entry of [`ConfigBuilder::vms`].
    Vm,
}

/// Accumulates a config line by line.
pub(crate) struct ConfigBuilder {
    current: Current,
    host: Option<HostDraft>,
    net: Option<NetDraft>,
    migration: Option<MigrationDraft>,
    vms: Vec<VmDraft>,
}

impl ConfigBuilder {
    pub(crate) fn new() -> Self {
        Self {
            current: Current::Outside,
            host: None,
            net: None,
            migration: None,
            vms: Vec::new(),
        }
    }

    /// Takes the next line.
    pub(crate) fn feed(&mut self, parsed: Line<'_>, line: u32) -> Result<(), ConfigError> {
        match parsed {
            Line::Blank => Ok(()),
            Line::Section { kind, arg } => self
                .open_section(kind, arg, line)
                .map_err(|kind| ConfigError::new(line, kind)),
            Line::KeyValue { key, value } => match self.current {
                Current::Outside => Err(ConfigError::new(
                    line,
                    ConfigErrorKind::KeyOutsideSection {
                        key: key.to_string(),
                    },
                )),
                Current::Host => draft(&mut self.host)?.set(key, value, line),
                Current::Net => draft(&mut self.net)?.set(key, value, line),
                Current::Migration => draft(&mut self.migration)?.set(key, value, line),
                Current::Vm => draft(&mut self.vms.last_mut())?.set(key, value, line),
            },
        }
    }

    fn open_section(
        &mut self,
        kind: &str,
        arg: Option<&str>,
        line: u32,
    ) -> Result<(), ConfigErrorKind> {
        let header = || match arg {
            Some(arg) => format!("[{kind} {arg}]"),
            None => format!("[{kind}]"),
        };
        let no_arg = |expected| ConfigErrorKind::BadSectionHeader {
            header: header(),
            expected,
        };
        match (kind, arg) {
            ("host", None) => {
                self.current = Current::Host;
                open_once(&mut self.host, "host", || HostDraft::new(line))
            }
            ("net", None) => {
                self.current = Current::Net;
                open_once(&mut self.net, "net", || NetDraft::new(line))
            }
            ("migration", None) => {
                self.current = Current::Migration;
                open_once(&mut self.migration, "migration", || {
                    MigrationDraft::new(line)
                })
            }
            ("host", Some(_)) => Err(no_arg("[host], without a name")),
            ("net", Some(_)) => Err(no_arg("[net], without a name")),
            ("migration", Some(_)) => Err(no_arg("[migration], without a name")),
            ("vm", None) => Err(no_arg("[vm NAME]")),
            ("vm", Some(name)) => {
                self.open_vm(name, line, header)?;
                self.current = Current::Vm;
                Ok(())
            }
            (other, _) => Err(ConfigErrorKind::UnknownSection {
                name: other.to_string(),
            }),
        }
    }

    fn open_vm(
        &mut self,
        name: &str,
        line: u32,
        header: impl Fn() -> alloc::string::String,
    ) -> Result<(), ConfigErrorKind> {
        if super::value::name(name).is_err() {
            return Err(ConfigErrorKind::BadSectionHeader {
                header: header(),
                expected: "[vm NAME] with a NAME of 1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'",
            });
        }
        if let Some(first) = self
            .vms
            .iter()
            .find(|vm| vm.name.eq_ignore_ascii_case(name))
        {
            return Err(ConfigErrorKind::DuplicateVm {
                name: name.to_string(),
                first_line: first.header_line,
            });
        }
        if self.vms.len() >= MAX_VMS {
            return Err(ConfigErrorKind::TooManyVms { max: MAX_VMS });
        }
        self.vms.push(VmDraft::new(name, line));
        Ok(())
    }

    /// Checks required keys and cross-key rules, and builds the config.
    pub(crate) fn finish(self) -> Result<Config, ConfigError> {
        let host = match self.host {
            Some(host) => host.finish()?,
            None => {
                return Err(ConfigError::new(
                    0,
                    ConfigErrorKind::MissingKey {
                        section: "host".to_string(),
                        key: "name",
                    },
                ));
            }
        };
        let net = match self.net {
            Some(net) => net.finish()?,
            None => NetConfig {
                mode: NetMode::None,
                mac: None,
                mtu: super::DEFAULT_MTU,
            },
        };
        let migration = match self.migration {
            Some(migration) => migration.finish(),
            None => MigrationConfig {
                port: super::DEFAULT_MIGRATION_PORT,
                key: None,
                downtime_limit_ms: None,
                max_bandwidth_mib: None,
            },
        };
        let vms = self
            .vms
            .into_iter()
            .map(VmDraft::finish)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            host,
            net,
            migration,
            vms,
        })
    }
}

/// Opens a section that may appear once.
fn open_once<T: drafts::HeaderLine>(
    slot: &mut Option<T>,
    section: &str,
    new: impl FnOnce() -> T,
) -> Result<(), ConfigErrorKind> {
    match slot {
        Some(existing) => Err(ConfigErrorKind::DuplicateSection {
            section: section.to_string(),
            first_line: existing.header_line(),
        }),
        None => {
            *slot = Some(new());
            Ok(())
        }
    }
}

/// The draft of the current section. It always exists when `current` names it; should that
/// invariant ever break, the line is reported as outside any section instead of panicking.
fn draft<T>(slot: &mut Option<T>) -> Result<&mut T, ConfigError> {
    slot.as_mut().ok_or_else(|| {
        ConfigError::new(
            0,
            ConfigErrorKind::KeyOutsideSection {
                key: alloc::string::String::new(),
            },
        )
    })
}
