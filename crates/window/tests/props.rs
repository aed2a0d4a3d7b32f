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

/// The measures whose windows do not simply subtract, and a count, each with its own hop.
const SLID: &[(&str, &str, &str)] = &[
    ("keys_spread(incident_type, band, 2)", "24h", "1h"),
    ("coelevation(0.05)", "24h", "1h"),
    ("max_bin", "24h", "1h"),
    ("distinct_days", "7d", "1d"),
    ("count", "24h", "1h"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Slid windows (`Running`) equal windows read bin by bin (`measure::extract`) at every hop,
    /// for every region, while events arrive in order, late into the window, late into the 7
    /// days before it (what coelevation's hours are judged against) and ahead of it. Each
    /// `(gap, burst, kind)` step moves on `gap` hours and sends `burst` events; `kind` says how
    /// late or early.
    #[test]
    fn slid_windows_equal_windows_read_whole(
        steps in prop::collection::vec((0u8..6, 0u8..5, 0u8..10), 20..160),
        seed in any::<u64>(),
    ) {
        let sources = mini::SOURCES.replace("allowed_lateness = \"2h\"", "allowed_lateness = \"3d\"").replace(
            "  type = \"bool\"",
            "  type = \"bool\"\n\n  [[source.attr]]\n  name = \"band\"\n  type = \"enum\"\n  values = [\"a\", \"b\", \"c\", \"d\", \"e\"]",
        );
        let mut file = String::new();
        for (k, (measure, window, hop)) in SLID.iter().enumerate() {
            let compare = match measure.starts_with("coelevation") {
                true => "compare = { source = \"police\", filter = \"urgent = TRUE\" }\n",
                false => "",
            };
            file.push_str(&format!(
                "[[indicator]]\nid = \"i{k}\"\nname = \"I{k}\"\ncategory = \"volume\"\nsource = \"police\"\n\
                 measure = \"{measure}\"\n{compare}window = \"{window}\"\nhop = \"{hop}\"\ndirection = \"up\"\n\
                 min_support = 0\nweight = 0.2\nnormalise = {{ method = \"robust_z\", windows = 5 }}\n\n"
            ));
        }
        let rules = compile(&mini::files_with(&[("sources.toml", &sources), ("indicators/police.toml", &file)]))
            .unwrap_or_else(|d| panic!("{d}"));
        let zone = &rules.zone;
        let regions = rules.regions.len();
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        // Events and evaluations over the steps; the evaluations run at each hour boundary
        // passed, every indicator on its own hop.
        let mut events = Vec::new();
        let mut t = base();
        for &(gap, burst, kind) in &steps {
            t += gap as i64 * HOUR;
            for _ in 0..burst {
                let ts = match kind {
                    // Late into the window, into the days before it, ahead of it.
                    0 | 1 => t - (next() % 20) as i64 * HOUR,
                    2 => t - DAY - (next() % (6 * 24)) as i64 * HOUR,
                    3 => t + (next() % 10) as i64 * HOUR,
                    _ => t - (next() % 60) as i64 * 60_000,
                };
                let mut e = Event { region: (next() % regions as u64) as u32, ts, ..Event::default() };
                e.set(0, (next() % 4) as i64);
                e.set(3, (next() % 2) as i64);
                e.set(4, (next() % 5) as i64);
                events.push((t, e));
            }
        }
        for (i, ind) in rules.indicators.iter().enumerate() {
            let layout = Layout::for_indicator(&rules, ind);
            let mut bins = layout.new_bins(regions);
            let mut run = vigil_window::Running::new(ind, &layout, regions);
            let mut scratch = [0i64; measure::MAX_LANES];
            let hop = ind.hop.0;
            let mut next_eval = zone.local(base()).div_euclid(hop) * hop + hop;
            let mut evaluated = 0;
            let feed = |bins: &mut vigil_window::Bins, run: &mut vigil_window::Running, e: &Event| {
                let cx = EvalCtx::new(e, zone);
                let bin = layout.bin_of(zone.local(e.ts));
                for (leg, pred) in [(Leg::Primary, Some(&ind.filter)), (Leg::Compare, ind.compare.as_ref().map(|c| &c.filter))] {
                    if !pred.is_some_and(|p| p.matches(&cx)) {
                        continue;
                    }
                    // Where a chain would count the event: its region and its parents.
                    for &r in &rules.regions.chains[e.region as usize] {
                        if let Ok(lanes) = bins.slot_mut(r as usize, bin) {
                            measure::update(ind, &layout, leg, &cx, lanes);
                            run.apply(ind, &layout, leg, &cx, r as usize, bin);
                        }
                    }
                }
            };
            for (now, e) in &events {
                // Evaluate every boundary the watermark (the step's time) has passed.
                while next_eval <= zone.local(*now) {
                    let (first, last) = layout.window_of(next_eval);
                    let mode = run.begin(&bins, first, last);
                    for r in 0..regions {
                        run.read(&bins, r, mode, first, last);
                        let slid = run.value(ind, &layout, &bins, r, next_eval);
                        let whole = measure::extract(ind, &layout, &bins, r, next_eval, &mut scratch);
                        prop_assert_eq!(slid, whole, "{} region {} at {}", SLID[i].0, r, next_eval);
                    }
                    run.end(first, last);
                    next_eval += hop;
                    evaluated += 1;
                }
                feed(&mut bins, &mut run, e);
            }
            prop_assert!(evaluated > 0 || steps.iter().map(|s| s.0 as i64).sum::<i64>() * HOUR < hop);
        }
    }
}
