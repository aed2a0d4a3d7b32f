//! Property tests of window assignment and watermarks: bins summed over a window equal a
//! brute-force count of the events in it, whatever the order the events arrive in; co-elevation
//! equals its definition (docs/methodology.md §3.7) computed from the events themselves; and the
//! global watermark never decreases and never passes an active input.

use proptest::prelude::*;
use vigil_model::Event;
use vigil_model::time::{DAY, HOUR};
use vigil_rules::compile;
use vigil_rules::filter::EvalCtx;
use vigil_rules::testing as mini;
use vigil_window::Watermarks;
use vigil_window::measure::{self, Layout, Leg};

fn base() -> i64 {
    vigil_model::time::parse_rfc3339("2026-03-01T00:00:00+08:00").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn window_sums_equal_brute_force(
        offsets in prop::collection::vec(0i64..(10 * DAY), 1..300),
        kinds in prop::collection::vec(0i64..4, 300),
        ends in prop::collection::vec(2i64..(10 * 24), 1..10),
        shuffle_seed in any::<u64>(),
    ) {
        let rules = compile(&mini::files_with(&[])).unwrap();
        let ind = &rules.indicators[0]; // crime_count_24h: theft or fight, 24h window, hourly bins
        let layout = Layout::for_indicator(&rules, ind);
        let zone = &rules.zone;
        let g1 = rules.regions.lookup("G1").unwrap() as usize;
        let mut events: Vec<Event> = offsets.iter().zip(&kinds).map(|(&o, &k)| {
            let mut e = Event { region: g1 as u32, ts: base() + o, ..Event::default() };
            e.set(0, k);
            e
        }).collect();
        // Arrival order must not matter.
        let mut s = shuffle_seed;
        for i in (1..events.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            events.swap(i, (s >> 33) as usize % (i + 1));
        }
        // Evaluate at each end after feeding the events up to it (a ring only keeps recent bins).
        let mut ends = ends;
        ends.sort();
        for &e in &ends {
            let end = base() + e * HOUR;
            let mut fresh = layout.new_bins(rules.regions.len());
            // Events within the ring's reach of the window end (what lateness guarantees).
            let reach = (layout.ring as i64 - 2) * layout.bin;
            for ev in events.iter().filter(|ev| ev.ts < end && ev.ts >= end - reach) {
                let cx = EvalCtx::new(ev, zone);
                if ind.filter.matches(&cx) {
                    let lanes = fresh.slot_mut(g1, layout.bin_of(zone.local(ev.ts))).unwrap();
                    measure::update(ind, &layout, Leg::Primary, &cx, lanes);
                }
            }
            let mut scratch = [0i64; measure::MAX_LANES];
            let got = measure::extract(ind, &layout, &fresh, g1, zone.local(end), &mut scratch).value.unwrap();
            let want = events.iter().filter(|ev| ev.ts >= end - DAY && ev.ts < end && ev.attrs[0] <= 1).count() as f64;
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn coelevation_equals_its_definition_from_the_events(
        offsets in prop::collection::vec(0i64..(10 * DAY), 1..400),
        urgent in prop::collection::vec(any::<bool>(), 400),
        hot in prop::collection::vec(0i64..(10 * 24), 0..6),
        ends in prop::collection::vec(8i64 * 24..(10 * 24), 1..6),
    ) {
        let indicator = "[[indicator]]\nid = \"co\"\nname = \"Co\"\ncategory = \"volume\"\nsource = \"police\"\n\
            measure = \"coelevation(0.05)\"\ncompare = { source = \"police\", filter = \"urgent = TRUE\" }\n\
            window = \"24h\"\nhop = \"1h\"\ndirection = \"up\"\nmin_support = 0\nweight = 1.0\n\
            normalise = { method = \"robust_z\", windows = 12 }\n";
        let rules = compile(&mini::files_with(&[("indicators/police.toml", indicator)])).unwrap_or_else(|d| panic!("{d}"));
        let ind = &rules.indicators[0];
        let compare = ind.compare.as_ref().unwrap();
        let layout = Layout::for_indicator(&rules, ind);
        let zone = &rules.zone;
        let g1 = rules.regions.lookup("G1").unwrap() as usize;
        // Scattered calls, and a few hours with ten more (elevated on both legs when urgent).
        let mut ts: Vec<i64> = offsets.iter().map(|&o| base() + o).collect();
        for &h in &hot {
            ts.extend((0..10).map(|k| base() + h * HOUR + k * 60_000));
        }
        let events: Vec<Event> = ts.iter().enumerate().map(|(k, &t)| {
            let mut e = Event { region: g1 as u32, ts: t, ..Event::default() };
            e.set(3, i64::from(urgent[k % urgent.len()] || k >= offsets.len()));
            e
        }).collect();
        for &e in &ends {
            let end = base() + e * HOUR;
            let mut bins = layout.new_bins(rules.regions.len());
            let reach = (layout.ring as i64 - 2) * layout.bin;
            for ev in events.iter().filter(|ev| ev.ts < end && ev.ts >= end - reach) {
                let cx = EvalCtx::new(ev, zone);
                let lanes = bins.slot_mut(g1, layout.bin_of(zone.local(ev.ts))).unwrap();
                if ind.filter.matches(&cx) {
                    measure::update(ind, &layout, Leg::Primary, &cx, lanes);
                }
                if compare.filter.matches(&cx) {
                    measure::update(ind, &layout, Leg::Compare, &cx, lanes);
                }
            }
            let mut scratch = [0i64; measure::MAX_LANES];
            let got = measure::extract(ind, &layout, &bins, g1, zone.local(end), &mut scratch).value.unwrap();
            // The definition: hours of the last day in which both legs counted more than their
            // mean over the same hour of the 7 days before and than its Poisson upper limit.
            let count = |from: i64, leg: bool| {
                events.iter().filter(|ev| ev.ts >= from && ev.ts < from + HOUR && (!leg || ev.attrs[3] == 1)).count() as f64
            };
            let elevated = |h: i64, leg: bool| {
                let c = count(h, leg);
                let m = (1..=7).map(|d| count(h - d * DAY, leg)).sum::<f64>() / 7.0;
                c > m && c > measure::poisson_upper(m, 0.05)
            };
            let want = (1..=24).filter(|&k| elevated(end - k * HOUR, false) && elevated(end - k * HOUR, true)).count();
            prop_assert_eq!(got, want as f64, "window ending at hour {}", e);
        }
    }

    #[test]
    fn watermark_is_monotone_and_bounded_by_active_inputs(
        steps in prop::collection::vec((0usize..3, 0i64..1_000_000, any::<bool>()), 1..200),
    ) {
        let delays = [5, 50, 500];
        let mut w = Watermarks::new(&delays);
        let mut max = [None::<i64>; 3];
        let mut idle = [false; 3];
        let mut last: Option<i64> = None;
        for (input, ts, make_idle) in steps {
            if make_idle {
                w.set_idle(input, true);
                idle[input] = true;
            } else {
                w.observe(input, ts);
                idle[input] = false;
                max[input] = Some(max[input].map_or(ts, |m: i64| m.max(ts)));
            }
            let cur = w.current();
            if let (Some(prev), Some(c)) = (last, cur) {
                prop_assert!(c >= prev, "watermark went back");
            }
            if cur.is_some() {
                last = cur;
            }
            // While every active input has data, the watermark only passes an active input's own
            // watermark when it had been higher before (it never goes back).
            let active: Vec<i64> = (0..3).filter(|&i| !idle[i]).filter_map(|i| max[i].map(|m| m - delays[i])).collect();
            let all_active_have_data = (0..3).filter(|&i| !idle[i]).all(|i| max[i].is_some());
            if let (Some(c), Some(&m), true) = (cur, active.iter().min(), all_active_have_data) {
                prop_assert!(c == m || Some(c) == last, "watermark {} vs active minimum {}", c, m);
            }
        }
    }
}
