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
        Options { scores: ScoreDetail::Summary, score_levels: [true, true, false, false] },
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
    // The Fourth of July is Chicago's best-known surge in assaults: the city composite reaches
    // orange within a day of it.
    let july4 = a.alerts.iter().filter(|x| {
        x.region == "CHI"
            && x.scope == "composite"
            && x.window_end.as_str() >= "2019-07-04T12"
            && x.window_end.as_str() <= "2019-07-06T12"
    });
    assert!(
        july4.filter_map(|x| x.level).max() >= Some(vigil_model::Level::Orange),
        "no orange around the Fourth of July"
    );
    // Quiet stretches stay quiet: fewer than one episode a week per (region, scope) on average.
    let opened = a.alerts.iter().filter(|x| x.event == vigil_model::record::AlertEvent::Opened).count();
    assert!(opened < 23 * 2 * 52, "{opened} episodes opened");
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
