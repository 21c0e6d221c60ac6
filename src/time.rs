//! Timestamps: nanoseconds since the Unix epoch, and RFC 3339 in UTC.
//!
//! Hand-written because the conversion is a few lines of civil-calendar arithmetic and every
//! user of it (the repair journal, dump, export) needs the same exact text.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before 1970).
#[must_use]
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Formats nanoseconds since the epoch as RFC 3339 UTC with nanosecond precision,
/// for example `2026-11-21T09:30:00.000000001Z`.
#[must_use]
pub fn rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`) into nanoseconds since the epoch.
/// Returns `None` for malformed text or a time before 1970.
#[must_use]
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &text[start..i];
        if digits.is_empty() {
            return None;
        }
        let padded: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(9)
            .collect();
        frac = padded.parse().ok()?;
    }
    let offset_secs = match &text[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    // A day past the end of its month (February 30) would silently become a day of the next.
    if civil_from_days(days) != (y, mo as u32, d as u32) {
        return None;
    }
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
    let nanos = i128::from(secs) * 1_000_000_000 + i128::from(frac);
    u64::try_from(nanos).ok()
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(951_782_400_000_000_007),
            "2000-02-29T00:00:00.000000007Z"
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00.000000007Z"),
            Some(951_782_400_000_000_007)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T01:00:00+01:00"),
            Some(951_782_400_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00.5Z"),
            Some(951_782_400_500_000_000)
        );
        // Offsets with minutes, east and west of UTC, name the same instant.
        for local in ["2000-02-29T05:30:00+05:30", "2000-02-28T18:30:00-05:30"] {
            assert_eq!(
                parse_rfc3339(local),
                Some(951_782_400_000_000_000),
                "{local}"
            );
        }
        // The first day of a 400-year era of the calendar arithmetic (day 0 of its cycle).
        assert_eq!(
            rfc3339(951_868_800_000_000_000),
            "2000-03-01T00:00:00.000000000Z"
        );
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:00Z"),
            Some(951_868_800_000_000_000)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_rfc3339("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    /// Each part of the syntax checked on its own: one thing wrong is enough to refuse.
    #[test]
    fn every_malformed_part_is_refused_alone() {
        for good in [
            "2000-02-29T00:00:00Z",
            "2000-02-29t00:00:00z",
            "2000-02-29 00:00:00Z",
            "2016-12-31T23:59:60Z",
            "2000-02-29T00:00:00.1234567891Z",
            "2000-02-29T00:00:00-00:30",
        ] {
            assert!(parse_rfc3339(good).is_some(), "{good}");
        }
        for bad in [
            "2000-02-29T00:00:00",
            "2000/02-29T00:00:00Z",
            "2000-02/29T00:00:00Z",
            "2000-02-29T00-00:00Z",
            "2000-02-29T00:00-00Z",
            "2000-00-29T00:00:00Z",
            "2000-02-00T00:00:00Z",
            "2000-02-29T24:00:00Z",
            "2000-02-29T00:60:00Z",
            "2000-02-29T00:00:61Z",
            "2000-02-29T00:00:00.Z",
            "2000-02-29T00:00:00.123",
            "2000-02-29T00:00:00+0100",
            "2000-02-29T00:00:00 01:00",
            "2000-02-29T00:00:00+01:00x",
            "2000-02-29T00:00:00+1:000",
            "2000-02-29T00:00:00ZZ",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_day_past_the_end_of_its_month_is_refused() {
        for no_such_day in [
            "2001-02-29T00:00:00Z",
            "2000-02-30T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-31T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(no_such_day), None, "{no_such_day}");
        }
        for day in [
            "2000-02-29T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2026-12-31T23:59:59Z",
        ] {
            assert!(parse_rfc3339(day).is_some(), "{day}");
        }
    }

    /// The wall clock as the standard library reads it, in nanoseconds: two readings around
    /// `now_nanos` bracket it.
    #[test]
    fn now_is_the_wall_clock_in_nanoseconds() {
        let read = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        };
        let before = read();
        let now = u128::from(now_nanos());
        let after = read();
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }

    #[test]
    fn round_trips_across_centuries() {
        for n in (0..4_000_000_000u64)
            .step_by(7_777_777)
            .map(|s| s * 1_000_000_000 + 123)
        {
            assert_eq!(parse_rfc3339(&rfc3339(n)), Some(n));
        }
    }
}
