//! The file driver end to end: real data (Chicago 2019) through a small rule set, bad input
//! mixed into a stream, and identity-like fields that must never reach any output.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use vigil_core::{Options, Pipeline, ScoreDetail};
use vigil_replay::{Input, MemSink, replay};
use vigil_rules::RuleSet;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn run(rules: &Arc<RuleSet>, inputs: Vec<(&str, String)>) -> (MemSink, vigil_replay::Summary) {
    let inputs = inputs
        .into_iter()
        .map(|(name, text)| {
            Input::lines(
                name.to_string(),
                rules.source_index(name.trim_end_matches(".jsonl")),
                Box::new(Cursor::new(text.into_bytes())),
            )
        })
        .collect();
    let mut p = Pipeline::new(
        Arc::clone(rules),
        Options {
            scores: ScoreDetail::Summary,
            score_levels: vigil_core::ScoreLevels(0b0011),
            score_filter: vigil_core::ScoreFilter::All,
            score_every: None,
        },
    );
    let mut sink = MemSink::default();
    let summary = replay(&mut p, inputs, &mut sink).unwrap();
    (sink, summary)
}

fn lines<T: serde::Serialize>(v: &[T]) -> Vec<String> {
    v.iter().map(|x| serde_json::to_string(x).unwrap()).collect()
}

#[test]
fn real_chicago_assaults_replay_deterministically() {
    let rules = Arc::new(vigil_rules::load(&root().join("testdata/chicago/rules")).unwrap_or_else(|d| panic!("{d}")));
    let text = std::fs::read_to_string(root().join("testdata/chicago/police.jsonl")).unwrap();
    let (a, sa) = run(&rules, vec![("police.jsonl", text.clone())]);
    assert_eq!(sa.lines, 15_328);
    assert_eq!(sa.accepted, 15_328, "{sa:?}");
    assert!(sa.rejected.is_empty());
    // The Fourth of July is Chicago's best-known surge in assaults: the city composite opens an
    // alert within a day of it and reaches orange within three (in local Chicago time the
    // surge's day ends at 05:00Z; two evaluations at orange are needed).
    let july4 = |until: &str| {
        a.alerts
            .iter()
            .filter(|x| {
                x.region == "CHI"
                    && x.scope == "composite"
                    && x.window_end.as_str() >= "2019-07-04T12"
                    && x.window_end.as_str() <= until
            })
            .filter_map(|x| x.level)
            .max()
    };
    assert!(july4("2019-07-05T12") >= Some(vigil_model::Level::Yellow), "no alert the day after the Fourth of July");
    assert!(july4("2019-07-07T12") >= Some(vigil_model::Level::Orange), "no orange around the Fourth of July");
    // Quiet stretches stay quiet: fewer than one episode a week per (region, scope) on average.
    let opened = a.alerts.iter().filter(|x| x.event == vigil_model::record::AlertEvent::Opened).count();
    assert!(opened < 23 * 2 * 52, "{opened} episodes opened");
    // What raises a level is raised itself: every reason of an opened or escalated alert scores
    // at least 25 (one standard deviation above its expectation) and is named as the rules
    // name it.
    use vigil_model::record::AlertEvent::{Escalated, Opened};
    let rising: Vec<_> = a.alerts.iter().filter(|x| matches!(x.event, Opened | Escalated)).collect();
    assert!(rising.iter().any(|x| !x.top_contributors.is_empty()));
    for x in &rising {
        for c in &x.top_contributors {
            assert!(c.score.is_some_and(|s| s >= 25.0), "{} lists {c:?}", x.alert_id);
            let ind = rules.indicators.iter().find(|i| i.id == c.indicator).unwrap();
            assert_eq!(c.name.as_ref().map(|n| n.en.as_str()), Some(ind.name.en.as_str()));
        }
    }
    let (b, _) = run(&rules, vec![("police.jsonl", text)]);
    assert_eq!(lines(&a.alerts), lines(&b.alerts));
    assert_eq!(lines(&a.scores), lines(&b.scores));
}

