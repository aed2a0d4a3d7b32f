//! Time zones named in rules: an IANA name, looked up in the tz database bundled into the binary
//! (so results never depend on the host's zoneinfo), or a fixed offset. Both compile to a
//! [`Zone`] table covering every event time vigil accepts.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use vigil_model::Zone;
use vigil_model::time::{DAY, MAX_TS, MIN_TS, SECOND};
use vigil_model::zone::parse_fixed_offset;

/// The `timezone` of a rule set as a zone table, or a message for the rule author.
pub fn parse_zone(text: &str) -> Result<Zone, String> {
    let hint = "write an IANA zone name such as \"America/Chicago\" or \"Asia/Shanghai\", or a fixed offset such as \"+08:00\" or \"+05:30\"";
    if text.starts_with(['+', '-']) || text == "Z" {
        return parse_fixed_offset(text)
            .map(|o| Zone::fixed(text, o))
            .ok_or_else(|| format!("bad offset `{text}`: {hint} (at most ±14:00)"));
    }
    let Ok(tz) = TimeZone::get(text) else {
        let near = nearest_name(text).map(|n| format!(" (did you mean \"{n}\"?)")).unwrap_or_default();
        return Err(format!("unknown time zone `{text}`{near}: {hint}"));
    };
    // The table covers the accepted event range with two days' margin either side, enough for
    // every local-axis computation near its ends.
    let (from, to) = (MIN_TS - 2 * DAY, MAX_TS + 2 * DAY);
    let start = Timestamp::from_millisecond(from).map_err(|e| format!("time zone `{text}`: {e}"))?;
    let initial = tz.to_offset(start).seconds() as i64 * SECOND;
    let mut transitions = Vec::new();
    for t in tz.following(start) {
        let at = t.timestamp().as_millisecond();
        if at > to {
            break;
        }
        transitions.push((at, t.offset().seconds() as i64 * SECOND));
    }
    Ok(Zone::from_transitions(text, initial, &transitions))
}

/// The zone name closest to a misspelt one (case-insensitive, at most three edits away).
fn nearest_name(text: &str) -> Option<String> {
    let want = text.to_ascii_lowercase();
    let mut best: Option<(usize, String)> = None;
    for name in jiff::tz::db().available() {
        let name = name.as_str().to_string();
        let d = edit_distance(&want, &name.to_ascii_lowercase());
        if d <= 3 && best.as_ref().is_none_or(|(b, n)| (d, &name) < (*b, n)) {
            best = Some((d, name));
        }
    }
    best.map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::time::{HOUR, parse_rfc3339};

    #[test]
    fn chicago_from_the_tz_database() {
        let z = parse_zone("America/Chicago").unwrap();
        let winter = parse_rfc3339("2019-01-15T12:00:00Z").unwrap();
        let summer = parse_rfc3339("2019-07-15T12:00:00Z").unwrap();
        assert_eq!(z.offset_at(winter), -6 * HOUR);
        assert_eq!(z.offset_at(summer), -5 * HOUR);
        // 2019-03-10 02:00 CST -> 03:00 CDT at 08:00Z.
        let spring = parse_rfc3339("2019-03-10T08:00:00Z").unwrap();
        assert_eq!(z.offset_at(spring - 1), -6 * HOUR);
        assert_eq!(z.offset_at(spring), -5 * HOUR);
        assert!(!z.is_fixed());
    }

    #[test]
    fn errors_say_what_to_write() {
        let e = parse_zone("America/Chicgo").unwrap_err();
        assert!(e.contains("did you mean \"America/Chicago\""), "{e}");
        assert!(parse_zone("+05:30").is_ok());
        assert!(parse_zone("+5").unwrap_err().contains("bad offset"));
        assert!(parse_zone("Asia/Kolkata").unwrap().offset_at(0) == 5 * HOUR + 30 * 60_000);
    }
}
