//! A time zone as vigil uses it: a table of UTC offsets, precomputed once when the rules are
//! compiled (from the tz database, or one fixed offset), so that the per-event path maps event
//! time to local civil time with a binary search over integers and never allocates.
//!
//! vigil bins, windows and evaluates on the *local axis*: local civil time written as if it were
//! UTC (`local = ts + offset(ts)`). A local day is then always exactly 24 hours of the axis,
//! whatever the clocks did that day, so a daily window is the local calendar day (23 or 25 real
//! hours on DST days) and hour-of-day and hour-of-week are wall-clock hours. The price is two
//! hourly bins a year: when clocks go back, the repeated hour's bin holds both real hours; when
//! they go forward, the skipped hour's bin stays empty.

use std::fmt;

use crate::time::{DAY, MINUTE, Ts, civil_from_days};

/// UTC offsets over time, from the tz database or fixed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Zone {
    /// As written in the rules: an IANA name such as `America/Chicago`, or `+05:30`.
    name: String,
    /// UTC instants (ms) at which the offset changes, ascending.
    at: Vec<Ts>,
    /// Offsets in ms: `offsets[0]` before `at[0]`, `offsets[i + 1]` from `at[i]` on.
    offsets: Vec<i64>,
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The layout fingerprint hashes this rendering: the table, not only the name, so that a
        // tz database with other rules for the zone counts as another layout.
        write!(f, "Zone({}, {:?}, {:?})", self.name, self.at, self.offsets)
    }
}

impl Zone {
    /// A zone that is always `offset_ms` ahead of UTC.
    pub fn fixed(name: impl Into<String>, offset_ms: i64) -> Zone {
        Zone { name: name.into(), at: Vec::new(), offsets: vec![offset_ms] }
    }

