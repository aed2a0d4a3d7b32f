//! Whole-pipeline tests on the mini rule set: a golden scenario (events + rules -> expected
//! alerts), run straight through and with a snapshot/restore in the middle, and determinism.

use std::sync::Arc;

use vigil_core::{Options, Pipeline, ScoreDetail, VecOutput};
use vigil_model::Event;
use vigil_model::record::AlertEvent;
use vigil_model::time::{DAY, HOUR, MINUTE};
use vigil_rules::testing as mini;
use vigil_rules::{RuleSet, compile};

fn rules() -> Arc<RuleSet> {
    Arc::new(compile(&mini::files_with(&[])).unwrap())
}

/// A deterministic pseudo-random sequence (xorshift64).
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// A deterministic scenario: 24 days of police calls in two districts, about one crime call an
/// hour in D1 and a burst of eight an hour on 03-21 from 10:00 to 16:00.
fn scenario(rules: &RuleSet) -> Vec<Event> {
    // A burst of 8 calls an hour in G1 from 10:00 to 16:00 on day 20 (local +08:00).
    mini_calls(rules, |h, draw| if h / 24 == 20 && (10..16).contains(&(h % 24)) { 8 } else { (draw() % 3) as i64 })
}

/// Calls in grid G1 hour by hour for 24 days from 2026-03-01 (`calls(hour, draw)` of them, with
/// `draw` the scenario's random generator), each a theft or a fight with a response time, and
/// a dispute in D2 about every other hour.
fn mini_calls(rules: &RuleSet, calls: impl Fn(i64, &mut dyn FnMut() -> u64) -> i64) -> Vec<Event> {
    let start = vigil_model::time::parse_rfc3339("2026-03-01T00:00:00+08:00").unwrap();
    let g1 = rules.regions.lookup("G1").unwrap();
    let d2 = rules.regions.lookup("D2").unwrap();
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for h in 0..24 * 24 {
        for _ in 0..calls(h, &mut next) {
            let mut e = Event { region: g1, ts: start + h * HOUR + (next() % 60) as i64 * MINUTE, ..Event::default() };
            e.set(0, (next() % 2) as i64); // theft or fight
            e.set(2, 50 + (next() % 105) as i64); // 5.0 .. 15.4 minutes
            out.push(e);
        }
        if next().is_multiple_of(2) {
            let mut e = Event { region: d2, ts: start + h * HOUR + 30 * MINUTE, ..Event::default() };
            e.set(0, 3);
            out.push(e);
        }
    }
    out.sort_by_key(|e| e.ts);
    out
}

fn opts() -> Options {
    Options {
        scores: ScoreDetail::Full,
        score_levels: vigil_core::ScoreLevels(0b0011),
        score_filter: vigil_core::ScoreFilter::All,
        score_every: None,
    }
}

/// Runs the events through a pipeline; with `split`, snapshots after that many events and
/// continues in a pipeline restored from the snapshot.
fn run(rules: &Arc<RuleSet>, events: &[Event], split: Option<usize>) -> (Vec<String>, Vec<String>) {
    let mut p = Pipeline::new(Arc::clone(rules), opts());
    let mut out = VecOutput::default();
    for (i, ev) in events.iter().enumerate() {
        if split == Some(i) {
            let bytes = p.snapshot().unwrap();
            p = Pipeline::restore(Arc::clone(rules), opts(), None, &bytes).unwrap();
        }
        p.ingest(ev);
        p.advance(ev.ts - 5 * MINUTE, &mut out);
    }
    if let Some(last) = events.last() {
        p.advance(last.ts, &mut out);
    }
    let alerts = out.alerts.iter().map(|a| serde_json::to_string(a).unwrap()).collect();
    let scores = out.scores.iter().map(|s| serde_json::to_string(s).unwrap()).collect();
    (alerts, scores)
}

#[test]
fn golden_alerts_straight_through_and_across_a_restart() {
    let rules = rules();
    let events = scenario(&rules);
    let (alerts, scores) = run(&rules, &events, None);
    let golden_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/mini_alerts.jsonl");
    let text = alerts.join("\n") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden_path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(golden_path).expect("golden file (run with UPDATE_GOLDEN=1 to create it)");
    if text != golden {
        let (i, (a, b)) =
            text.lines().zip(golden.lines()).enumerate().find(|(_, (a, b))| a != b).unwrap_or((0, ("", "")));
        panic!(
            "alerts differ from the golden file ({} vs {} lines); first difference at line {}:\n got: {a}\nwant: {b}",
            text.lines().count(),
            golden.lines().count(),
            i + 1
        );
    }

    // The burst must open an alert on D1 and the city, and nothing may alert on D2.
    let parsed: Vec<vigil_model::record::AlertRecord> =
        alerts.iter().map(|a| serde_json::from_str(a).unwrap()).collect();
    assert!(
        parsed
            .iter()
            .any(|a| a.region == "D1" && a.event == AlertEvent::Opened && a.window_end.starts_with("2026-03-21"))
    );
    assert!(parsed.iter().all(|a| a.region != "D2"));
    assert!(parsed.iter().all(|a| !a.top_contributors.is_empty() || a.event == AlertEvent::Resolved));

    for split in [1, events.len() / 3, events.len() / 2, events.len() - 1] {
        let (a2, s2) = run(&rules, &events, Some(split));
        assert_eq!(alerts, a2, "alerts differ after a restart at event {split}");
        assert_eq!(scores, s2, "scores differ after a restart at event {split}");
    }
}

#[test]
fn same_input_gives_byte_identical_output() {
    let rules = rules();
    let events = scenario(&rules);
    assert_eq!(run(&rules, &events, None), run(&rules, &events, None));
}

#[test]
fn snapshot_refuses_other_rules_and_garbage() {
    let rules = rules();
    let mut p = Pipeline::new(Arc::clone(&rules), opts());
    let bytes = p.snapshot().unwrap();
    let other = Arc::new(
        compile(&mini::files_with(&[("taxonomies.toml", &mini::TAXONOMIES.replace("Crime", "Crimes"))])).unwrap(),
    );
    assert!(matches!(
        Pipeline::restore(other, opts(), None, &bytes),
        Err(vigil_core::snapshot::SnapshotError::RulesMismatch { .. })
    ));
    assert!(Pipeline::restore(Arc::clone(&rules), opts(), None, &bytes[..bytes.len() / 2]).is_err());
    assert!(Pipeline::restore(Arc::clone(&rules), opts(), None, b"not a snapshot").is_err());
    // A snapshot that claims the loaded rules' version but was built for another region tree
    // (one more district): refused by its dimensions, not restored to index out of bounds later.
    let regions = format!("{}D3,C,district,North,5000\n", mini::REGIONS);
    let mut bigger = compile(&mini::files_with(&[("regions.csv", &regions)])).unwrap();
    bigger.version = rules.version.clone();
    let bigger = Arc::new(bigger);
    let err = Pipeline::restore(Arc::clone(&bigger), opts(), None, &bytes)
        .err()
        .expect("a state of other dimensions was restored");
    assert!(matches!(err, vigil_core::snapshot::SnapshotError::Shape(_)), "{err}");
    assert!(Pipeline::restore_adopting(bigger, opts(), None, &bytes).is_err());
}

#[test]
fn inline_rule_tests_pass_and_catch_a_wrong_expectation() {
    let rules = rules();
    let outcomes = vigil_core::ruletest::run(&rules);
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].failure, None);
    let wrong = mini::INDICATORS.replace("expect = { value = 0.5", "expect = { value = 0.75");
    let rules = Arc::new(compile(&mini::files_with(&[("indicators/police.toml", &wrong)])).unwrap());
    let outcomes = vigil_core::ruletest::run(&rules);
    assert!(outcomes[0].failure.as_deref().unwrap_or_default().contains("expected 0.75, got 0.5"), "{outcomes:?}");
}

