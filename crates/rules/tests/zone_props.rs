//! Local days and hours of week across daylight-saving transitions in both directions, against
//! jiff's own civil-time conversion as the oracle: vigil's zone table and local axis must give
//! every instant the calendar day, weekday and hour that the tz database gives it, and the
//! evaluation schedule must pass each local midnight exactly once, at the right instant.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use vigil_model::Event;
use vigil_model::time::{DAY, HOUR, MINUTE, days_from_civil};
use vigil_rules::filter::EvalCtx;
use vigil_rules::zone::parse_zone;

/// Zones with DST forward and back at different local hours, both hemispheres, and a
/// half-hour zone.
const ZONES: [&str; 5] = ["America/Chicago", "Europe/London", "Australia/Sydney", "America/Santiago", "Asia/Kolkata"];

/// Instants within three days of a transition of `zone` in years 2001-2098.
fn near_transition(zone: &str, year: i16, pick: usize, delta: i64) -> i64 {
    let tz = TimeZone::get(zone).unwrap();
    let start = jiff::civil::date(year, 1, 1).at(0, 0, 0, 0).to_zoned_datetime(tz.clone()).unwrap().timestamp();
    let ts: Vec<Timestamp> = tz.following(start).take(2).map(|t| t.timestamp()).collect();
    let base = ts.get(pick % ts.len().max(1)).copied().unwrap_or(start);
    base.as_millisecond() + delta
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn local_day_hour_and_weekday_match_the_tz_database(
        z in 0usize..ZONES.len(),
        year in 2001i16..2099,
        pick in 0usize..2,
        delta in -3 * DAY..3 * DAY,
    ) {
        let name = ZONES[z];
        let zone = parse_zone(name).unwrap();
        let ts = near_transition(name, year, pick, delta);
        let civil = Timestamp::from_millisecond(ts).unwrap().to_zoned_datetime(TimeZone::get(name).unwrap()).datetime();
        let local = zone.local(ts);
        // The local day bin is the civil date.
        let day = days_from_civil(civil.year() as i64, civil.month() as u32, civil.day() as u32);
        prop_assert_eq!(local.div_euclid(DAY), day, "{} {}", name, ts);
        // Hour of day and ISO weekday as filters and hour-of-week seasonality see them.
        let ev = Event { ts, ..Event::default() };
        let cx = EvalCtx::new(&ev, &zone);
        prop_assert_eq!(cx.hour, civil.hour() as i64);
        prop_assert_eq!(cx.dow, civil.weekday().to_monday_one_offset() as i64);
        // The minute within the hour is the civil one, too (half-hour zones).
        prop_assert_eq!(local.rem_euclid(HOUR) / MINUTE, civil.minute() as i64);
    }

    #[test]
    fn local_midnights_pass_once_in_order_at_the_civil_instant(
        z in 0usize..ZONES.len(),
        year in 2001i16..2099,
        pick in 0usize..2,
        delta in -3 * DAY..3 * DAY,
    ) {
        let name = ZONES[z];
        let zone = parse_zone(name).unwrap();
        let tz = TimeZone::get(name).unwrap();
        let ts = near_transition(name, year, pick, delta);
        // The monotone local clock never runs backwards and never passes the true local time.
        prop_assert!(zone.local_floor(ts) <= zone.local(ts));
        prop_assert!(zone.local_floor(ts) <= zone.local_floor(ts + 7 * MINUTE));
        // The next local midnight after `ts` passes at the first instant of that civil day
        // (the day's start, which jiff knows even where midnight itself does not exist).
        let midnight = (zone.local_floor(ts).div_euclid(DAY) + 1) * DAY;
        let at = zone.utc(midnight);
        let (y, m, d) = vigil_model::time::civil_from_days(midnight / DAY);
        let start = jiff::civil::date(y as i16, m as i8, d as i8).to_zoned_datetime(tz).unwrap().start_of_day().unwrap();
        prop_assert_eq!(at, start.timestamp().as_millisecond(), "{} midnight {}", name, midnight);
        // A day lasts 23 to 25 hours of real time, and midnights follow each other.
        let next = zone.utc(midnight + DAY);
        prop_assert!((23 * HOUR..=25 * HOUR).contains(&(next - at)), "{} {}", name, next - at);
    }
}

/// The two days a year with other than 24 hours, in Chicago: the daily windows hold exactly the
/// instants of the civil day.
#[test]
fn chicago_dst_days_have_23_and_25_hours() {
    let zone = parse_zone("America/Chicago").unwrap();
    for (date, hours) in [((2019, 3, 10), 23), ((2019, 11, 3), 25), ((2019, 6, 1), 24)] {
        let b = days_from_civil(date.0, date.1, date.2) * DAY;
        assert_eq!(zone.utc(b + DAY) - zone.utc(b), hours * HOUR, "{date:?}");
        // Every instant of the civil day maps into that day's bin.
        let mut t = zone.utc(b);
        while t < zone.utc(b + DAY) {
            assert_eq!(zone.local(t).div_euclid(DAY), b / DAY);
            t += 17 * MINUTE;
        }
    }
}