    /// A zone from its offset before the first transition and its transitions `(instant,
    /// offset from then on)`, ascending. Transitions that do not change the offset are dropped.
    pub fn from_transitions(name: impl Into<String>, initial: i64, transitions: &[(Ts, i64)]) -> Zone {
        let mut z = Zone::fixed(name, initial);
        for &(t, o) in transitions {
            if z.at.last().is_some_and(|&l| t <= l) || *z.offsets.last().unwrap_or(&initial) == o {
                continue;
            }
            z.at.push(t);
            z.offsets.push(o);
        }
        z
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when the offset never changes.
    pub fn is_fixed(&self) -> bool {
        self.at.is_empty()
    }

    /// The offset from UTC in force at `ts`, in ms.
    #[inline]
    pub fn offset_at(&self, ts: Ts) -> i64 {
        self.offsets[self.at.partition_point(|&a| a <= ts)]
    }

    /// Local civil time of `ts` on the local axis.
    #[inline]
    pub fn local(&self, ts: Ts) -> i64 {
        ts + self.offset_at(ts)
    }

    /// The earliest local time that any instant at or after `ts` maps to: [`Zone::local`] made
    /// monotone. An hour before clocks go back it stays at the repeated hour's start, because
    /// events of that hour are still to come; this is how far a watermark `ts` lets evaluation
    /// advance on the local axis.
    pub fn local_floor(&self, ts: Ts) -> i64 {
        let i = self.at.partition_point(|&a| a <= ts);
        let mut m = ts + self.offsets[i];
        // Only a later transition can map to an earlier local time; offsets change by hours
        // and transitions are months apart, so the next two are all that can matter.
        for j in i..(i + 2).min(self.at.len()) {
            m = m.min(self.at[j] + self.offsets[j + 1]);
        }
        m
    }

    /// The first UTC instant `t` with `local_floor(t) >= local`: when a local boundary has
    /// passed for good. For a local time that exists once, the instant it names.
    pub fn utc(&self, local: i64) -> Ts {
        // local_floor is non-decreasing and within a day of `t`; bisect in that range.
        let (mut lo, mut hi) = (local - 2 * DAY, local + 2 * DAY);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.local_floor(mid) >= local {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// The local calendar date (`YYYY-MM-DD`) of a local-axis time.
    pub fn date_of_local(local: i64) -> String {
        let (y, m, d) = civil_from_days(local.div_euclid(DAY));
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Formats `ts` as RFC 3339 in this zone's offset at that instant, e.g.
    /// `2026-11-22T10:03:00+08:00`.
    pub fn format(&self, ts: Ts) -> String {
        crate::time::format_local(ts, crate::Duration(self.offset_at(ts)))
    }
}

/// Parses a fixed offset `Z`, `+hh:mm` or `-hh:mm` (any minute, at most 14 hours) into ms.
pub fn parse_fixed_offset(s: &str) -> Option<i64> {
    if s == "Z" {
        return Some(0);
    }
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' || !matches!(b[0], b'+' | b'-') {
        return None;
    }
    if !s[1..3].bytes().chain(s[4..].bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i64 = s[1..3].parse().ok()?;
    let m: i64 = s[4..].parse().ok()?;
    if m > 59 || h * 60 + m > 14 * 60 {
        return None;
    }
    let v = (h * 60 + m) * MINUTE;
    Some(if b[0] == b'-' { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{HOUR, parse_rfc3339};

    /// America/Chicago around 2026: CDT (-5) from 2026-03-08 08:00Z, CST (-6) from 2026-11-01 07:00Z.
    fn chicago() -> Zone {
        let spring = parse_rfc3339("2026-03-08T08:00:00Z").unwrap();
        let fall = parse_rfc3339("2026-11-01T07:00:00Z").unwrap();
        Zone::from_transitions("America/Chicago", -6 * HOUR, &[(spring, -5 * HOUR), (fall, -6 * HOUR)])
    }

    #[test]
    fn fixed_offsets() {
        assert_eq!(parse_fixed_offset("+05:30"), Some(5 * HOUR + 30 * MINUTE));
        assert_eq!(parse_fixed_offset("-06:00"), Some(-6 * HOUR));
        assert_eq!(parse_fixed_offset("Z"), Some(0));
        for bad in ["+5:30", "+05:60", "+15:00", "05:00", "+0530", "+0a:00"] {
            assert_eq!(parse_fixed_offset(bad), None, "{bad}");
        }
        let z = Zone::fixed("+05:30", 5 * HOUR + 30 * MINUTE);
        assert_eq!(z.local(0), 5 * HOUR + 30 * MINUTE);
        assert_eq!(z.utc(z.local(12345)), 12345);
    }

    #[test]
    fn fall_back_holds_the_repeated_hour() {
        let z = chicago();
        let fall = parse_rfc3339("2026-11-01T07:00:00Z").unwrap();
        // 06:30Z is 01:30 CDT; 07:30Z is 01:30 CST: the same local time twice.
        assert_eq!(z.local(fall - 30 * MINUTE), z.local(fall + 30 * MINUTE));
        // The floor does not pass local 01:00 until the repeated hour starts.
        let one_am = z.local(fall);
        assert_eq!(z.local_floor(fall - 30 * MINUTE), one_am);
        assert_eq!(z.local_floor(fall + 30 * MINUTE), one_am + 30 * MINUTE);
        // Local 02:00 has passed for good only at 08:00Z.
        assert_eq!(z.utc(one_am + HOUR), fall + HOUR);
        assert_eq!(Zone::date_of_local(one_am), "2026-11-01");
    }

    #[test]
    fn spring_forward_skips_an_hour() {
        let z = chicago();
        let spring = parse_rfc3339("2026-03-08T08:00:00Z").unwrap();
        // 07:59Z is 01:59 CST; 08:00Z is 03:00 CDT.
        assert_eq!(z.local(spring) - z.local(spring - MINUTE), HOUR + MINUTE);
        // Local 02:00 and 03:00 both pass at 08:00Z.
        let three = z.local(spring);
        assert_eq!(z.utc(three - HOUR), spring);
        assert_eq!(z.utc(three), spring);
        assert_eq!(z.format(spring), "2026-03-08T03:00:00-05:00");
    }
}