fn mini_city() -> (Arc<RuleSet>, String) {
    let rules = Arc::new(vigil_rules::load(&root().join("testdata/chicago/rules")).unwrap());
    let text = std::fs::read_to_string(root().join("testdata/chicago/police.jsonl")).unwrap();
    // The first 60 days are enough here.
    let cut: String = text
        .lines()
        .filter(|l| l.contains("\"ts\":\"2019-01") || l.contains("\"ts\":\"2019-02"))
        .map(|l| format!("{l}\n"))
        .collect();
    (rules, cut)
}

#[test]
fn bad_lines_are_rejected_with_reasons_and_change_nothing_else() {
    let (rules, clean) = mini_city();
    let bad = [
        ("not json at all", "malformed_json"),
        ("{\"region\":\"D01\"}", "missing_field"),
        ("{\"region\":\"D99\",\"ts\":\"2019-01-05T10:00:00Z\",\"attrs\":{\"loc_cat\":\"street\"}}", "unknown_region"),
        ("{\"region\":\"D01\",\"ts\":\"2019-01-05T10:00:00Z\",\"attrs\":{\"loc_cat\":\"moon\"}}", "unknown_value"),
        ("{\"region\":\"D01\",\"ts\":\"2019-13-05T10:00:00Z\",\"attrs\":{\"loc_cat\":\"street\"}}", "bad_timestamp"),
        ("{\"region\":\"D01\",\"ts\":\"2019-01-05T10:00:00Z\",\"attrs\":{\"loc_cat\":7}}", "wrong_type"),
        ("[\"an\",\"array\"]", "not_an_object"),
    ];
    let mut dirty = String::new();
    for (i, line) in clean.lines().enumerate() {
        dirty.push_str(line);
        dirty.push('\n');
        if i % 300 == 7 {
            let (b, _) = bad[(i / 300) % bad.len()];
            dirty.push_str(b);
            dirty.push('\n');
        }
    }
    let (a, sa) = run(&rules, vec![("police.jsonl", clean)]);
    let (b, sb) = run(&rules, vec![("police.jsonl", dirty)]);
    assert_eq!(lines(&a.alerts), lines(&b.alerts), "bad lines must not change any alert");
    assert_eq!(lines(&a.scores), lines(&b.scores));
    let rejected: u64 = sb.rejected.values().sum();
    assert_eq!(rejected as usize, b.rejected.len());
    assert!(rejected >= bad.len() as u64);
    for (_, code) in bad {
        assert!(sb.rejected.contains_key(code), "no `{code}` rejection in {:?}", sb.rejected);
    }
    assert_eq!(sa.accepted, sb.accepted);
    assert!(b.rejected.iter().all(|r| r.line > 0 && !r.detail.is_empty()));
}

#[test]
fn identity_fields_added_upstream_never_reach_an_output() {
    let (rules, clean) = mini_city();
    let with_pii: String = clean
        .lines()
        .map(|l| {
            let l = l.replacen("{\"id\"", "{\"name\":\"Zhang Wei\",\"phone\":\"13912345678\",\"id\"", 1);
            l.replacen(
                "\"attrs\":{",
                "\"attrs\":{\"id_card\":\"110101199003071234\",\"device_id\":\"IMEI-356938035643809\",",
                1,
            ) + "\n"
        })
        .collect();
    let (a, sa) = run(&rules, vec![("police.jsonl", clean)]);
    let (b, sb) = run(&rules, vec![("police.jsonl", with_pii)]);
    assert_eq!(sb.dropped_fields, 4 * sb.accepted, "every added field is dropped");
    assert_eq!(sa.accepted, sb.accepted);
    let everything = [lines(&b.alerts), lines(&b.scores), lines(&b.rejected), lines(&b.late)].concat().join("\n")
        + &serde_json::to_string(&sb).unwrap();
    for needle in ["Zhang", "13912345678", "110101199003071234", "IMEI", "phone", "id_card", "device_id"] {
        assert!(!everything.contains(needle), "`{needle}` leaked into an output");
    }
    assert_eq!(lines(&a.alerts), lines(&b.alerts));
}

