//! Config parser: see docs/config.md. (Being written.)
