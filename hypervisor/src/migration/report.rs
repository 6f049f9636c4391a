//! What the operator sees: `info migrate`, one progress line per round, final statistics.

use core::fmt;

use migration_proto::message::Progress;

/// A snapshot of a running (or finished) migration for `info migrate`: the protocol's
/// [`Progress`] (the same numbers the destination's console mirrors) plus what only the
/// source knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MigrationInfo {
    /// State name (`connecting`, `pre-copy`, `stop-and-copy`, `committing`, `completed`,
    /// `failed`).
    pub state: &'static str,
    /// Cold (`true`) or live.
    pub cold: bool,
    /// Round, bytes sent and remaining (pages not yet sent plus buffered output), dirty
    /// rate, throughput and expected downtime (`u64::MAX` = unknown).
    pub progress: Progress,
    /// vCPU throttle, percent.
    pub throttle_percent: u8,
    /// Dirty-rate limit, pages per second, if one is set.
    pub dirty_limit: Option<u64>,
    /// Time since the migration started (µs).
    pub elapsed_us: u64,
}

struct Ms(u64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == u64::MAX {
            write!(f, "unknown")
        } else {
            write!(f, "{}.{:03} ms", self.0 / 1000, self.0 % 1000)
        }
    }
}

/// Bytes with a binary unit.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 20 {
            write!(f, "{}.{:02} MiB", b >> 20, ((b & 0xfffff) * 100) >> 20)
        } else if b >= 1 << 10 {
            write!(f, "{}.{:02} KiB", b >> 10, ((b & 0x3ff) * 100) >> 10)
        } else {
            write!(f, "{b} B")
        }
    }
}

impl fmt::Display for MigrationInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.progress;
        writeln!(
            f,
            "migration: {} ({}), round {}, elapsed {}",
            self.state,
            if self.cold { "cold" } else { "live" },
            p.round,
            Ms(self.elapsed_us)
        )?;
        writeln!(
            f,
            "  sent {}, remaining {}, throughput {}/s",
            Bytes(p.bytes_sent),
            Bytes(p.bytes_remaining),
            Bytes(p.throughput_bytes_per_sec)
        )?;
        write!(
            f,
            "  dirty rate {} pages/s, expected downtime {}, throttle {}%{}",
            p.dirty_pages_per_sec,
            Ms(p.expected_downtime_us),
            self.throttle_percent,
            DirtyLimit(self.dirty_limit)
        )
    }
}

/// One pre-copy round, as printed at its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundLine {
    /// Round number.
    pub round: u32,
    /// Pages sent in the round.
    pub pages_sent: u64,
    /// Pages dirtied meanwhile (the next round's work).
    pub dirty_pages: u64,
    /// Wire throughput of the round, bytes/s.
    pub throughput_bytes_per_sec: u64,
    /// Expected downtime, µs.
    pub expected_downtime_us: u64,
    /// Brake for the next round (throttle, dirty-rate limit).
    pub brake: crate::migration::convergence::Brake,
}

/// `, dirty-limit N pages/s` when a limit is set.
struct DirtyLimit(Option<u64>);

impl fmt::Display for DirtyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(limit) => write!(f, ", dirty-limit {limit} pages/s"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for RoundLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "migrate: round {} sent {} pages, dirty {} pages, {}/s, expected downtime {}, throttle {}%{}",
            self.round,
            self.pages_sent,
            self.dirty_pages,
            Bytes(self.throughput_bytes_per_sec),
            Ms(self.expected_downtime_us),
            self.brake.throttle_percent,
            DirtyLimit(self.brake.dirty_limit)
        )
    }
}

/// ` (estimated N ms)` when an estimate exists.
struct Estimated(u64);

impl fmt::Display for Estimated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            u64::MAX => Ok(()),
            us => write!(f, " (estimated {})", Ms(us)),
        }
    }
}

/// The summary printed when a migration completes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FinalStats {
    /// From `migrate` to the destination's commit (µs).
    pub total_us: u64,
    /// From pausing the VM to the commit acknowledgement (µs).
    pub downtime_us: u64,
    /// Bytes on the wire (all frames, both handshake and pages).
    pub wire_bytes: u64,
    /// Guest memory size.
    pub memory_bytes: u64,
    /// Pages sent as zero pages.
    pub zero_pages: u64,
    /// Pages sent raw.
    pub raw_pages: u64,
    /// Pages sent LZ4-compressed.
    pub lz4_pages: u64,
    /// Pages sent as the delta to their previous copy.
    pub delta_pages: u64,
    /// Rounds (including the final stop-and-copy round).
    pub rounds: u32,
    /// The downtime the source expected when it switched over, µs (`u64::MAX` = none: a
    /// cold migration pauses first and has no estimate).
    pub estimated_downtime_us: u64,
}

impl fmt::Display for FinalStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "migrate: completed in {}, downtime {}{}, {} on the wire for {} of memory, pages zero {} raw {} compressed {} delta {}, rounds {}",
            Ms(self.total_us),
            Ms(self.downtime_us),
            Estimated(self.estimated_downtime_us),
            Bytes(self.wire_bytes),
            Bytes(self.memory_bytes),
            self.zero_pages,
            self.raw_pages,
            self.lz4_pages,
            self.delta_pages,
            self.rounds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn formats() {
        assert_eq!(format!("{}", Bytes(3 << 20)), "3.00 MiB");
        assert_eq!(format!("{}", Bytes(1536)), "1.50 KiB");
        assert_eq!(format!("{}", Ms(12_345)), "12.345 ms");
        let info = MigrationInfo {
            state: "pre-copy",
            progress: Progress {
                expected_downtime_us: u64::MAX,
                ..Progress::default()
            },
            ..Default::default()
        };
        let text = format!("{info}");
        assert!(text.contains("pre-copy (live), round 0,"));
        assert!(text.contains("expected downtime unknown"));
        let mut s = FinalStats {
            rounds: 3,
            downtime_us: 4000,
            estimated_downtime_us: u64::MAX,
            ..Default::default()
        };
        assert!(format!("{s}").contains("downtime 4.000 ms, "));
        s.estimated_downtime_us = 3500;
        assert!(format!("{s}").contains("downtime 4.000 ms (estimated 3.500 ms), "));
    }
}