#[test]
fn out_of_order_lines_are_late_or_accepted_never_lost() {
    let (rules, clean) = mini_city();
    let mut ls: Vec<&str> = clean.lines().collect();
    // Move a January event to the end of the stream: far behind the watermark by then.
    let moved = ls.remove(100);
    ls.push(moved);
    let text = ls.join("\n") + "\n";
    let (b, sb) = run(&rules, vec![("police.jsonl", text)]);
    assert_eq!(sb.late, 1);
    assert_eq!(b.late.len(), 1);
    assert_eq!(sb.accepted + sb.accepted_late + sb.late, sb.lines);
}

/// A day-stamped real stream through a rule set with its own levels (city > district > beat), a
/// daylight-saving zone, a daily cadence, English-only names and no populations: every record
/// describes exactly one local calendar day, named by its `date`, including the 23- and 25-hour
/// days, and an alert's one-day count is the number of events stamped with its date.
#[test]
fn day_stamped_stream_dates_every_daily_alert_to_its_data_day() {
    use std::collections::HashMap;
    use vigil_model::time::{DAY, HOUR, days_from_civil, parse_rfc3339};
    let dir = root().join("testdata/chicago-daily");
    let rules = Arc::new(vigil_rules::load(&dir.join("rules")).unwrap_or_else(|d| panic!("{d}")));
    assert_eq!(rules.regions.level_names, ["city", "district", "beat"]);
    let text = std::fs::read_to_string(dir.join("police.jsonl")).unwrap();
    let mut p = Pipeline::new(
        Arc::clone(&rules),
        Options {
            scores: ScoreDetail::Full,
            score_levels: vigil_core::ScoreLevels::ALL,
            score_filter: vigil_core::ScoreFilter::All,
            score_every: None,
        },
    );
    let mut sink = MemSink::default();
    let input = Input::lines("police.jsonl".into(), Some(0), Box::new(Cursor::new(text.clone().into_bytes())));
    let summary = replay(&mut p, vec![input], &mut sink).unwrap();
    assert_eq!(summary.accepted, 15_328, "{summary:?}");
    assert!(!sink.alerts.is_empty());
    assert!(sink.alerts.iter().any(|a| a.region_level == "beat"), "no beat alert");

    // Events per (region and its ancestors, local date), from the stamps themselves.
    let mut per_day: HashMap<(String, String), u64> = HashMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let date = v["ts"].as_str().unwrap()[..10].to_string();
        let mut r = rules.regions.lookup(v["region"].as_str().unwrap());
        while let Some(i) = r {
            *per_day.entry((rules.regions.codes[i as usize].clone(), date.clone())).or_default() += 1;
            r = rules.regions.parents[i as usize];
        }
    }
    let zone = &rules.zone;
    let check_period = |start: &str, end: &str, date: &Option<String>| {
        let date = date.as_deref().expect("daily records carry a date");
        let (y, m, d) = (date[..4].parse().unwrap(), date[5..7].parse().unwrap(), date[8..].parse().unwrap());
        let day = days_from_civil(y, m, d) * DAY;
        let (s, e) = (parse_rfc3339(start).unwrap(), parse_rfc3339(end).unwrap());
        assert_eq!((zone.local(s), zone.local(e)), (day, day + DAY), "{date}: [{start}, {end})");
        e - s
    };
    let mut lengths = std::collections::BTreeSet::new();
    for s in &sink.scores {
        lengths.insert(check_period(&s.window_start, &s.window_end, &s.date));
        // The one-day count is the number of events stamped with the record's date.
        let count = s.indicators.iter().find(|i| i.indicator == "assault_count_1d").and_then(|i| i.value);
        let want = per_day.get(&(s.region.clone(), s.date.clone().unwrap())).copied().unwrap_or(0);
        if let Some(c) = count {
            assert_eq!(c as u64, want, "{} on {:?}", s.region, s.date);
        }
    }
    // The spring-forward and fall-back days are one record each, of 23 and 25 hours.
    assert_eq!(lengths.into_iter().collect::<Vec<_>>(), [23 * HOUR, 24 * HOUR, 25 * HOUR]);
    for a in &sink.alerts {
        check_period(&a.window_start, &a.window_end, &a.date);
        if let Some(c) = a.top_contributors.iter().find(|i| i.indicator == "assault_count_1d").and_then(|i| i.value) {
            let want = per_day.get(&(a.region.clone(), a.date.clone().unwrap())).copied().unwrap_or(0);
            assert_eq!(c as u64, want, "alert {} on {:?}", a.alert_id, a.date);
        }
    }
}

