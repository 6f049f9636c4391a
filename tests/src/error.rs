//! The harness's one error type. Its Debug output is its Display output, so a test that
//! returns `Err` prints a readable message (with the transcript tail) and not a struct dump.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while booting and driving an emulated host.
pub enum HarnessError {
    /// `cargo xtask build` has not produced an ESP where we looked.
    NoEsp {
        /// The directory that lacks `EFI/BOOT/BOOTX64.EFI`.
        dir: PathBuf,
    },
    /// A file or socket operation failed.
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The emulator could not be started.
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The emulator did not connect to the serial listener in time.
    NoConsole {
        /// How long we waited.
        waited: Duration,
        /// The emulator's own log (its stdout/stderr).
        emulator_log: PathBuf,
        /// The tail of that log.
        log_tail: String,
    },
    /// An expected pattern did not appear on the console in time.
    Timeout {
        /// The pattern.
        pattern: String,
        /// How long we waited.
        waited: Duration,
        /// Whether the emulator had closed the line by then.
        closed: bool,
        /// The transcript file.
        transcript: PathBuf,
        /// The last lines of the transcript (ANSI sequences removed).
        tail: String,
    },
    /// A pattern that must not appear did.
    Unexpected {
        /// The pattern.
        pattern: String,
        /// The transcript file.
        transcript: PathBuf,
        /// The last lines of the transcript.
        tail: String,
    },
    /// The emulator did not exit in time.
    NoExit {
        /// How long we waited.
        waited: Duration,
        /// The transcript file.
        transcript: PathBuf,
        /// The last lines of the transcript.
        tail: String,
    },
    /// A combination the emulator cannot express.
    Unsupported(&'static str),
}

impl HarnessError {
    /// An I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::NoEsp { dir } => write!(
                f,
                "no ESP at {} (no EFI/BOOT/BOOTX64.EFI): run `cargo xtask build` first, \
                 or set TERN_ESP_DIR",
                dir.display()
            ),
            HarnessError::Io { context, source } => write!(f, "{context}: {source}"),
            HarnessError::Spawn { program, source } => {
                write!(
                    f,
                    "cannot start {program}: {source} (run `cargo xtask build` to check prerequisites)"
                )
            }
            HarnessError::NoConsole {
                waited,
                emulator_log,
                log_tail,
            } => write!(
                f,
                "the emulator did not connect its serial line within {waited:?}; its log {}:\n{log_tail}",
                emulator_log.display()
            ),
            HarnessError::Timeout {
                pattern,
                waited,
                closed,
                transcript,
                tail,
            } => {
                let why = if *closed {
                    " (the emulator closed the serial line)"
                } else {
                    ""
                };
                write!(
                    f,
                    "expected {pattern:?} on the console within {waited:?}{why}\n\
                     --- transcript tail ({}) ---\n{tail}\n--- end of transcript ---",
                    transcript.display()
                )
            }
            HarnessError::Unexpected {
                pattern,
                transcript,
                tail,
            } => write!(
                f,
                "{pattern:?} appeared on the console but must not\n\
                 --- transcript tail ({}) ---\n{tail}\n--- end of transcript ---",
                transcript.display()
            ),
            HarnessError::NoExit {
                waited,
                transcript,
                tail,
            } => write!(
                f,
                "the emulator did not exit within {waited:?}\n\
                 --- transcript tail ({}) ---\n{tail}\n--- end of transcript ---",
                transcript.display()
            ),
            HarnessError::Unsupported(what) => write!(f, "unsupported: {what}"),
        }
    }
}

impl fmt::Debug for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Io { source, .. } | HarnessError::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}