/// Every detector a rule can name scores the mini scenario's burst high and a calm day low.
#[test]
fn each_detector_flags_the_burst_day() {
    let methods = [
        r#"{ method = "ears", variant = "c1", sigma_min = 0.5 }"#,
        r#"{ method = "ears", variant = "c2", sigma_min = 0.5 }"#,
        r#"{ method = "ears", variant = "c3", sigma_min = 0.5 }"#,
        r#"{ method = "ewma" }"#,
        r#"{ method = "cusum", k = 0.5, h = 4.0 }"#,
        r#"{ method = "robust_z", windows = 10, sigma_min = 1.0 }"#,
        r#"{ method = "percentile", history = "30d", min_history = "7d" }"#,
        r#"{ method = "baseline_pvalue", baseline = "7d", guard = "1d", dist = "negbin" }"#,
    ];
    for m in methods {
        let ind = mini::INDICATORS
            .replace("hop = \"1h\"", "hop = \"1d\"")
            .replace(
                r#"normalise = { method = "baseline_pvalue", baseline = "7d", guard = "0d", seasonality = "none", dist = "poisson" }"#,
                &format!("normalise = {m}"),
            );
        let rules = Arc::new(
            compile(&mini::files_with(&[("indicators/police.toml", &ind)])).unwrap_or_else(|d| panic!("{m}: {d}")),
        );
        let events = scenario(&rules);
        let d1 = rules.regions.lookup("D1").unwrap() as usize;
        let mut p = Pipeline::new(Arc::clone(&rules), opts());
        let mut out = VecOutput::default();
        let mut calm = None;
        let mut burst = None;
        let day = |d: u32| vigil_model::time::parse_rfc3339(&format!("2026-03-{d:02}T00:00:00+08:00")).unwrap();
        for ev in &events {
            p.advance(ev.ts - 5 * MINUTE, &mut out);
            p.ingest(ev);
            if calm.is_none() && ev.ts > day(21) {
                calm = Some(p.latest(0, d1).0.score);
            }
            if burst.is_none() && ev.ts > day(22) {
                burst = Some(p.latest(0, d1).0.score);
            }
        }
        // The value at 03-21 00:00 covers the calm 03-20; at 03-22 00:00 it covers the burst.
        let calm = calm.flatten().unwrap_or_else(|| panic!("{m}: grey on the calm day"));
        let burst = burst.flatten().unwrap_or_else(|| panic!("{m}: grey on the burst day"));
        // An empirical percentile cannot be surer than p = 1/(n+1): with 19 days of history its
        // ceiling is p = 0.05, a score of 41.
        let min = if m.contains("percentile") { 41.0 } else { 58.0 };
        assert!(burst >= min, "{m}: burst scored {burst}");
        assert!(calm < 41.0, "{m}: calm day scored {calm}");
    }
}

/// Runs the events with the rules swapped for `next` after `split` events (as a hot reload
/// does), or through a snapshot restored under `next` (as a restart with edited rules does).
/// Returns the indicator scores of every score record made under `next`, and the report.
fn run_reloading(
    rules: &Arc<RuleSet>,
    next: &Arc<RuleSet>,
    events: &[Event],
    split: usize,
    via_snapshot: bool,
) -> (Vec<String>, vigil_core::Carried) {
    let mut p = Pipeline::new(Arc::clone(rules), opts());
    let mut out = VecOutput::default();
    let mut carried = None;
    for (i, ev) in events.iter().enumerate() {
        if i == split {
            if via_snapshot {
                let (q, c) =
                    Pipeline::restore_adopting(Arc::clone(next), opts(), None, &p.snapshot().unwrap()).unwrap();
                p = q;
                carried = c;
            } else {
                carried = Some(p.reload(Arc::clone(next)));
            }
        }
        p.ingest(ev);
        p.advance(ev.ts - 5 * MINUTE, &mut out);
    }
    p.advance(events.last().unwrap().ts, &mut out);
    (indicator_scores(&out, Some(&next.version)), carried.unwrap_or_default())
}

/// (region, window end, indicator scores) of every score record, made under `version` if given.
fn indicator_scores(out: &VecOutput, version: Option<&str>) -> Vec<String> {
    out.scores
        .iter()
        .filter(|s| version.is_none_or(|v| s.rules_version == v))
        .map(|s| format!("{} {} {}", s.region, s.window_end, serde_json::to_string(&s.indicators).unwrap()))
        .collect()
}

