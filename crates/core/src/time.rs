//! Timestamps: microseconds since the Unix epoch (UTC), parsed leniently from what envelopes carry.

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

pub const MICROS_PER_SEC: i64 = 1_000_000;

/// The current wall-clock time.
#[must_use]
pub fn now_us() -> Micros {
    Utc::now().timestamp_micros()
}

/// Parses the timestamps found in the wild:
/// RFC 3339 (`2026-01-27T10:00:00Z`, `...+00:00`, any fraction), Python's `isoformat()` without
/// an offset (taken as UTC), and a space instead of `T`. Returns `None` for anything else.
#[must_use]
pub fn parse_rfc3339_us(s: &str) -> Option<Micros> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || day > 31 || hour > 23 || minute > 59 || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            let (om, end) = if b.get(i + 3) == Some(&b':') {
                (digits(b, i + 4, 2)?, i + 6)
            } else {
                (digits(b, i + 3, 2)?, i + 5)
            };
            if end != b.len() || oh > 23 || om > 59 {
                return None;
            }
            let secs = oh * 3600 + om * 60;
            if sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * MICROS_PER_SEC + micros)
}

/// Interprets a number found in a time field: seconds, milliseconds or microseconds since the
/// epoch, told apart by magnitude (years 1973..=5138 for each unit).
#[must_use]
pub fn from_epoch_number(value: f64) -> Option<Micros> {
    if !value.is_finite() || value <= 0.0 {
        return None;
    }
    let micros = if value < 1e11 {
        value * 1e6
    } else if value < 1e14 {
        value * 1e3
    } else if value < 1e17 {
        value
    } else {
        return None;
    };
    Some(micros as i64)
}

/// RFC 3339 with microseconds and `Z`, as written in exports and `tail` output.
#[must_use]
pub fn format_rfc3339(us: Micros) -> String {
    DateTime::<Utc>::from_timestamp_micros(us).map_or_else(
        || us.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Micros, true),
    )
}

/// A length of time for people: "4.2 s", "12 min 5 s", "14 h 30 min", "2 d 3 h".
#[must_use]
pub fn format_span(us: Micros) -> String {
    let us = us.max(0);
    if us < 60 * MICROS_PER_SEC {
        return format!("{:.1} s", us as f64 / 1e6);
    }
    let s = us / MICROS_PER_SEC;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h) {
        (0, 0) => format!("{m} min {sec} s"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// `HH:MM:SS.mmm` in UTC, for compact tables.
#[must_use]
pub fn format_clock(us: Micros) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map_or_else(|| us.to_string(), |t| t.format("%H:%M:%S%.3f").to_string())
}

fn digits(b: &[u8], start: usize, len: usize) -> Option<i64> {
    let slice = b.get(start..start + len)?;
    let mut v = 0i64;
    for &c in slice {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A duration of `secs` seconds given by a user (a config value, a flag), or why not: it must be
/// a finite number within `min_secs..=max_secs`. `what` names the setting in the message
/// (`[health] poll_secs`). `Duration::from_secs_f64` panics on what this refuses.
pub fn checked_secs(
    secs: f64,
    min_secs: f64,
    max_secs: f64,
    what: &str,
) -> Result<std::time::Duration, String> {
    if secs.is_finite() && (min_secs..=max_secs).contains(&secs) {
        Ok(std::time::Duration::from_secs_f64(secs))
    } else {
        Err(format!(
            "{what} = {} is out of range: give a number of seconds from {min_secs} to {max_secs}",
            compact(secs)
        ))
    }
}

/// A number as a person typed it, short: `1e20`, `1e-300`, `NaN`, `15`, `0.5`.
fn compact(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-3..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// A rate (events per second and the like) given by a user, or why not: a finite number within
/// `min..=max`.
pub fn checked_rate(value: f64, min: f64, max: f64, what: &str) -> Result<f64, String> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{what} = {} is out of range: give a number from {min} to {max}",
            compact(value)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_people_say_them() {
        assert_eq!(format_span(4_200_000), "4.2 s");
        assert_eq!(format_span(725 * MICROS_PER_SEC), "12 min 5 s");
        assert_eq!(
            format_span((14 * 3600 + 30 * 60) * MICROS_PER_SEC),
            "14 h 30 min"
        );
        assert_eq!(
            format_span((2 * 86_400 + 3 * 3600 + 7) * MICROS_PER_SEC),
            "2 d 3 h"
        );
        assert_eq!(format_span(-5), "0.0 s");
    }

    #[test]
    fn absurd_durations_and_rates_are_refused_in_words() {
        assert_eq!(
            checked_secs(15.0, 1.0, 86_400.0, "poll_secs"),
            Ok(std::time::Duration::from_secs(15))
        );
        for bad in [1e20, -1.0, f64::NAN, f64::INFINITY, 0.5] {
            let e = checked_secs(bad, 1.0, 86_400.0, "[health] poll_secs").unwrap_err();
            assert!(
                e.starts_with("[health] poll_secs = ") && e.contains("out of range"),
                "{e}"
            );
        }
        assert!(checked_rate(1e-300, 0.001, 1e7, "--rate").is_err());
        assert!(checked_rate(f64::NAN, 0.001, 1e7, "--rate").is_err());
        assert_eq!(checked_rate(40.0, 0.0, 1e7, "rate"), Ok(40.0));
    }

    fn chrono_us(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn parses_the_forms_seen_in_envelopes() {
        for s in [
            "2026-01-27T10:00:00Z",
            "2026-08-15T09:53:09.123Z",
            "2026-08-15T09:53:09.123456+00:00",
            "2024-02-29T23:59:59.5-05:30",
            "1999-12-31T00:00:00.000000001+01:00",
        ] {
            assert_eq!(parse_rfc3339_us(s), Some(chrono_us(s)), "{s}");
        }
        // Python isoformat() without an offset is read as UTC.
        assert_eq!(
            parse_rfc3339_us("2026-01-27T10:00:00.250"),
            Some(chrono_us("2026-01-27T10:00:00.250Z"))
        );
        assert_eq!(
            parse_rfc3339_us("2026-01-27 10:00:00"),
            Some(chrono_us("2026-01-27T10:00:00Z"))
        );
    }

    #[test]
    fn rejects_junk_without_panicking() {
        for s in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00Zjunk",
            "2026-01-01T00:00:00.Z",
            "２０２６-01-01T00:00:00Z",
            "2026-01-01T00:00:00+9",
        ] {
            assert_eq!(parse_rfc3339_us(s), None, "{s}");
        }
    }

    #[test]
    fn epoch_numbers_by_magnitude() {
        let t = 1_767_225_600_000_000i64; // 2026-01-01
        assert_eq!(from_epoch_number(1_767_225_600.0), Some(t));
        assert_eq!(from_epoch_number(1_767_225_600_000.0), Some(t));
        assert_eq!(from_epoch_number(t as f64), Some(t));
        assert_eq!(from_epoch_number(f64::NAN), None);
        assert_eq!(from_epoch_number(-5.0), None);
        assert_eq!(from_epoch_number(1e30), None);
    }

    #[test]
    fn formats_round_trip() {
        let t = chrono_us("2026-08-15T09:53:09.123456Z");
        assert_eq!(format_rfc3339(t), "2026-08-15T09:53:09.123456Z");
        assert_eq!(parse_rfc3339_us(&format_rfc3339(t)), Some(t));
        assert_eq!(format_clock(t), "09:53:09.123");
    }
}
