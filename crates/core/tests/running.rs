//! Running window sums and kept results against full evaluation: over random rule sets
//! (measures, scoring methods, windows, hops, filters, an evidence alarm) and random streams
//! (quiet gaps, out-of-order and late events, events far ahead, a snapshot and restore, a
//! restriction to some regions), a pipeline that slides its windows and keeps the results of
//! series whose inputs did not change must publish exactly what one that adds up every window
//! bin by bin and scores every series at every evaluation does.

use std::sync::Arc;

use proptest::prelude::*;
use vigil_core::{Options, Pipeline, ScoreDetail, VecOutput};
use vigil_model::Event;
use vigil_model::time::{HOUR, MINUTE};
use vigil_rules::testing as mini;
use vigil_rules::{RuleSet, compile};

const MEASURES: &[&str] = &[
    "count",
    "share(incident_type = 'theft')",
    "ratio(urgent = TRUE, incident_type IN (crime))",
    "quantile(response_minutes, 0.5)",
    "keys_at_least(incident_type, 2)",
    "keys_spread(incident_type, band, 2)",
    "mean(response_minutes)",
    "max_bin",
    "distinct_days",
    "coelevation(0.05)",
    "sum(response_minutes)",
    "weighted_share(response_minutes, incident_type = 'theft')",
];
const FILTERS: &[&str] = &["", "incident_type IN (crime)", "priority >= 3", "urgent = TRUE"];
/// (window, hop) pairs the compiler accepts.
const SHAPES: &[(&str, &str)] = &[("1h", "1h"), ("3h", "1h"), ("24h", "1h"), ("2d", "1d"), ("7d", "1d"), ("1d", "1d")];

#[derive(Clone, Debug)]
struct Ind {
    measure: usize,
    filter: usize,
    shape: usize,
    /// Which of the scoring methods that fit the measure and hop (see `indicator_file`).
    method: usize,
}

fn indicator_file(inds: &[Ind]) -> String {
    let weight = 1.0 / inds.len() as f64;
    let mut text = String::new();
    for (k, ind) in inds.iter().enumerate() {
        let (window, hop) = SHAPES[ind.shape];
        let mut measure = MEASURES[ind.measure];
        // distinct_days counts days: it needs a window of whole days.
        if measure == "distinct_days" && hop != "1d" {
            measure = "count";
        }
        // max_bin reads hourly bins; coelevation hourly bins of at most a day.
        if (measure == "max_bin" && hop != "1h")
            || (measure.starts_with("coelevation") && !matches!(window, "1h" | "3h" | "24h"))
        {
            measure = "count";
        }
        // Coelevation compares with a second stream: the urgent calls.
        let compare = match measure.starts_with("coelevation") {
            true => "compare = { source = \"police\", filter = \"urgent = TRUE\" }\n",
            false => "",
        };
        // EARS reads daily series; hourly ones are scored against the same hour of past days.
        // Each method reads its own lags of the history (what a kept result depends on).
        let daily = [
            "{ method = \"ears\", variant = \"c2\" }",
            "{ method = \"baseline_pvalue\", baseline = \"7d\", guard = \"1d\", seasonality = \"none\", dist = \"negbin\" }",
            "{ method = \"percentile\", history = \"5d\", min_history = \"2d\" }",
        ];
        let counts = [
            "{ method = \"baseline_pvalue\", baseline = \"3d\", guard = \"0d\", seasonality = \"none\", dist = \"poisson\" }",
            "{ method = \"baseline_pvalue\", baseline = \"7d\", guard = \"0d\", seasonality = \"day_of_week\", dist = \"negbin\" }",
            "{ method = \"baseline_pvalue\", baseline = \"7d\", guard = \"0d\", seasonality = \"hour_of_week\", dist = \"negbin\" }",
            "{ method = \"robust_z\", windows = 5, transform = \"log1p\" }",
        ];
        let others = [
            "{ method = \"robust_z\", windows = 12 }",
            "{ method = \"percentile\", history = \"2d\", min_history = \"1d\" }",
        ];
        let share = measure.starts_with("share");
        let normalise = match (hop, measure) {
            // baseline_pvalue models counts only.
            ("1d", "count") => daily[ind.method % daily.len()],
            ("1d", _) => [daily[0], daily[2]][ind.method % 2],
            (_, "count") => counts[ind.method % counts.len()],
            _ if share && ind.method % 3 == 2 => "{ method = \"binomial\", windows = 3 }",
            _ => others[ind.method % others.len()],
        };
        let filter = match FILTERS[ind.filter] {
            "" => String::new(),
            f => format!("filter = \"{f}\"\n"),
        };
        text.push_str(&format!(
            "[[indicator]]\nid = \"i{k}\"\nname = \"I{k}\"\ncategory = \"volume\"\nsource = \"police\"\n{filter}\
             measure = \"{measure}\"\n{compare}window = \"{window}\"\nhop = \"{hop}\"\ndirection = \"up\"\nmin_support = 0\n\
             weight = {weight}\nnormalise = {normalise}\n\n"
        ));
    }
    text
}