#[test]
fn a_rule_reload_keeps_the_state_of_unchanged_indicators() {
    let rules = rules();
    let events = scenario(&rules);
    let split = events.len() / 2;

    // Weights are not indicator state: every indicator keeps its state, and its scores after
    // the reload equal those of a run that had the new rules from the start.
    let reweighted = Arc::new(
        compile(&mini::files_with(&[(
            "indicators/police.toml",
            &mini::INDICATORS.replacen("weight = 0.5", "weight = 0.6", 1).replacen("weight = 0.5", "weight = 0.4", 1),
        )]))
        .unwrap(),
    );
    assert_ne!(reweighted.version, rules.version);
    let mut p = Pipeline::new(Arc::clone(&reweighted), opts());
    let mut out = VecOutput::default();
    for ev in &events {
        p.ingest(ev);
        p.advance(ev.ts - 5 * MINUTE, &mut out);
    }
    p.advance(events.last().unwrap().ts, &mut out);
    let from_start = indicator_scores(&out, None);
    for via_snapshot in [false, true] {
        let (after, carried) = run_reloading(&rules, &reweighted, &events, split, via_snapshot);
        assert_eq!(carried.kept, ["crime_count_24h", "slow_share_7d"], "{carried:?}");
        assert!(carried.fresh.is_empty() && carried.grades_kept && !carried.layout_changed);
        assert!(after.len() > 100, "score records after the reload: {}", after.len());
        assert_eq!(after[..], from_start[from_start.len() - after.len()..], "via snapshot: {via_snapshot}");
    }

    // A changed window restarts that indicator only: it is fresh, the other one is kept, and
    // the fresh one is grey until its window has been observed.
    let rewindowed = Arc::new(
        compile(&mini::files_with(&[(
            "indicators/police.toml",
            &mini::INDICATORS.replace("window = \"24h\"", "window = \"12h\""),
        )]))
        .unwrap(),
    );
    let (after, carried) = run_reloading(&rules, &rewindowed, &events, split, false);
    assert_eq!((carried.kept, carried.fresh), (vec!["slow_share_7d".to_string()], vec!["crime_count_24h".to_string()]));
    assert!(
        after[0].contains(r#"{"indicator":"crime_count_24h","value":0.0,"expected":null,"score":null}"#),
        "{}",
        after[0]
    );

    // A changed region tree carries nothing over.
    let moved = Arc::new(compile(&mini::files_with(&[("regions.csv", &mini::REGIONS.replace("D2,", "D3,"))])).unwrap());
    let (_, carried) = run_reloading(&rules, &moved, &events, split, false);
    assert!(carried.layout_changed && carried.kept.is_empty() && !carried.grades_kept, "{carried:?}");
}

/// The score filters only leave records out: the same alerts, and every record they keep is the
/// one `all` writes. `nonzero` drops exactly the quiet, ungraded records; `graded` keeps only
/// regions with an open episode.
#[test]
fn score_filters_drop_only_what_they_promise() {
    use vigil_core::ScoreFilter;
    let rules = rules();
    let events = scenario(&rules);
    let run_with = |filter: ScoreFilter| {
        let mut p = Pipeline::new(Arc::clone(&rules), Options { score_filter: filter, ..opts() });
        let mut out = VecOutput::default();
        for ev in &events {
            p.ingest(ev);
            p.advance(ev.ts - 5 * MINUTE, &mut out);
        }
        out
    };
    let all = run_with(ScoreFilter::All);
    let quiet = |s: &vigil_model::record::ScoreRecord| {
        s.grade.is_none()
            && s.composite.is_none_or(|v| v == 0.0)
            && s.domains.values().chain(s.categories.values()).all(|v| v.is_none_or(|v| v == 0.0))
    };
    let key = |s: &vigil_model::record::ScoreRecord| (s.region.clone(), s.window_end.clone());
    let open: std::collections::HashSet<(String, String)> = {
        // Regions and window ends with an open episode in some scope, from the alert records.
        let mut open = std::collections::HashSet::new();
        let mut level: std::collections::HashMap<(String, String), bool> = Default::default();
        let mut by_end: std::collections::BTreeMap<String, Vec<&vigil_model::record::AlertRecord>> = Default::default();
        for a in &all.alerts {
            by_end.entry(a.window_end.clone()).or_default().push(a);
        }
        for s in &all.scores {
            for a in by_end.get(&s.window_end).into_iter().flatten().filter(|a| a.region == s.region) {
                level.insert((a.region.clone(), a.scope.clone()), a.level.is_some());
            }
            if level.iter().any(|((r, _), on)| *r == s.region && *on) {
                open.insert(key(s));
            }
        }
        open
    };
    type Keep<'a> = Box<dyn Fn(&vigil_model::record::ScoreRecord) -> bool + 'a>;
    let cases: Vec<(ScoreFilter, Keep<'_>)> = vec![
        (ScoreFilter::Nonzero, Box::new(|s| !quiet(s) || open.contains(&key(s)))),
        (ScoreFilter::Graded, Box::new(|s| open.contains(&key(s)))),
    ];
    for (filter, keep) in cases {
        let got = run_with(filter);
        assert_eq!(got.alerts, all.alerts, "{filter:?} changed the alerts");
        let want: Vec<_> = all.scores.iter().filter(|s| keep(s)).cloned().collect();
        assert_eq!(got.scores, want, "{filter:?}");
        assert!(got.scores.len() < all.scores.len(), "{filter:?} dropped nothing");
        assert!(!got.scores.is_empty(), "{filter:?} kept nothing");
    }

    // `changed` writes a region's record exactly when what it says (the period aside) differs
    // from the region's previous record: carrying each region's last record forward rebuilds
    // every evaluation of `all`.
    let content = |s: &vigil_model::record::ScoreRecord| {
        let mut s = s.clone();
        (s.window_start, s.window_end, s.date) = (String::new(), String::new(), None);
        serde_json::to_string(&s).unwrap()
    };
    let mut last: std::collections::HashMap<String, String> = Default::default();
    let want: Vec<_> =
        all.scores.iter().filter(|s| last.insert(s.region.clone(), content(s)) != Some(content(s))).cloned().collect();
    let got = run_with(ScoreFilter::Changed);
    assert_eq!(got.alerts, all.alerts, "changed records changed the alerts");
    assert_eq!(got.scores, want, "changed");
    assert!(got.scores.len() < all.scores.len(), "changed kept {} of {}", got.scores.len(), all.scores.len());
    let mut shown: std::collections::HashMap<String, String> = Default::default();
    let mut written = got.scores.iter().peekable();
    for s in &all.scores {
        if written.peek().is_some_and(|w| w.region == s.region && w.window_end == s.window_end) {
            let w = written.next().unwrap();
            shown.insert(w.region.clone(), content(w));
        }
        assert_eq!(
            shown.get(&s.region),
            Some(&content(s)),
            "{} at {} is not its last written record",
            s.region,
            s.window_end
        );
    }

    // `score_every` keeps the records of the evaluations ending on a multiple of it in local
    // time, each exactly as `all` writes it, and the alerts of every evaluation.
    let every = vigil_core::parse_score_every(&rules, "6h").unwrap();
    assert!(vigil_core::parse_score_every(&rules, "7h").is_err());
    assert!(vigil_core::parse_score_every(&rules, "30m").is_err());
    let six = {
        let mut p = Pipeline::new(Arc::clone(&rules), Options { score_every: Some(every), ..opts() });
        let mut out = VecOutput::default();
        for ev in &events {
            p.ingest(ev);
            p.advance(ev.ts - 5 * MINUTE, &mut out);
        }
        out
    };
    let on_boundary = |s: &&vigil_model::record::ScoreRecord| {
        let end = vigil_model::time::parse_rfc3339(&s.window_end).unwrap();
        rules.zone.local(end).rem_euclid(every) == 0
    };
    let want: Vec<_> = all.scores.iter().filter(on_boundary).cloned().collect();
    assert_eq!(six.alerts, all.alerts, "score_every changed the alerts");
    assert_eq!(six.scores, want, "score_every");
    assert!(!want.is_empty() && want.len() * 5 < all.scores.len(), "{} of {}", want.len(), all.scores.len());

    // Across a restart `changed` writes what an uninterrupted run writes: the digests of the
    // last written records are part of the snapshot.
    for split in [events.len() / 3, events.len() / 2] {
        let o = Options { score_filter: ScoreFilter::Changed, ..opts() };
        let mut p = Pipeline::new(Arc::clone(&rules), o);
        let mut out = VecOutput::default();
        for (i, ev) in events.iter().enumerate() {
            if i == split {
                let bytes = p.snapshot().unwrap();
                p = Pipeline::restore(Arc::clone(&rules), o, None, &bytes).unwrap();
            }
            p.ingest(ev);
            p.advance(ev.ts - 5 * MINUTE, &mut out);
        }
        assert_eq!(out.scores, got.scores, "changed records differ after a restart at event {split}");
    }
}

/// An attribute value that would take a bin's sum beyond its bound (`i64::MAX` over the bins
/// the indicator keeps, so that no window of them overflows) is refused before any bin is
/// touched: the sum keeps its value, the event is reported, and events after it count as usual.
#[test]
fn an_event_that_would_overflow_a_sum_is_refused() {
    let sources = format!("{}\n  [[source.attr]]\n  name = \"amount\"\n  type = \"int\"\n", mini::SOURCES);
    let indicators =
        mini::INDICATORS.replace("measure = \"share(response_minutes > 15)\"", "measure = \"sum(amount)\"");
    let rules = Arc::new(
        compile(&mini::files_with(&[("sources.toml", &sources), ("indicators/police.toml", &indicators)]))
            .unwrap_or_else(|d| panic!("{d}")),
    );
    let amount = rules.sources[0].attr_index("amount").unwrap();
    let ind = rules.indicator_index("slow_share_7d").unwrap();
    let g1 = rules.regions.lookup("G1").unwrap();
    let d2 = rules.regions.lookup("D2").unwrap();
    let t0 = vigil_model::time::parse_rfc3339("2026-03-02T10:00:00+08:00").unwrap();
    let ev = |region: u32, h: i64, v: i64| {
        let mut e = Event { region, ts: t0 + h * HOUR, ..Event::default() };
        e.set(0, 3);
        e.set(amount, v);
        e
    };
    let max = i64::MAX / vigil_window::Layout::for_indicator(&rules, &rules.indicators[ind]).ring as i64;
    let mut p = Pipeline::new(Arc::clone(&rules), opts());
    let mut out = VecOutput::default();
    // Beyond the bound on its own, either side of zero.
    assert_eq!(p.ingest(&ev(g1, 0, max + 1)), vigil_core::Ingest::Overflow);
    assert_eq!(p.ingest(&ev(g1, 0, -max - 1)), vigil_core::Ingest::Overflow);
    assert_eq!(p.ingest(&ev(g1, 0, max - 5)), vigil_core::Ingest::Accepted);
    // Overflows G1's bin (and D1's and the city's): refused.
    assert_eq!(p.ingest(&ev(g1, 1, 10)), vigil_core::Ingest::Overflow);
    // D2 is a sibling: its own bin is empty, but the city's would overflow too.
    assert_eq!(p.ingest(&ev(d2, 2, 10)), vigil_core::Ingest::Overflow);
    assert_eq!(p.ingest(&ev(g1, 3, -100)), vigil_core::Ingest::Accepted);
    assert_eq!(p.counters().overflow, 4);
    p.advance(t0 + 2 * DAY, &mut out);
    let (s, _) = p.latest(ind, g1 as usize);
    assert_eq!(s.value, Some((max - 105) as f64));
}

/// A pipeline restricted to some regions (a scale-out task's districts) keeps its restriction
/// across a rule reload: it never starts scoring or alerting the regions of other tasks.
#[test]
fn a_reload_keeps_the_restriction_to_owned_regions() {
    let rules = rules();
    let events = scenario(&rules);
    let d1 = rules.regions.lookup("D1").unwrap() as usize;
    let mut owned = vec![false; rules.regions.len()];
    owned[d1] = true;
    owned[rules.regions.lookup("G1").unwrap() as usize] = true;
    let next = Arc::new(
        compile(&mini::files_with(&[("grading.toml", &mini::GRADING.replace("enter = 75.0", "enter = 74.0"))]))
            .unwrap(),
    );
    let mut p = Pipeline::new(Arc::clone(&rules), opts());
    p.restrict(&owned);
    let mut out = VecOutput::default();
    let split = events.len() / 3;
    for (i, ev) in events.iter().enumerate() {
        if i == split {
            p.reload(Arc::clone(&next));
        }
        p.ingest(ev);
        p.advance(ev.ts - 5 * MINUTE, &mut out);
    }
    assert!(out.scores.iter().any(|s| s.region == "D1" && s.rules_version == next.version));
    let foreign: Vec<_> = out.scores.iter().map(|s| s.region.as_str()).filter(|r| !["D1", "G1"].contains(r)).collect();
    assert!(
        foreign.is_empty(),
        "scored regions of other tasks after the reload: {:?}",
        &foreign[..foreign.len().min(5)]
    );
    assert!(out.alerts.iter().all(|a| a.region == "D1" || a.region == "G1"));
}

/// Rule values that would size rings beyond reason are refused at compile time with the place,
/// and a rule set whose state exceeds its budget is refused saying how much it needs.
#[test]
fn absurd_durations_and_state_beyond_the_budget_are_refused() {
    let lag = mini::INDICATORS.replacen(
        "window = \"24h\"\nhop = \"1h\"",
        "window = \"24h\"\nhop = \"1h\"\nlag = \"100000d\"",
        1,
    );
    let err = compile(&mini::files_with(&[("indicators/police.toml", &lag)])).unwrap_err().to_string();
    assert!(err.contains("lag 100000d is longer than 365d"), "{err}");
    let baseline = mini::INDICATORS.replace("baseline = \"7d\"", "baseline = \"5000d\"");
    let err = compile(&mini::files_with(&[("indicators/police.toml", &baseline)])).unwrap_err().to_string();
    assert!(err.contains("baseline 5000d is too long"), "{err}");

    // The default rules need a few MiB; with a budget of 1 MiB they are refused, with the need.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    let mut files = vigil_rules::RuleFiles::load_dir(&dir).unwrap();
    let full = vigil_core::compile_rules(&files).unwrap();
    let need = vigil_core::state_bytes(&full);
    assert!(need > 1 << 20 && need < 1 << 30, "{need}");
    let text = files.files["ruleset.toml"].replace("[ruleset]\n", "[ruleset]\nmax_state_mib = 1\n");
    files.files.insert("ruleset.toml".into(), text);
    let err = vigil_core::compile_rules(&files).unwrap_err().to_string();
    assert!(err.contains(&format!("needs {} MiB of state; the limit is 1 MiB", need.div_ceil(1 << 20))), "{err}");
}

/// The night clocks go forward, hourly: every published record covers real time (the hour
/// before the jump is published, the empty local hour it skips is not), window ends are unique,
/// and a record's period can be recovered from its window end (as the scale-out roll-up does).
#[test]
fn spring_forward_publishes_real_hours_only() {
    let ruleset = mini::RULESET.replace("timezone = \"+08:00\"", "timezone = \"America/Chicago\"");
    let indicators = mini::INDICATORS.replace("2026-03-08T00:00:00+08:00", "2026-03-08T00:00:00-06:00");
    let rules = Arc::new(
        compile(&mini::files_with(&[("ruleset.toml", &ruleset), ("indicators/police.toml", &indicators)])).unwrap(),
    );
    let g1 = rules.regions.lookup("G1").unwrap();
    // 2026-03-08 02:00 CST becomes 03:00 CDT at 08:00Z. An event every 20 minutes around it.
    let t0 = vigil_model::time::parse_rfc3339("2026-03-08T00:00:00Z").unwrap();
    let mut p = Pipeline::new(Arc::clone(&rules), opts());
    let mut out = VecOutput::default();
    for k in 0..60 {
        let mut e = Event { region: g1, ts: t0 + k * 20 * MINUTE, ..Event::default() };
        e.set(0, 0);
        p.ingest(&e);
        p.advance(e.ts, &mut out);
    }
    let c: Vec<&vigil_model::record::ScoreRecord> = out.scores.iter().filter(|s| s.region == "C").collect();
    let ends: Vec<&str> = c.iter().map(|s| s.window_end.as_str()).collect();
    let mut unique = ends.clone();
    unique.dedup();
    assert_eq!(ends, unique, "two records with one window end");
    assert!(c.iter().all(|s| s.window_start < s.window_end), "an empty period was published");
    let jump = c.iter().find(|s| s.window_end == "2026-03-08T08:00:00Z").expect("the hour before the jump");
    assert_eq!(jump.window_start, "2026-03-08T07:00:00Z");
    let next = c.iter().find(|s| s.window_start == "2026-03-08T08:00:00Z").expect("the first hour after it");
    assert_eq!(next.window_end, "2026-03-08T09:00:00Z");
    for s in &c {
        let t = vigil_model::time::parse_rfc3339(&s.window_end).unwrap();
        let period = vigil_core::Period::ending_at(&rules, t);
        assert_eq!(vigil_model::time::format_utc(period.start), s.window_start);
    }
}

/// The mini rule set with an evidence alarm over its hourly 24-hour crime count and a daily
/// count of all calls (two hops: the daily cut keeps its evidence between hourly evaluations).
fn alarm_rules() -> Arc<RuleSet> {
    alarm_rules_with("")
}

/// The mini indicators and a daily count of all calls (for the alarm's daily cuts).
fn with_daily_calls() -> String {
    let daily = r#"
[[indicator]]
id = "calls_count_1d"
name = "Calls, one day"
category = "volume"
source = "police"
measure = "count"
window = "1d"
hop = "1d"
direction = "up"
weight = 0.2
normalise = { method = "ears", variant = "c2" }
"#;
    format!("{}{daily}", mini::INDICATORS.replace("weight = 0.5", "weight = 0.4"))
}

/// [`alarm_rules`] with more `[alarm]` keys.
fn alarm_rules_with(extra: &str) -> Arc<RuleSet> {
    let indicators = with_daily_calls();
    let alarm = format!(
        "[alarm]\nscan = \"3d\"\nbaseline = \"14d\"\n{extra}recurrence = {{ yellow = \"2d\", orange = \"14d\", red = \"100d\" }}\n"
    );
    Arc::new(
        compile(&mini::files_with(&[("indicators/police.toml", &indicators), ("alarm.toml", &alarm)]))
            .unwrap_or_else(|d| panic!("{d}")),
    )
}

#[test]
fn evidence_alarms_name_the_burst_and_survive_a_restart() {
    let rules = alarm_rules();
    assert_eq!(rules.alarm.as_ref().unwrap().cuts.len(), 2);
    let events = scenario(&rules);
    let (alerts, _) = run(&rules, &events, None);
    let parsed: Vec<vigil_model::record::AlertRecord> =
        alerts.iter().map(|a| serde_json::from_str(a).unwrap()).collect();
    let evidence: Vec<_> = parsed.iter().filter(|a| a.scope == "evidence").collect();
    // The burst of 03-21 in grid G1 (not an alerting level) raises its district D1, named by the
    // crime count, within the day; the city links to D1 instead of opening its own episode
    // for the same excess.
    let d1 = evidence
        .iter()
        .find(|a| a.region == "D1" && a.event == AlertEvent::Opened && a.window_end.starts_with("2026-03-21"))
        .unwrap_or_else(|| panic!("no evidence alarm on D1 on 03-21: {evidence:#?}"));
    let e = d1.evidence.as_ref().unwrap();
    assert_eq!(e.indicator, "crime_count_24h");
    assert!(e.observed > e.expected + 3.0 * e.expected.sqrt(), "{e:?}");
    assert!(e.summary.starts_with("Crime calls in East: 41 in the last day against 23.8 expected"), "{}", e.summary);
    assert!(d1.level >= Some(vigil_model::Level::Yellow));
    let city_opened = evidence.iter().filter(|a| a.region == "C" && a.event == AlertEvent::Opened).count();
    let d1_opened = evidence.iter().filter(|a| a.region == "D1" && a.event == AlertEvent::Opened).count();
    assert!(city_opened < d1_opened.max(1), "the city opens {city_opened} episodes, D1 {d1_opened}");
    // Nothing happens in D2.
    assert!(evidence.iter().all(|a| a.region != "D2"), "{evidence:#?}");
    // Across restarts: byte-identical, the daily cut's evidence and factors included.
    for split in [events.len() / 3, events.len() * 5 / 6, events.len() - 1] {
        let (a2, _) = run(&rules, &events, Some(split));
        assert_eq!(alerts, a2, "alerts differ after a restart at event {split}");
    }
}

/// Two sources rising together in one district (关联预警): police calls and petitions on the
/// same day. Each alone is a modest excess; the alarm names both and their joint evidence sets a
/// level at least as high as either alone.
#[test]
fn sources_rising_together_are_named_and_combined() {
    let sources = format!(
        "{}\n[[source]]\nid = \"petition\"\nname = \"Petitions\"\ntopic = \"t.petition\"\nallowed_delay = \"5m\"\nallowed_lateness = \"2h\"\n",
        mini::SOURCES
    );
    let petitions = r#"
[[indicator]]
id = "petition_count_24h"
name = "Petitions"
category = "volume"
source = "petition"
measure = "count"
window = "24h"
hop = "1h"
direction = "up"
weight = 0.2
normalise = { method = "baseline_pvalue", baseline = "7d", guard = "0d", seasonality = "none", dist = "poisson" }
"#;
    let indicators = format!("{}{petitions}", mini::INDICATORS.replace("weight = 0.5", "weight = 0.4"));
    let alarm = "[alarm]\nscan = \"3d\"\nbaseline = \"14d\"\nrecurrence = { yellow = \"2d\", orange = \"14d\", red = \"100d\" }\n";
    let rules = Arc::new(
        compile(&mini::files_with(&[
            ("sources.toml", &sources),
            ("indicators/police.toml", &indicators),
            ("alarm.toml", alarm),
        ]))
        .unwrap_or_else(|d| panic!("{d}")),
    );
    let start = vigil_model::time::parse_rfc3339("2026-03-01T00:00:00+08:00").unwrap();
    let g1 = rules.regions.lookup("G1").unwrap();
    let mut events = Vec::new();
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    for h in 0..24 * 24i64 {
        let burst = h / 24 == 20 && (9..15).contains(&(h % 24));
        // Police: about one call an hour, three an hour in the burst.
        for _ in 0..(if burst { 3 } else { next() % 3 }) {
            let mut e = Event { region: g1, ts: start + h * HOUR + (next() % 60) as i64 * MINUTE, ..Event::default() };
            e.set(0, 0);
            events.push(e);
        }
        // Petitions: one every few hours, two an hour in the burst.
        if burst || next().is_multiple_of(4) {
            for _ in 0..(if burst { 2 } else { 1 }) {
                events.push(Event { source: 1, region: g1, ts: start + h * HOUR + 20 * MINUTE, ..Event::default() });
            }
        }
    }
    events.sort_by_key(|e| e.ts);
    let (alerts, _) = run(&rules, &events, None);
    let parsed: Vec<vigil_model::record::AlertRecord> =
        alerts.iter().map(|a| serde_json::from_str(a).unwrap()).collect();
    let together = parsed
        .iter()
        .filter(|a| a.scope == "evidence" && a.region == "D1" && a.window_end.starts_with("2026-03-21"))
        .find(|a| a.evidence.as_ref().is_some_and(|e| e.sources == ["police", "petition"]))
        .unwrap_or_else(|| panic!("no alarm naming both sources on D1: {parsed:#?}"));
    let e = together.evidence.as_ref().unwrap();
    assert!(e.summary.contains("police, petition rise together here"), "{}", e.summary);
    // The level is set on the stronger of the joint and the single evidence.
    assert!(together.score.unwrap() >= e.statistic, "{together:?}");
    assert_eq!(alerts, run(&rules, &events, Some(events.len() / 2)).0, "and across a restart");
}

/// The expectation of a region is its share of the rest of the city (`expectation = "share"`,
/// the default): a day on which every district doubles together (a holiday, a reporting
/// catch-up) raises no district, while the same excess in one district alone does. Under
/// `expectation = "history"` the districts' own histories see the city-wide day as theirs.
#[test]
fn a_city_wide_day_raises_no_district_under_the_share_expectation() {
    let regions = format!(
        "{}D3,C,district,North,1\nD4,C,district,South,1\nD5,C,district,Port,1\nD6,C,district,Hill,1\n",
        mini::REGIONS
    );
    let indicators = with_daily_calls();
    let compiled = |expectation: &str| {
        let alarm = format!(
            "[alarm]\nscan = \"3d\"\nbaseline = \"14d\"\nindicators = [\"calls_count_1d\"]\nexpectation = \"{expectation}\"\nrecurrence = {{ yellow = \"2d\", orange = \"14d\", red = \"100d\" }}\n"
        );
        Arc::new(
            compile(&mini::files_with(&[
                ("regions.csv", &regions),
                ("indicators/police.toml", &indicators),
                ("alarm.toml", &alarm),
            ]))
            .unwrap_or_else(|d| panic!("{d}")),
        )
    };
    let share = compiled("share");
    assert_eq!(share.alarm.as_ref().unwrap().cuts[0].share, Some(0));
    let districts: Vec<u32> =
        ["D1", "D2", "D3", "D4", "D5", "D6"].iter().map(|d| share.regions.lookup(d).unwrap()).collect();
    let start = vigil_model::time::parse_rfc3339("2026-03-01T00:00:00+08:00").unwrap();
    let mut next = xorshift(0x5851_f42d_4c95_7f2d);
    let mut events = Vec::new();
    for day in 0..28i64 {
        for (k, &d) in districts.iter().enumerate() {
            // About 20 calls a day; day 20 doubles everywhere, day 24 doubles in D3 alone.
            let base = 16 + (next() % 9) as i64;
            let n = if day == 20 || (day == 24 && k == 2) { 2 * base } else { base };
            for _ in 0..n {
                let mut e =
                    Event { region: d, ts: start + day * DAY + (next() % DAY as u64) as i64, ..Event::default() };
                e.set(0, 3);
                events.push(e);
            }
        }
    }
    events.sort_by_key(|e| e.ts);
    let opened = |rules: &Arc<RuleSet>, day: &str| -> Vec<String> {
        let (alerts, _) = run(rules, &events, None);
        alerts
            .iter()
            .map(|a| serde_json::from_str::<vigil_model::record::AlertRecord>(a).unwrap())
            .filter(|a| a.scope == "evidence" && a.event == AlertEvent::Opened && a.region.starts_with('D'))
            .filter(|a| a.window_end.starts_with(day))
            .map(|a| a.region)
            .collect()
    };
    // Day 20 closes at local midnight of 03-22, 03-21T16:00Z; day 24 at 03-25T16:00Z.
    assert_eq!(opened(&share, "2026-03-21T16"), Vec::<String>::new(), "a city-wide day raised districts");
    assert_eq!(opened(&share, "2026-03-25T16"), vec!["D3".to_string()], "D3's own day");
    let history = compiled("history");
    assert_eq!(history.alarm.as_ref().unwrap().cuts[0].share, None);
    assert!(!opened(&history, "2026-03-21T16").is_empty(), "each district's own history sees the day");
}

/// An hourly 24-hour count holds a burst for a day after its last event. The burst of 03-21
/// (10:00 to 16:00) is scanned while it grows; in the 18 hours after it (17:00 to 10:00 the
/// next day) D1's cut is scanned only in hours whose newest hour brought more calls than left
/// the window (about one hour in three with this background), not in every hour of the day its
/// window still holds the burst.
/// Every alarm region's evidence at every evaluation: (period end, region, statistic).
struct EvidenceStats(Vec<(i64, u32, f64)>);

impl vigil_core::Output for EvidenceStats {
    fn score(&mut self, _: vigil_model::record::ScoreRecord) {}
    fn alert(&mut self, _: vigil_model::record::AlertRecord) {}
    fn evidence(&mut self, period: &vigil_core::Period, regions: &[vigil_core::RegionEvidence]) {
        self.0.extend(regions.iter().map(|r| (period.end, r.region, r.stat)));
    }
}

#[test]
fn a_burst_in_a_window_of_many_hops_is_scanned_while_it_grows() {
    let rules = alarm_rules_with("indicators = [\"crime_count_24h\"]\n");
    let events = scenario(&rules);
    let mut p = Pipeline::new(Arc::clone(&rules), opts());
    let mut all = EvidenceStats(Vec::new());
    for ev in &events {
        p.ingest(ev);
        p.advance(ev.ts - 5 * MINUTE, &mut all);
    }
    let d1 = rules.regions.lookup("D1").unwrap();
    let samples: Vec<(i64, f64)> = all.0.iter().filter(|s| s.1 == d1).map(|s| (s.0, s.2)).collect();
    let burst_end = vigil_model::time::parse_rfc3339("2026-03-21T16:00:00+08:00").unwrap();
    let during: Vec<f64> =
        samples.iter().filter(|(t, _)| (burst_end - 5 * HOUR..=burst_end).contains(t)).map(|s| s.1).collect();
    assert_eq!(during.len(), 6);
    assert!(
        during.windows(2).all(|w| w[1] > w[0]) && during[0] > 0.0 && during[5] > 5.0,
        "the burst is scanned in every hour of it, ever stronger: {during:?}"
    );
    let after: Vec<f64> =
        samples.iter().filter(|(t, _)| (burst_end + HOUR..burst_end + 19 * HOUR).contains(t)).map(|s| s.1).collect();
    assert_eq!(after.len(), 18);
    let scanned = after.iter().filter(|&&s| s > 0.0).count();
    assert!((1..=10).contains(&scanned), "{scanned} of the 18 hours after the burst have evidence: {after:?}");
}

/// The mini indicators with a daily count and a 7-day count of all calls, both evaluated daily,
/// and an alarm scanning `scanned` of them over 1..3 days against the 14 before.
fn weekly_rules(scanned: Option<&str>) -> Arc<RuleSet> {
    let weekly = r#"
[[indicator]]
id = "calls_count_7d"
name = "Calls, seven days"
category = "volume"
source = "police"
measure = "count"
window = "7d"
hop = "1d"
direction = "up"
weight = 0.1
normalise = { method = "robust_z", windows = 20 }
"#;
    let indicators = format!("{}{weekly}", with_daily_calls().replace("weight = 0.2", "weight = 0.1"));
    let mut files = vec![("indicators/police.toml", indicators)];
    if let Some(id) = scanned {
        let alarm = format!(
            "[alarm]\nscan = \"3d\"\nbaseline = \"14d\"\nindicators = [\"{id}\"]\nrecurrence = {{ yellow = \"2d\", orange = \"14d\" }}\n"
        );
        files.push(("alarm.toml", alarm));
    }
    let files: Vec<(&str, &str)> = files.iter().map(|(f, t)| (*f, t.as_str())).collect();
    Arc::new(compile(&mini::files_with(&files)).unwrap_or_else(|d| panic!("{d}")))
}

/// A 7-day count evaluated daily is scanned in daily counts (docs/methodology.md §16.1): at
/// every evaluation exactly the evidence of a 1-day count of the same events, so a burst is
/// seen on its day, not diluted in its week. Its alarm says so, its state survives a restart,
/// and a reload that starts scanning it keeps the indicator's history.
#[test]
fn a_weekly_count_evaluated_daily_is_scanned_in_days() {
    // Compared bit for bit.
    let bits = |v: Vec<(i64, u32, f64)>| v.into_iter().map(|s| (s.0, s.1, s.2.to_bits())).collect::<Vec<_>>();
    let (daily, weekly) = (weekly_rules(Some("calls_count_1d")), weekly_rules(Some("calls_count_7d")));
    let cut = &weekly.alarm.as_ref().unwrap().cuts[0];
    assert_eq!((cut.unit, cut.windows, cut.baseline), (DAY, 3, 14));
    let events = scenario(&weekly);
    let evidence = |rules: &Arc<RuleSet>| {
        let mut p = Pipeline::new(Arc::clone(rules), opts());
        let mut out = EvidenceStats(Vec::new());
        for ev in &events {
            p.ingest(ev);
            p.advance(ev.ts - 5 * MINUTE, &mut out);
        }
        bits(out.0)
    };
    let (d, w) = (evidence(&daily), evidence(&weekly));
    assert!(d.len() > 40 && d.iter().any(|s| f64::from_bits(s.2) > 3.0), "{d:?}");
    assert_eq!(d, w, "the weekly count scanned in days differs from the daily count");

    let (alerts, _) = run(&weekly, &events, None);
    let parsed: Vec<vigil_model::record::AlertRecord> =
        alerts.iter().map(|a| serde_json::from_str(a).unwrap()).collect();
    let opened = parsed
        .iter()
        .find(|a| a.scope == "evidence" && a.region == "D1" && a.event == AlertEvent::Opened)
        .unwrap_or_else(|| panic!("no evidence alarm on D1: {parsed:#?}"));
    let e = opened.evidence.as_ref().unwrap();
    assert_eq!((e.indicator.as_str(), e.window.as_str(), e.windows), ("calls_count_7d", "1d", 1), "{e:?}");
    // The burst day, 03-21 local (+08:00), closed.
    assert_eq!(opened.window_end, "2026-03-21T16:00:00Z");
    assert!(e.summary.contains("in the last day against"), "{}", e.summary);
    for split in [events.len() / 3, events.len() * 5 / 6] {
        assert_eq!(alerts, run(&weekly, &events, Some(split)).0, "alerts differ after a restart at event {split}");
    }

    // Rules without the alarm, reloaded (or restored from a snapshot) to scan the weekly count:
    // its window values carry over into the wider history and its daily counts are worked out
    // from them, so from the next evaluation on the evidence is what it would have been had the
    // alarm scanned it from the start.
    let plain = weekly_rules(None);
    let half = events.len() / 2;
    for via_snapshot in [false, true] {
        let mut p = Pipeline::new(Arc::clone(&plain), opts());
        let mut out = EvidenceStats(Vec::new());
        for ev in &events[..half] {
            p.ingest(ev);
            p.advance(ev.ts - 5 * MINUTE, &mut out);
        }
        let carried = if via_snapshot {
            let (q, carried) =
                Pipeline::restore_adopting(Arc::clone(&weekly), opts(), None, &p.snapshot().unwrap()).unwrap();
            p = q;
            carried.unwrap()
        } else {
            p.reload(Arc::clone(&weekly))
        };
        assert!(carried.fresh.is_empty() && carried.kept.contains(&"calls_count_7d".to_string()), "{carried:?}");
        for ev in &events[half..] {
            p.ingest(ev);
            p.advance(ev.ts - 5 * MINUTE, &mut out);
        }
        let after: Vec<_> = bits(out.0).into_iter().filter(|s| s.0 > events[half].ts + DAY).collect();
        let from_start: Vec<_> = w.iter().filter(|s| s.0 > events[half].ts + DAY).cloned().collect();
        assert!(after.len() > 20, "{after:?}");
        assert_eq!(after, from_start, "via snapshot: {via_snapshot}");
    }
}

/// A region level graded at thresholds of its own (`region_level_thresholds`, which `vigil
/// calibrate` fits per region level): districts that cannot reach theirs open nothing, and no
/// longer take D1's burst of 03-21 out of the city, which raises it instead.
#[test]
fn a_region_level_is_graded_at_its_own_thresholds() {
    let thresholds = "per = \"region\"\nthresholds = { yellow = 1.5, orange = 2.5, red = 3.5 }\n";
    let pooled = alarm_rules_with(thresholds);
    let own = alarm_rules_with(&format!(
        "{thresholds}region_level_thresholds = {{ district = {{ yellow = 90.0, orange = 95.0, red = 99.0 }} }}\n"
    ));
    let events = scenario(&pooled);
    let opened = |rules: &Arc<RuleSet>| -> Vec<(String, String)> {
        run(rules, &events, None)
            .0
            .iter()
            .map(|a| serde_json::from_str::<vigil_model::record::AlertRecord>(a).unwrap())
            .filter(|a| a.scope == "evidence" && a.event == AlertEvent::Opened)
            .map(|a| (a.region, a.window_end[..10].to_string()))
            .collect()
    };
    let (pooled, own) = (opened(&pooled), opened(&own));
    let on = |v: &[(String, String)], r: &str| v.iter().any(|(reg, d)| reg == r && d == "2026-03-21");
    assert!(on(&pooled, "D1") && !on(&pooled, "C"), "{pooled:?}");
    assert!(!own.iter().any(|(r, _)| r.starts_with('D')), "{own:?}");
    assert!(on(&own, "C"), "{own:?}");
}

/// After D1's burst of 03-21 ends, the city's 3-day scan still holds it, and D2's calls run a
/// little above their usual rate on the two days after: a city excess that is D1's burst read
/// again. D1, silent by then (its newest days are not in excess), is still linked, so the city
/// raises nothing for it (docs/methodology.md §16.2).
#[test]
fn a_child_whose_burst_has_ended_still_explains_its_parents_excess() {
    let rules = alarm_rules_with("indicators = [\"calls_count_1d\"]\n");
    let d2 = rules.regions.lookup("D2").unwrap();
    let mut events = scenario(&rules);
    let start = vigil_model::time::parse_rfc3339("2026-03-22T00:00:00+08:00").unwrap();
    for h in 0..48 {
        for k in 0..2 {
            let mut e = Event { region: d2, ts: start + h * HOUR + (10 + 20 * k) * MINUTE, ..Event::default() };
            e.set(0, 3);
            events.push(e);
        }
    }
    events.sort_by_key(|e| e.ts);
    let mut p = Pipeline::new(Arc::clone(&rules), opts());
    let mut out = EvidenceStats(Vec::new());
    for ev in &events {
        p.ingest(ev);
        p.advance(ev.ts - 5 * MINUTE, &mut out);
    }
    let city = rules.regions.lookup("C").unwrap();
    let lowest = rules.alarm.as_ref().unwrap().lowest_threshold(rules.regions.levels[city as usize]);
    let after: Vec<f64> =
        out.0.iter().filter(|s| s.1 == city && s.0 > start && s.0 <= start + 3 * DAY).map(|s| s.2).collect();
    let d1_burst = out.0.iter().filter(|s| s.1 == rules.regions.lookup("D1").unwrap()).map(|s| s.2).fold(0.0, f64::max);
    assert!(d1_burst >= lowest, "D1's burst alarms: {d1_burst}");
    // The two days after the burst (the second the one the city's 3-day scan would raise
    // without the link: 3.26 against the lowest threshold 1.38).
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().all(|&s| s < lowest), "the city raises D1's ended burst: {after:?}");
}