/// One event stamped eleven months ahead, a third of the way into the stream, is refused as
/// `timestamp_in_future` before it moves any watermark: every other event counts and the alerts
/// and scores are those of the clean stream. (Before the rule it made most later events late.)
#[test]
fn an_event_far_in_the_future_cannot_stop_the_detector() {
    let (rules, clean) = mini_city();
    let rows: Vec<&str> = clean.lines().collect();
    let third = rows.len() / 3;
    let future = r#"{"id":"x","region":"D07","ts":"2019-12-20T10:00:00Z","attrs":{"loc_cat":"street"}}"#;
    let poisoned: String =
        rows[..third].iter().chain(std::iter::once(&future)).chain(&rows[third..]).map(|l| format!("{l}\n")).collect();
    let (a, sa) = run(&rules, vec![("police.jsonl", clean)]);
    let (b, sb) = run(&rules, vec![("police.jsonl", poisoned)]);
    assert_eq!(sb.rejected.get("timestamp_in_future"), Some(&1), "{sb:?}");
    assert_eq!(b.rejected.iter().filter(|r| r.line as usize == third + 1).count(), 1);
    assert_eq!((sb.accepted, sb.late), (sa.accepted, 0));
    assert!(!a.alerts.is_empty());
    assert_eq!(lines(&a.alerts), lines(&b.alerts));
    assert_eq!(lines(&a.scores), lines(&b.scores));
}

/// A producer that resends events (same id) gets them counted once: the outputs equal the clean
/// stream's, and the summary counts the resends. Events without an id are never de-duplicated.
#[test]
fn resent_events_count_once() {
    let (rules, clean) = mini_city();
    let mut resent = String::new();
    let mut n = 0;
    for (i, line) in clean.lines().enumerate() {
        resent.push_str(line);
        resent.push('\n');
        // Every 50th event again, right after (an at-least-once producer's retry).
        if i % 50 == 0 {
            resent.push_str(line);
            resent.push('\n');
            n += 1;
        }
    }
    let (a, sa) = run(&rules, vec![("police.jsonl", clean.clone())]);
    let (b, sb) = run(&rules, vec![("police.jsonl", resent)]);
    assert_eq!((sb.duplicates, sb.accepted), (n, sa.accepted));
    assert_eq!(lines(&a.alerts), lines(&b.alerts));
    assert_eq!(lines(&a.scores), lines(&b.scores));
    // Without ids the same lines are separate events.
    let anonymous: String = clean.lines().map(|l| format!("{}\n", l.replacen("\"id\":", "\"x\":", 1))).collect();
    let twice: String = anonymous.lines().take(10).flat_map(|l| [l, l]).map(|l| format!("{l}\n")).collect();
    let (_, sc) = run(&rules, vec![("police.jsonl", twice)]);
    assert_eq!((sc.duplicates, sc.accepted), (0, 20));
}