fn rules_for(inds: &[Ind], alarm: bool) -> Arc<RuleSet> {
    let file = indicator_file(inds);
    let alarm_file = "[alarm]\nindicators = [\"i0\"]\nscan = \"2d\"\nbaseline = \"7d\"\n\
                      recurrence = { yellow = \"2d\", red = \"30d\" }\n";
    // Events up to two days late still count: late events reach every bin of a window.
    // And a second enum for keys_spread's sets.
    let sources = mini::SOURCES.replace("allowed_lateness = \"2h\"", "allowed_lateness = \"2d\"").replace(
        "  type = \"bool\"",
        "  type = \"bool\"\n\n  [[source.attr]]\n  name = \"band\"\n  type = \"enum\"\n  values = [\"a\", \"b\", \"c\"]",
    );
    let mut edits = vec![("indicators/police.toml", file.as_str()), ("sources.toml", sources.as_str())];
    if alarm {
        edits.push(("alarm.toml", alarm_file));
    }
    Arc::new(compile(&mini::files_with(&edits)).unwrap_or_else(|d| panic!("{d}\n{file}")))
}

/// Events over 12 days from 2026-03-01 in G1, D1 and D2, with quiet stretches; each `(gap,
/// burst, jitter)` step moves on `gap` hours and emits `burst` events; `jitter` moves some of
/// them up to 60 hours earlier than the ones before (late, possibly beyond the allowed lateness)
/// or 20 hours ahead.
fn stream(rules: &RuleSet, steps: &[(u8, u8, u8)], seed: u64) -> Vec<Event> {
    let start = vigil_model::time::parse_rfc3339("2026-03-01T00:00:00+08:00").unwrap();
    let regions = ["G1", "D1", "D2"].map(|c| rules.regions.lookup(c).unwrap());
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::new();
    let mut t = start;
    for &(gap, burst, jitter) in steps {
        t += gap as i64 * HOUR;
        for _ in 0..burst {
            let shift = match jitter % 8 {
                0 => -((next() % (60 * 60)) as i64) * MINUTE,
                1 => 20 * HOUR,
                _ => (next() % 60) as i64 * MINUTE,
            };
            let mut e = Event { region: regions[(next() % 3) as usize], ts: t + shift, ..Event::default() };
            e.set(0, (next() % 4) as i64);
            if next() % 4 != 0 {
                e.set(1, 1 + (next() % 4) as i64);
            }
            if next() % 3 != 0 {
                e.set(2, (next() % 400) as i64);
            }
            e.set(3, (next() % 2) as i64);
            e.set(4, (next() % 3) as i64);
            out.push(e);
        }
    }
    out
}

/// Feeds the events in the order given, the watermark five minutes behind the newest seen;
/// `restart` snapshots and restores at that event, `owned` restricts to some regions. With
/// `finest_unread`, the finest level (G1, which raises no alerts) publishes no score records,
/// so that its scores are computed only when read; the lines end with every region's view and
/// the final snapshot, which read them. Every `checkpoint` events the pipeline writes a
/// snapshot and runs on, as the engine does.
#[allow(clippy::too_many_arguments)]
fn run(
    rules: &Arc<RuleSet>,
    events: &[Event],
    full: bool,
    restart: Option<usize>,
    owned: Option<&[bool]>,
    finest_unread: bool,
    checkpoint: Option<usize>,
) -> Vec<String> {
    run_counting(rules, events, full, restart, owned, finest_unread, checkpoint).0
}