/// Two days of 4 extra calls every 6 hours in G1: an excess in D1 that hovers about its
/// thresholds.
fn flapping_scenario(rules: &RuleSet) -> Vec<Event> {
    mini_calls(rules, |h, draw| (draw() % 3) as i64 + if (20..22).contains(&(h / 24)) && h % 6 == 0 { 4 } else { 0 })
}

/// `hold`: an episode rises at once and falls only after the evidence has stayed below for the
/// hold. An excess hovering about its thresholds flaps when the levels follow every evaluation
/// (`hold = "1h"`); the default hold of 3 hours opens it at the same hour, writes fewer records,
/// and lowers a level only after three evaluations below it.
#[test]
fn the_hold_keeps_an_evidence_episode_from_flapping() {
    let evidence = |rules: &Arc<RuleSet>| -> Vec<vigil_model::record::AlertRecord> {
        let (alerts, _) = run(rules, &flapping_scenario(rules), None);
        alerts
            .iter()
            .map(|a| serde_json::from_str::<vigil_model::record::AlertRecord>(a).unwrap())
            .filter(|a| a.scope == "evidence")
            .collect()
    };
    let follow = evidence(&alarm_rules_with("hold = \"1h\"\n"));
    let held = evidence(&alarm_rules_with("hold = \"3h\"\n"));
    let day = evidence(&alarm_rules());
    let d1 = |v: &[vigil_model::record::AlertRecord]| -> Vec<(String, AlertEvent, Option<vigil_model::Level>)> {
        v.iter().filter(|a| a.region == "D1").map(|a| (a.window_end.clone(), a.event, a.level)).collect()
    };
    let (f, h) = (d1(&follow), d1(&held));
    assert!(f.len() >= 8, "the scenario flaps without a hold: {f:?}");
    assert_eq!(f[0], h[0], "the first alarm is not delayed");
    assert!(h.len() < f.len(), "held {h:?}\nfollowing {f:?}");
    // A level lowered within 3 hours of the record before it: the flapping the hold prevents.
    let quick_drops = |v: &[(String, AlertEvent, Option<vigil_model::Level>)]| {
        v.windows(2)
            .filter(|w| matches!(w[1].1, AlertEvent::Deescalated | AlertEvent::Resolved))
            .filter(|w| {
                let t = |s: &str| vigil_model::time::parse_rfc3339(s).unwrap();
                t(&w[1].0) - t(&w[0].0) < 3 * HOUR
            })
            .count()
    };
    assert!(quick_drops(&f) > 0, "{f:?}");
    assert_eq!(quick_drops(&h), 0, "{h:?}");
    // The default: a level is kept to the end of its day, so every fall is at local midnight
    // (16:00 UTC), there are no more records than with the 3-hour hold, and the first alarm is
    // the same.
    let d = d1(&day);
    assert_eq!(d[0], f[0]);
    assert!(d.len() <= h.len(), "day {d:?}\nheld {h:?}");
    let falls: Vec<_> = d.iter().filter(|a| matches!(a.1, AlertEvent::Deescalated | AlertEvent::Resolved)).collect();
    assert!(!falls.is_empty() && falls.iter().all(|a| a.0.ends_with("T16:00:00Z")), "{d:?}");
}

