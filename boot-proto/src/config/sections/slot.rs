//! One key of one section: where it was set and what it parsed to.

use alloc::string::{String, ToString};

use super::super::line::unquote;
use super::super::{ConfigError, ConfigErrorKind};

/// A `key = value` line being applied to a section, with what error messages need.
pub(crate) struct Entry<'a> {
    /// Section name without brackets (`net`, `vm hb1`).
    pub(crate) section: &'a str,
    /// The key, as one of the section's known keys.
    pub(crate) key: &'static str,
    /// The value after quote removal.
    pub(crate) value: &'a str,
    /// Its line.
    pub(crate) line: u32,
}

impl Entry<'_> {
    /// An [`ConfigErrorKind::InvalidValue`] for this entry.
    pub(crate) fn invalid(&self, expected: &'static str) -> ConfigError {
        ConfigError::new(
            self.line,
            ConfigErrorKind::InvalidValue {
                section: self.section.to_string(),
                key: self.key,
                value: self.value.to_string(),
                expected,
            },
        )
    }

    /// A [`ConfigErrorKind::ValueTooLong`] check for this entry.
    pub(crate) fn check_len(&self, max: usize) -> Result<(), ConfigError> {
        if self.value.len() > max {
            return Err(ConfigError::new(
                self.line,
                ConfigErrorKind::ValueTooLong {
                    section: self.section.to_string(),
                    key: self.key,
                    len: self.value.len(),
                    max,
                },
            ));
        }
        Ok(())
    }

    /// Runs a [`super::super::value`] parser, turning its failure into an `InvalidValue`.
    pub(crate) fn parse<T, P>(&self, parser: P) -> Result<T, ConfigError>
    where
        P: FnOnce(&str) -> Result<T, &'static str>,
    {
        parser(self.value).map_err(|expected| self.invalid(expected))
    }
}

/// A key's parsed value and the line that set it.
pub(crate) struct Slot<T> {
    set: Option<(T, u32)>,
}

impl<T> Slot<T> {
    pub(crate) const fn empty() -> Self {
        Self { set: None }
    }

    /// Sets the key from `raw` (as written, maybe quoted): refuses a second setting, removes
    /// quotes, then parses with `parse`.
    pub(crate) fn fill(
        &mut self,
        section: &str,
        key: &'static str,
        raw: &str,
        line: u32,
        parse: impl FnOnce(&Entry<'_>) -> Result<T, ConfigError>,
    ) -> Result<(), ConfigError> {
        if let Some((_, first_line)) = self.set {
            return Err(ConfigError::new(
                line,
                ConfigErrorKind::DuplicateKey {
                    section: section.to_string(),
                    key,
                    first_line,
                },
            ));
        }
        let quoted = Entry {
            section,
            key,
            value: raw,
            line,
        };
        let value = unquote(raw).map_err(|expected| quoted.invalid(expected))?;
        let entry = Entry { value, ..quoted };
        self.set = Some((parse(&entry)?, line));
        Ok(())
    }

    /// The value, if set.
    pub(crate) fn value(&self) -> Option<&T> {
        self.set.as_ref().map(|(value, _)| value)
    }

    /// The line that set the key, if it was.
    pub(crate) fn line(&self) -> Option<u32> {
        self.set.as_ref().map(|(_, line)| *line)
    }

    /// The value, if set, consuming the slot.
    pub(crate) fn take(self) -> Option<T> {
        self.set.map(|(value, _)| value)
    }

    /// The value and the line that set it, if set, consuming the slot.
    pub(crate) fn take_with_line(self) -> Option<(T, u32)> {
        self.set
    }
}

/// The error for a key that the section does not have.
pub(crate) fn unknown_key(section: &str, key: &str, line: u32) -> ConfigError {
    ConfigError::new(
        line,
        ConfigErrorKind::UnknownKey {
            section: section.to_string(),
            key: String::from(key),
        },
    )
}