/// [`run`], and how many evaluations kept a quiet series' result after the last restart (and, of
/// those, how many were of sleeping series).
fn run_counting(
    rules: &Arc<RuleSet>,
    events: &[Event],
    full: bool,
    restart: Option<usize>,
    owned: Option<&[bool]>,
    finest_unread: bool,
    checkpoint: Option<usize>,
) -> (Vec<String>, (u64, u64, u64)) {
    let opts = Options {
        scores: ScoreDetail::Full,
        score_levels: match finest_unread {
            true => vigil_core::ScoreLevels::all_but_finest(rules.regions.level_names.len()),
            false => vigil_core::ScoreLevels::ALL,
        },
        score_filter: vigil_core::ScoreFilter::All,
        score_every: None,
    };
    let fresh = |p: &mut Pipeline| {
        if full {
            p.evaluate_fully();
        }
        if let Some(o) = owned {
            p.restrict(o);
        }
    };
    let mut p = Pipeline::new(Arc::clone(rules), opts);
    fresh(&mut p);
    let mut out = VecOutput::default();
    let mut newest = i64::MIN;
    for (i, ev) in events.iter().enumerate() {
        if checkpoint.is_some_and(|k| i % k == k - 1) {
            p.snapshot().unwrap();
        }
        if restart == Some(i) {
            let bytes = p.snapshot().unwrap();
            p = Pipeline::restore(Arc::clone(rules), opts, owned, &bytes).unwrap();
            fresh(&mut p);
        }
        p.ingest(ev);
        newest = newest.max(ev.ts);
        p.advance(newest - 5 * MINUTE, &mut out);
    }
    p.advance(newest + 3 * HOUR, &mut out);
    let mut lines: Vec<String> = out.scores.iter().map(|s| serde_json::to_string(s).unwrap()).collect();
    lines.extend(out.alerts.iter().map(|a| serde_json::to_string(a).unwrap()));
    if finest_unread {
        for code in &rules.regions.codes {
            lines.push(serde_json::to_string(&p.region_view(code)).unwrap());
        }
        let skipped = p.skipped_scores();
        lines.push(format!("{:?}", p.snapshot().unwrap()));
        return (lines, (p.kept_evaluations(), p.asleep_evaluations(), skipped));
    }
    (lines, (p.kept_evaluations(), p.asleep_evaluations(), p.skipped_scores()))
}

/// A stream with a busy week, three quiet weeks and another busy week: the quiet series keep
/// their results (so the comparison above is not vacuous) and publish what scoring them does.
#[test]
fn quiet_series_keep_their_results_and_publish_the_same() {
    // i0, the scanned count, over 24 hours.
    let inds: Vec<Ind> = (0..SHAPES.len())
        .map(|k| Ind { measure: k % 4, filter: k % 2, shape: (k + 2) % SHAPES.len(), method: 0 })
        .collect();
    let rules = rules_for(&inds, true);
    let mut steps = vec![(1u8, 3u8, 5u8); 7 * 24];
    steps.push((250, 1, 5));
    steps.push((250, 0, 5));
    steps.extend(vec![(1u8, 3u8, 5u8); 7 * 24]);
    let events = stream(&rules, &steps, 7);
    let (full, none) = run_counting(&rules, &events, true, None, None, false, None);
    let (sliding, (kept, asleep, _)) = run_counting(&rules, &events, false, None, None, false, None);
    assert_eq!(none, (0, 0, 0));
    assert!(kept > 100, "only {kept} evaluations kept their result");
    // Three quiet weeks outlast the rings of the shorter windows: those series sleep
    // (not even looked at) until the busy week wakes them, and still publish the same.
    assert!(asleep > 100, "only {asleep} evaluations of sleeping series");
    assert_eq!(full, sliding);
    // With G1's scores read by nothing but its view and the snapshot, they are computed only
    // then (most never, marked stale again first), and read the same.
    // A checkpoint every 40 events computes them in place, and the run goes on.
    let (full, _) = run_counting(&rules, &events, true, None, None, true, Some(40));
    let (deferred, (_, _, skipped)) = run_counting(&rules, &events, false, None, None, true, Some(40));
    assert!(skipped > 100, "only {skipped} scores nothing read were skipped");
    assert_eq!(full, deferred);
}

/// A grid cell whose scores nothing reads sleeps from the evaluation its window empties until
/// an event wakes it, while the entries its baselines read keep moving (the busy week leaving
/// them): its result is the score of its latest evaluation however often a checkpoint computed
/// it in between, as full evaluation scores it.
#[test]
fn a_sleeping_unread_series_reads_as_its_latest_evaluation() {
    let (rules, mut events) = busy_week(11);
    // Then only D2 sees events, every 12 hours for 12 days: a checkpoint two days on (G1
    // asleep), G1 read at the end.
    let d2 = rules.regions.lookup("D2").unwrap();
    let last = events.iter().map(|e| e.ts).max().unwrap();
    let busy = events.len();
    for half_days in 1..=24 {
        let mut e = Event { region: d2, ts: last + half_days * 12 * HOUR, ..Event::default() };
        e.set(0, 1);
        events.push(e);
    }
    unread_reads_as_full_evaluation(&rules, &events, busy + 4);
}