/// A reload to rules without an alarm ends the open evidence episodes, which get no `resolved`
/// record: the reload counts them, so the engine can say so.
#[test]
fn a_reload_that_removes_the_alarm_counts_its_open_episodes() {
    let rules = alarm_rules();
    let events = scenario(&rules);
    let mut p = Pipeline::new(Arc::clone(&rules), opts());
    let mut out = VecOutput::default();
    // Up to the evening of 03-21, when D1's burst alarm is open.
    let until = vigil_model::time::parse_rfc3339("2026-03-21T12:00:00Z").unwrap();
    for ev in events.iter().filter(|e| e.ts < until) {
        p.ingest(ev);
        p.advance(ev.ts - 5 * MINUTE, &mut out);
    }
    let open = p.active_alerts().into_iter().filter(|a| a.scope == "evidence").count();
    assert!(open >= 1, "an evidence episode is open before the reload");
    let same = p.reload(Arc::clone(&rules));
    assert_eq!(same.evidence_dropped, 0, "the same alarm keeps its episodes");
    let without = Arc::new(compile(&mini::files_with(&[])).unwrap());
    assert!(without.alarm.is_none());
    let carried = p.reload(without);
    assert_eq!(carried.evidence_dropped, open, "{carried:?}");
}

/// Every alert record carries its level's response and deadline (the moment the record's level
/// was reached plus the level's `deadline`), and an open episode past its deadline is overdue.
#[test]
fn alerts_carry_the_response_and_deadline_and_open_ones_fall_overdue() {
    let grading =
        mini::GRADING.replace("\nenter = ", "\nresponse = \"Check the drivers.\"\ndeadline = \"6h\"\nenter = ");
    let alarm = "[alarm]\nscan = \"3d\"\nbaseline = \"14d\"\nrecurrence = { yellow = \"2d\", orange = \"14d\", red = \"100d\" }\n";
    let rules = Arc::new(
        compile(&mini::files_with(&[("grading.toml", &grading), ("alarm.toml", alarm)]))
            .unwrap_or_else(|d| panic!("{d}")),
    );
    assert_eq!(rules.grading.spec(vigil_model::Level::Red).deadline.map(|d| d.0), Some(6 * HOUR));
    let events = scenario(&rules);
    let mut p = Pipeline::new(Arc::clone(&rules), opts());
    let mut out = VecOutput::default();
    let until = vigil_model::time::parse_rfc3339("2026-03-21T14:00:00Z").unwrap();
    for ev in events.iter().filter(|e| e.ts < until) {
        p.ingest(ev);
        p.advance(ev.ts - 5 * MINUTE, &mut out);
    }
    assert!(!out.alerts.is_empty());
    for a in &out.alerts {
        if a.level.is_some() {
            let end = vigil_model::time::parse_rfc3339(&a.window_end).unwrap();
            assert_eq!(a.response.as_deref(), Some("Check the drivers."), "{a:?}");
            assert_eq!(a.deadline, Some(vigil_model::time::format_utc(end + 6 * HOUR)), "{a:?}");
        } else {
            assert!(a.response.is_none() && a.deadline.is_none(), "{a:?}");
        }
    }
    // The burst's evidence alarm in D1 reached its level at 05:00Z and 06:00Z; by the last
    // evaluation before 14:00Z it is past its 6 hours; an alert whose level came later is not.
    let active = p.active_alerts();
    assert!(!active.is_empty());
    let last = out.scores.iter().map(|s| vigil_model::time::parse_rfc3339(&s.window_end).unwrap()).max().unwrap();
    for a in &active {
        let since = vigil_model::time::parse_rfc3339(&a.since).unwrap();
        assert_eq!(a.deadline, Some(vigil_model::time::format_utc(since + 6 * HOUR)));
        assert_eq!(a.overdue, last > since + 6 * HOUR, "{a:?} at {last}");
        // `since` is the window end of the record that set the current level.
        assert!(
            out.alerts.iter().any(|r| r.alert_id == a.alert_id && r.window_end == a.since && r.level == Some(a.level))
        );
    }
    assert!(active.iter().any(|a| a.overdue), "{active:?}");
}

