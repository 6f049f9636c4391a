//! Config errors and the messages the operator reads on screen and serial.
//!
//! The loader prints `tern.cfg:LINE: MESSAGE` from [`ConfigError::line`] and the kind's
//! `Display`; [`ConfigError`]'s own `Display` is `line LINE: MESSAGE`. Every message names the
//! section, the key and the offending value where there is one, and says what was expected, so
//! that the operator can fix the file without reading the docs.

use alloc::string::String;
use core::fmt;

/// Values longer than this are cut (with `...`) in messages, to keep them on one screen line.
const SHOWN_VALUE_MAX: usize = 48;

/// A config error and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number; 0 means the file as a whole (e.g. no `[host]` section).
    pub line: u32,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    pub(crate) fn new(line: u32, kind: ConfigErrorKind) -> Self {
        Self { line, kind }
    }
}

/// What is wrong with a config. `section` fields hold the header without brackets
/// (`host`, `vm hb1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file is not UTF-8 (only reported by [`parse_bytes`](super::parse_bytes)).
    InvalidUtf8,
    /// A control character other than tab (e.g. NUL, a lone CR) is in the line.
    ControlCharacter {
        /// Its code point.
        code: u32,
    },
    /// The line is neither blank, a comment, a `[section]` header nor `key = value`.
    MalformedLine {
        /// The line, comment removed and trimmed.
        text: String,
    },
    /// A line starting with `[` that is not a well-formed header.
    BadSectionHeader {
        /// The line, comment removed and trimmed.
        header: String,
        /// What a header must look like.
        expected: &'static str,
    },
    /// A `[name]` that is not `host`, `net`, `migration` or `vm NAME`.
    UnknownSection {
        /// The name between the brackets.
        name: String,
    },
    /// `[host]`, `[net]` or `[migration]` appears twice.
    DuplicateSection {
        /// Its name.
        section: String,
        /// Line of its first header.
        first_line: u32,
    },
    /// A `key = value` line before the first section header.
    KeyOutsideSection {
        /// The key.
        key: String,
    },
    /// A key the section does not have.
    UnknownKey {
        /// The section it appeared in.
        section: String,
        /// The key.
        key: String,
    },
    /// A key given twice in the same section.
    DuplicateKey {
        /// The section.
        section: String,
        /// The key.
        key: &'static str,
        /// Line of its first occurrence.
        first_line: u32,
    },
    /// Two `[vm NAME]` sections with names equal up to ASCII case.
    DuplicateVm {
        /// The second occurrence's name.
        name: String,
        /// Line of the first one's header.
        first_line: u32,
    },
    /// More `[vm NAME]` sections than the loader can hand over.
    TooManyVms {
        /// The limit.
        max: usize,
    },
    /// A required key is absent (reported on the section header's line, on the `mode = static`
    /// line for `[net] address`, or on line 0 when the whole `[host]` section is missing).
    MissingKey {
        /// The section.
        section: String,
        /// The key.
        key: &'static str,
    },
    /// A value that does not parse or is out of range.
    InvalidValue {
        /// The section.
        section: String,
        /// The key.
        key: &'static str,
        /// The value as written (quotes stripped).
        value: String,
        /// What the value must be.
        expected: &'static str,
    },
    /// A value longer than its key allows.
    ValueTooLong {
        /// The section.
        section: String,
        /// The key.
        key: &'static str,
        /// The value's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// `[net] address` or `gateway` with a mode other than `static`.
    NetKeyNeedsStaticMode {
        /// The key.
        key: &'static str,
    },
    /// Both `image` and `kernel` in one `[vm NAME]`: a VM boots one or the other.
    ImageAndKernel {
        /// The section.
        section: String,
        /// Line of `image`.
        image_line: u32,
    },
    /// `initrd` without `kernel` (a PVH image takes no initrd).
    InitrdWithoutKernel {
        /// The section.
        section: String,
    },
    /// `vcpus` greater than 1.
    UnsupportedVcpus {
        /// The section.
        section: String,
        /// The requested count.
        count: u32,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "line {}: {}", self.line, self.kind)
        }
    }
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUtf8 => f.write_str("not valid UTF-8 text"),
            Self::ControlCharacter { code } => write!(
                f,
                "control character U+{code:04X} in line: only printable text and tabs are allowed"
            ),
            Self::MalformedLine { text } => write!(
                f,
                "`{}`: expected `key = value`, a `[section]` header, a `#` comment or nothing",
                Shown(text)
            ),
            Self::BadSectionHeader { header, expected } => {
                write!(
                    f,
                    "bad section header `{}`: expected {expected}",
                    Shown(header)
                )
            }
            Self::UnknownSection { name } => write!(
                f,
                "unknown section [{}]: expected [host], [net], [migration] or [vm NAME]",
                Shown(name)
            ),
            Self::DuplicateSection {
                section,
                first_line,
            } => write!(f, "[{section}] appears again (first on line {first_line})"),
            Self::KeyOutsideSection { key } => write!(
                f,
                "`{}` is outside any section: put a [section] header before it",
                Shown(key)
            ),
            Self::UnknownKey { section, key } => {
                write!(f, "[{section}] has no key `{}`", Shown(key))
            }
            Self::DuplicateKey {
                section,
                key,
                first_line,
            } => write!(
                f,
                "[{section}] {key} is set again (first on line {first_line})"
            ),
            Self::DuplicateVm { name, first_line } => write!(
                f,
                "[vm {name}]: a VM of that name is already defined on line {first_line}"
            ),
            Self::TooManyVms { max } => write!(f, "too many [vm NAME] sections: at most {max}"),
            Self::MissingKey { section, key } => {
                write!(f, "[{section}] {key} is required but missing")
            }
            Self::InvalidValue {
                section,
                key,
                value,
                expected,
            } => write!(
                f,
                "[{section}] {key} = {}: expected {expected}",
                Shown(value)
            ),
            Self::ValueTooLong {
                section,
                key,
                len,
                max,
            } => write!(
                f,
                "[{section}] {key} is {len} bytes long: at most {max} bytes are allowed"
            ),
            Self::NetKeyNeedsStaticMode { key } => {
                write!(f, "[net] {key} is only allowed with mode = static")
            }
            Self::ImageAndKernel {
                section,
                image_line,
            } => write!(
                f,
                "[{section}] has both image (line {image_line}) and kernel: a VM boots a PVH \
                 image or a Linux kernel, remove one"
            ),
            Self::InitrdWithoutKernel { section } => write!(
                f,
                "[{section}] initrd needs kernel = PATH (a PVH image takes no initrd)"
            ),
            Self::UnsupportedVcpus { section, count } => write!(
                f,
                "[{section}] vcpus = {count}: only 1 vCPU per VM is supported yet"
            ),
        }
    }
}

/// Operator-supplied text in a message, cut at [`SHOWN_VALUE_MAX`] characters.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(SHOWN_VALUE_MAX) {
            Some((cut, _)) => write!(f, "{}...", self.0.get(..cut).unwrap_or("")),
            None => f.write_str(self.0),
        }
    }
}