/// A grid cell whose scores nothing reads, awake with the same window value hour after hour
/// (one theft a day, each a day after the last) while the busy week before moves through the
/// lags its baselines read: its result changes with them, though its value does not, after a
/// checkpoint computed it as well as before.
#[test]
fn an_unread_series_with_a_steady_value_reads_as_its_latest_evaluation() {
    let (rules, mut events) = busy_week(13);
    let (g1, d2) = (rules.regions.lookup("G1").unwrap(), rules.regions.lookup("D2").unwrap());
    let last = events.iter().map(|e| e.ts).max().unwrap();
    // A call in D2 between two of G1's keeps the watermark moving: an event more than a day
    // ahead of it would be refused.
    for day in 1..=20 {
        for (region, at) in [(d2, day * 24 * HOUR - 12 * HOUR), (g1, day * 24 * HOUR + 30 * MINUTE)] {
            let mut e = Event { region, ts: last + at, ..Event::default() };
            e.set(0, 0);
            events.push(e);
        }
    }
    // A checkpoint two days into the steady stretch, while the busy week is still in reach.
    unread_reads_as_full_evaluation(&rules, &events, events.len() - 36);
}

/// Rules with every shape and a scoring method each, and a busy week of events in G1, D1 and
/// D2: the start of the unread-series tests above.
fn busy_week(seed: u64) -> (Arc<RuleSet>, Vec<Event>) {
    let inds: Vec<Ind> = (0..SHAPES.len())
        .map(|k| Ind { measure: k % 4, filter: k % 2, shape: (k + 2) % SHAPES.len(), method: k })
        .collect();
    let rules = rules_for(&inds, false);
    let events = stream(&rules, &vec![(1u8, 3u8, 5u8); 7 * 24], seed);
    (rules, events)
}

/// With G1 unread and a checkpoint every `every` events, the sparse run publishes, views and
/// snapshots exactly what full evaluation does.
fn unread_reads_as_full_evaluation(rules: &Arc<RuleSet>, events: &[Event], every: usize) {
    let (full, _) = run_counting(rules, events, true, None, None, true, Some(every));
    let (deferred, _) = run_counting(rules, events, false, None, None, true, Some(every));
    assert_eq!(full, deferred);
}

fn ind() -> impl Strategy<Value = Ind> {
    (0..MEASURES.len(), 0..FILTERS.len(), 0..SHAPES.len(), 0..12usize)
        .prop_map(|(measure, filter, shape, method)| Ind { measure, filter, shape, method })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sliding_windows_publish_what_full_evaluation_does(
        inds in prop::collection::vec(ind(), 1..5),
        alarm in any::<bool>(),
        steps in prop::collection::vec((prop_oneof![6 => 0u8..3, 2 => 3u8..60, 1 => 60u8..=255], 0u8..6, any::<u8>()), 20..220),
        seed in any::<u64>(),
        restart in prop::option::of(0.0f64..1.0),
        restrict in any::<bool>(),
        finest_unread in any::<bool>(),
        checkpoint in prop::option::of(1usize..60),
    ) {
        let mut inds = inds;
        if alarm {
            // The alarm scans i0: a count whose window fits the scan 1 to 14 times, or a 7-day
            // count evaluated daily, read in days (its entries keep the newest day's count).
            inds[0].measure = 0;
            inds[0].shape = [2, 5, 4][inds[0].shape % 3];
        }
        let rules = rules_for(&inds, alarm);
        let events = stream(&rules, &steps, seed);
        prop_assume!(!events.is_empty());
        let at = restart.map(|f| (f * events.len() as f64) as usize);
        let mut owned = vec![false; rules.regions.len()];
        for c in ["D1", "G1"] {
            owned[rules.regions.lookup(c).unwrap() as usize] = true;
        }
        let owned = restrict.then_some(&owned[..]);
        let full = run(&rules, &events, true, at, owned, finest_unread, checkpoint);
        let sliding = run(&rules, &events, false, at, owned, finest_unread, checkpoint);
        prop_assert!(!full.is_empty());
        prop_assert_eq!(full.len(), sliding.len());
        for (f, s) in full.iter().zip(&sliding) {
            prop_assert_eq!(f, s);
        }
    }
}