/// A scale-out task's pipeline holds state only for the regions it owns: it publishes for them
/// exactly what a pipeline of the whole rule set does, its snapshot is smaller, a snapshot of
/// the whole rule set (a task's, from before) is narrowed to its regions and goes on as if
/// scoped from the start, and its own snapshot does not restore unscoped, nor as another
/// scope's (adopted as a changed layout: rebuilt from the topics).
#[test]
fn a_scoped_pipeline_holds_and_publishes_only_its_regions() {
    let rules = rules();
    let events = scenario(&rules);
    let mut owned = vec![false; rules.regions.len()];
    for code in ["D1", "G1"] {
        owned[rules.regions.lookup(code).unwrap() as usize] = true;
    }
    let mut other = vec![false; rules.regions.len()];
    other[rules.regions.lookup("D2").unwrap() as usize] = true;
    let mut whole = Pipeline::new(Arc::clone(&rules), opts());
    let mut task = Pipeline::scoped(Arc::clone(&rules), opts(), Some(&owned));
    let (mut whole_out, mut task_out) = (VecOutput::default(), VecOutput::default());
    let split = events.len() / 2;
    let mut narrowed: Option<(Pipeline, VecOutput)> = None;
    for (i, ev) in events.iter().enumerate() {
        if i == split {
            let (w, t) = (whole.snapshot().unwrap(), task.snapshot().unwrap());
            assert!(
                t.len() * 3 < w.len() * 2,
                "a task's snapshot of {} bytes against {} for the whole",
                t.len(),
                w.len()
            );
            assert!(Pipeline::restore(Arc::clone(&rules), opts(), None, &t).is_err(), "restored as unscoped");
            // Another task's regions (the partitions changed): nothing carried, not refused.
            let (_, carried) = Pipeline::restore_adopting(Arc::clone(&rules), opts(), Some(&other), &t).unwrap();
            assert!(carried.is_some_and(|c| c.layout_changed));
            task = Pipeline::restore(Arc::clone(&rules), opts(), Some(&owned), &t).unwrap();
            narrowed =
                Some((Pipeline::restore(Arc::clone(&rules), opts(), Some(&owned), &w).unwrap(), VecOutput::default()));
        }
        for (p, out) in [(&mut whole, &mut whole_out), (&mut task, &mut task_out)]
            .into_iter()
            .chain(narrowed.as_mut().map(|(p, o)| (p, o)))
        {
            p.ingest(ev);
            p.advance(ev.ts - 5 * MINUTE, out);
        }
    }
    // Score records, then alert records, of the regions `keep` passes.
    let lines = |out: &VecOutput, keep: &dyn Fn(&str) -> bool| -> [Vec<String>; 2] {
        [
            out.scores.iter().filter(|s| keep(&s.region)).map(|s| serde_json::to_string(s).unwrap()).collect(),
            out.alerts.iter().filter(|a| keep(&a.region)).map(|a| serde_json::to_string(a).unwrap()).collect(),
        ]
    };
    let own = |r: &str| r == "D1" || r == "G1";
    let want = lines(&whole_out, &own);
    assert!(!want[1].is_empty(), "the scenario raises no alert in D1");
    assert_eq!(lines(&task_out, &|_| true), want);
    // The narrowed pipeline publishes from the split on what the others do.
    let (_, narrowed_out) = narrowed.unwrap();
    let after = lines(&narrowed_out, &|_| true);
    assert!(!after[0].is_empty() && !after[1].is_empty());
    for (w, a) in want.iter().zip(&after) {
        assert!(w.ends_with(a), "the narrowed pipeline went another way");
    }
}
