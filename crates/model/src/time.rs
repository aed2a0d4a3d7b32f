//! Event time. vigil keeps time as UTC epoch milliseconds (`Ts`) and durations in milliseconds;
//! parsing and formatting are hand-written so that the per-event path never allocates and the
//! output text is byte-stable across platforms and crate versions.

use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Ts = i64;

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;
pub const WEEK: i64 = 7 * DAY;

/// Event times outside [2000-01-01, 2100-01-01) are rejected as out of range: they are
/// almost always unit mistakes (seconds for milliseconds) and would otherwise allocate bins
/// decades away from the rest of the stream.
pub const MIN_TS: Ts = 946_684_800_000;
pub const MAX_TS: Ts = 4_102_444_800_000;

/// A span of event time in milliseconds, parsed from rule text such as `"7d"` or `"90m"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub i64);

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub fn ms(self) -> i64 {
        self.0
    }

    /// Parses `<integer><unit>` with unit one of `ms`, `s`, `m`, `h`, `d`, `w`.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("bad duration `{text}`: expected a number followed by ms, s, m, h, d or w"));
        }
        let n: i64 = text[..digits].parse().map_err(|_| format!("bad duration `{text}`: number too large"))?;
        let unit = match &text[digits..] {
            "ms" => 1,
            "s" => SECOND,
            "m" => MINUTE,
            "h" => HOUR,
            "d" => DAY,
            "w" => WEEK,
            other => {
                return Err(format!("bad duration `{text}`: unknown unit `{other}` (use ms, s, m, h, d or w)"));
            }
        };
        n.checked_mul(unit).map(Duration).ok_or_else(|| format!("bad duration `{text}`: too large"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        for (unit, name) in [(WEEK, "w"), (DAY, "d"), (HOUR, "h"), (MINUTE, "m"), (SECOND, "s")] {
            if ms != 0 && ms % unit == 0 {
                return write!(f, "{}{}", ms / unit, name);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Why a timestamp could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsError {
    Syntax,
    OutOfRange,
}

fn digits(b: &[u8], at: usize, n: usize) -> Result<u32, TsError> {
    let mut v = 0u32;
    for i in 0..n {
        let c = *b.get(at + i).ok_or(TsError::Syntax)?;
        if !c.is_ascii_digit() {
            return Err(TsError::Syntax);
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Ok(v)
}

/// Parses an RFC 3339 timestamp with a mandatory offset (`Z` or `+hh:mm`), optional fraction,
/// and `T`, `t` or a space between date and time. No allocation.
pub fn parse_rfc3339(s: &str) -> Result<Ts, TsError> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err(TsError::Syntax);
    }
    let year = digits(b, 0, 4)? as i64;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(TsError::Syntax);
    }
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[13] != b':' || b[16] != b':' {
        return Err(TsError::Syntax);
    }
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(TsError::Syntax);
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return Err(TsError::Syntax);
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_min: i64 = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(b, i + 1, 2)? as i64;
            let om = digits(b, i + 4, 2)? as i64;
            if oh > 23 || om > 59 {
                return Err(TsError::Syntax);
            }
            let v = oh * 60 + om;
            if sign == b'-' { -v } else { v }
        }
        _ => return Err(TsError::Syntax),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour as i64 * 3600 + minute.min(59) as i64 * 60 + second.min(59) as i64;
    let ts = secs * 1000 + millis - offset_min * MINUTE;
    check_range(ts)
}

/// Checks that a timestamp lies in the range vigil accepts.
pub fn check_range(ts: Ts) -> Result<Ts, TsError> {
    if (MIN_TS..MAX_TS).contains(&ts) { Ok(ts) } else { Err(TsError::OutOfRange) }
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Formats a timestamp as `YYYY-MM-DDThh:mm:ssZ` (with `.mmm` only when the milliseconds are
/// not zero). This is the one textual form of time in every vigil output.
pub fn format_utc(ts: Ts) -> String {
    let mut s = String::with_capacity(24);
    write_utc(&mut s, ts);
    s
}

/// Appends the form of [`format_utc`] to `out`.
pub fn write_utc(out: &mut String, ts: Ts) {
    use std::fmt::Write;
    let days = ts.div_euclid(DAY);
    let ms_of_day = ts.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let h = ms_of_day / HOUR;
    let mi = (ms_of_day % HOUR) / MINUTE;
    let se = (ms_of_day % MINUTE) / SECOND;
    let ms = ms_of_day % SECOND;
    let _ = write!(out, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{se:02}");
    if ms != 0 {
        let _ = write!(out, ".{ms:03}");
    }
    out.push('Z');
}

/// Formats a timestamp in a fixed local offset as RFC 3339, e.g. `2026-11-22T10:03:00+08:00`.
pub fn format_local(ts: Ts, offset: Duration) -> String {
    use std::fmt::Write;
    let local = ts + offset.0;
    let days = local.div_euclid(DAY);
    let ms_of_day = local.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let h = ms_of_day / HOUR;
    let mi = (ms_of_day % HOUR) / MINUTE;
    let se = (ms_of_day % MINUTE) / SECOND;
    let off_min = offset.0 / MINUTE;
    let sign = if off_min < 0 { '-' } else { '+' };
    let mut s = String::with_capacity(25);
    let _ = write!(
        s,
        "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{se:02}{sign}{:02}:{:02}",
        off_min.abs() / 60,
        off_min.abs() % 60
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_fractions() {
        let a = parse_rfc3339("2026-11-22T10:03:00+08:00").unwrap();
        let b = parse_rfc3339("2026-11-22T02:03:00Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_utc(a), "2026-11-22T02:03:00Z");
        let c = parse_rfc3339("2026-11-22T02:03:00.25Z").unwrap();
        assert_eq!(c - b, 250);
        assert_eq!(format_utc(c), "2026-11-22T02:03:00.250Z");
        assert_eq!(format_local(a, Duration(8 * HOUR)), "2026-11-22T10:03:00+08:00");
    }

    #[test]
    fn rejects_bad_text_and_range() {
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-22T10:03:00",
            "2026-11-22T10:03:00+0800",
            "x026-11-22T10:03:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), Err(TsError::Syntax), "{bad}");
        }
        assert_eq!(parse_rfc3339("1999-12-31T23:59:59Z"), Err(TsError::OutOfRange));
    }

    #[test]
    fn civil_round_trip() {
        for z in [-1_000_000i64, -1, 0, 1, 10_957, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("7d").unwrap().0, 7 * DAY);
        assert_eq!(Duration::parse("90m").unwrap().to_string(), "90m");
        assert_eq!(Duration::parse("24h").unwrap().to_string(), "1d");
        assert!(Duration::parse("7").is_err());
        assert!(Duration::parse("d").is_err());
        assert!(Duration::parse("7y").is_err());
    }
}
