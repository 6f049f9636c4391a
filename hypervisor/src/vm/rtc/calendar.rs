//! Calendar arithmetic for the RTC: seconds since the Unix epoch to and from the
//! MC146818's register fields, in binary or BCD and 12- or 24-hour format.
//!
//! The day-count conversions are the proleptic Gregorian "days from civil" algorithms
//! (as described by H. Hinnant, written out here); they are exact for every date the RTC
//! can hold. Parsing guest-written fields never fails: out-of-range values are clamped so
//! a garbage write gives a valid (if odd) time rather than a fault.

/// The time registers as numbers (binary, 24-hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    pub(crate) second: u8,
    pub(crate) minute: u8,
    pub(crate) hour: u8,
    /// 1 = Sunday .. 7 = Saturday.
    pub(crate) weekday: u8,
    pub(crate) day: u8,
    pub(crate) month: u8,
    /// Full year, 1970..=9999.
    pub(crate) year: u16,
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

impl DateTime {
    /// The calendar time `seconds` after 1970-01-01 00:00:00.
    pub(crate) fn from_unix(seconds: u64) -> Self {
        let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
        let rem = seconds % 86_400;
        let (year, month, day) = civil_from_days(days);
        Self {
            second: (rem % 60) as u8,
            minute: (rem / 60 % 60) as u8,
            hour: (rem / 3600) as u8,
            // 1970-01-01 was a Thursday (weekday 5 with Sunday = 1).
            weekday: ((days + 4) % 7 + 1) as u8,
            day: day as u8,
            month: month as u8,
            year: year.clamp(0, 9999) as u16,
        }
    }

    /// Seconds since the epoch; dates before it give 0. The weekday is ignored, as the
    /// MC146818 does not check it either.
    pub(crate) fn to_unix(self) -> u64 {
        let days = days_from_civil(self.year.into(), self.month.into(), self.day.into());
        let seconds = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        u64::try_from(seconds).unwrap_or(0)
    }
}

/// Binary to packed BCD (values above 99 wrap).
pub(crate) fn to_bcd(v: u8) -> u8 {
    let v = v % 100;
    ((v / 10) << 4) | (v % 10)
}

/// Packed BCD to binary (nibbles above 9 taken at face value).
pub(crate) fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0xf)
}

/// An hour (0-23) as register B formats it.
pub(crate) fn encode_hour(hour: u8, binary: bool, hours24: bool) -> u8 {
    let enc = |v| if binary { v } else { to_bcd(v) };
    if hours24 {
        return enc(hour);
    }
    let pm = hour >= 12;
    let h12 = match hour % 12 {
        0 => 12,
        h => h,
    };
    enc(h12) | if pm { 0x80 } else { 0 }
}

/// An hour register back to 0-23.
pub(crate) fn decode_hour(raw: u8, binary: bool, hours24: bool) -> u8 {
    let dec = |v| if binary { v } else { from_bcd(v) };
    if hours24 {
        return dec(raw).min(23);
    }
    let h12 = dec(raw & 0x7f).clamp(1, 12) % 12;
    if raw & 0x80 != 0 { h12 + 12 } else { h12 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = DateTime::from_unix(0);
        assert_eq!((t.year, t.month, t.day, t.weekday), (1970, 1, 1, 5));
        // 2026-12-04 14:16:13 UTC, a Friday.
        let t = DateTime::from_unix(1_796_393_773);
        assert_eq!(
            (
                t.year, t.month, t.day, t.hour, t.minute, t.second, t.weekday
            ),
            (2026, 12, 4, 14, 16, 13, 6)
        );
        assert_eq!(t.to_unix(), 1_796_393_773);
        let leap = DateTime::from_unix(951_782_400); // 2000-02-29
        assert_eq!((leap.month, leap.day), (2, 29));
    }

    #[test]
    fn bcd_and_hours() {
        assert_eq!(to_bcd(59), 0x59);
        assert_eq!(from_bcd(0x59), 59);
        assert_eq!(encode_hour(0, false, false), 0x12);
        assert_eq!(encode_hour(13, false, false), 0x81);
        assert_eq!(encode_hour(12, true, false), 0x8c);
        assert_eq!(decode_hour(0x81, false, false), 13);
        assert_eq!(decode_hour(0x12, false, false), 0);
        assert_eq!(decode_hour(0x23, false, true), 23);
    }
}
