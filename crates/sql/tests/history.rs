//! The archive end to end over the generated city: a replay from Parquet equals the replay of
//! the JSON lines it was written from, SQL over the archive agrees with the records themselves,
//! a backtest sees a threshold change and nothing else, and entropy weights calibrated from the
//! archive make a rule set that compiles.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, Int64Array, StringArray};
use vigil_core::{ArchiveLog, Options, Pipeline, ScoreDetail};
use vigil_model::Level;
use vigil_replay::{Input, MemSink};
use vigil_rules::{RuleFiles, RuleSet};
use vigil_sql::archive::{self, ArchiveWriter, Mode, Tables};
use vigil_sql::backtest;
use vigil_sql::query::History;
use vigil_sql::weights;

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

fn rules() -> Arc<RuleSet> {
    Arc::new(vigil_rules::load(&rules_dir()).unwrap())
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("history-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The generated city as JSON lines per source, kept in memory, and the same events in an
/// archive.
struct City {
    lines: BTreeMap<String, Vec<String>>,
    archive: PathBuf,
    truth: vigil_sim::GroundTruth,
}

struct Lines<'r> {
    lines: BTreeMap<String, Vec<String>>,
    writer: ArchiveWriter,
    decoder: vigil_rules::decode::Decoder<'r>,
}

impl vigil_sim::EventSink for Lines<'_> {
    fn emit(&mut self, source: &str, line: &str) -> std::io::Result<()> {
        let mut ev = vigil_model::Event::default();
        let hint = vigil_rules::decode::SourceHint::Fixed(self.decoder.rules().source_index(source).unwrap());
        self.decoder.decode(hint, line.as_bytes(), &mut ev).map_err(|r| std::io::Error::other(r.detail))?;
        self.writer.event(&ev);
        self.lines.entry(source.to_string()).or_default().push(line.to_string());
        Ok(())
    }
}

/// Generates the city once for all tests of this file (35 days, with incidents).
fn city() -> &'static City {
    static CITY: OnceLock<City> = OnceLock::new();
    CITY.get_or_init(|| {
        let rules = rules();
        let dir = scratch("city");
        let writer = ArchiveWriter::create(
            &dir,
            Arc::clone(&rules),
            Tables { events: true, results: false },
            Mode::Replace,
            "gen",
        )
        .unwrap();
        let mut sink = Lines { lines: BTreeMap::new(), writer, decoder: vigil_rules::decode::Decoder::new(&rules) };
        let cfg = vigil_sim::GenConfig { seed: 11, days: 35, ..vigil_sim::GenConfig::default() };
        let truth = vigil_sim::generate(&cfg, &rules.regions.specs(), &mut sink).unwrap();
        let Lines { lines, writer, .. } = sink;
        writer.finish().unwrap();
        City { lines, archive: dir, truth }
    })
}

fn json_inputs(rules: &RuleSet, lines: &BTreeMap<String, Vec<String>>) -> Vec<Input> {
    lines
        .iter()
        .map(|(s, ls)| {
            Input::lines(
                format!("{s}.jsonl"),
                rules.source_index(s),
                Box::new(Cursor::new((ls.join("\n") + "\n").into_bytes())),
            )
        })
        .collect()
}

fn replay(rules: &Arc<RuleSet>, inputs: Vec<Input>, scores: ScoreDetail) -> (MemSink, vigil_replay::Summary) {
    let mut p = Pipeline::new(
        Arc::clone(rules),
        Options {
            scores,
            score_levels: vigil_core::ScoreLevels(0b0111),
            score_filter: vigil_core::ScoreFilter::All,
            score_every: None,
        },
    );
    let mut sink = MemSink::default();
    let summary = vigil_replay::replay(&mut p, inputs, &mut sink).unwrap();
    (sink, summary)
}

fn json<T: serde::Serialize>(v: &[T]) -> Vec<String> {
    v.iter().map(|x| serde_json::to_string(x).unwrap()).collect()
}

#[test]
fn replay_from_parquet_equals_replay_of_the_json_lines() {
    let rules = rules();
    let c = city();
    let (from_json, s1) = replay(&rules, json_inputs(&rules, &c.lines), ScoreDetail::Summary);
    let inputs = archive::event_inputs(&c.archive, &rules, None).unwrap();
    assert_eq!(inputs.len(), 4, "one input per source");
    let (from_parquet, s2) = replay(&rules, inputs, ScoreDetail::Summary);
    assert!(s1.accepted > 100_000 && !from_json.alerts.is_empty(), "{s1:?}");
    assert_eq!(s1.accepted, s2.accepted);
    assert_eq!(s2.rejected.len(), 0, "{:?}", s2.rejected);
    assert_eq!(json(&from_json.alerts), json(&from_parquet.alerts));
    assert!(json(&from_json.scores) == json(&from_parquet.scores), "score records differ");
    assert_eq!(from_json.late.len(), from_parquet.late.len());
}

#[test]
fn archive_reads_refuse_values_the_rules_do_not_declare() {
    // A rule set without one of the opinion platforms: those archived events are refused with
    // a reason, the rest replay.
    let mut files = RuleFiles::load_dir(&rules_dir()).unwrap();
    let src = files.files.get_mut("sources.toml").unwrap();
    assert!(src.contains("\"weibo\", "), "the test edits the platform list");
    *src = src.replacen("\"weibo\", ", "", 1);
    let narrowed = Arc::new(vigil_rules::compile(&files).unwrap());
    let inputs = archive::event_inputs(&city().archive, &narrowed, None).unwrap();
    let (_, summary) = replay(&narrowed, inputs, ScoreDetail::None);
    let refused = summary.rejected.get("unknown_value").copied().unwrap_or(0);
    assert!(refused > 0, "{summary:?}");
    assert!(summary.accepted > 100_000);
}

fn strings(b: &arrow::array::RecordBatch, i: usize) -> Vec<String> {
    let c = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8).unwrap();
    let c = c.as_any().downcast_ref::<StringArray>().unwrap();
    (0..c.len()).map(|r| c.value(r).to_string()).collect()
}

fn ints(b: &arrow::array::RecordBatch, i: usize) -> Vec<i64> {
    let c = b.column(i).as_any().downcast_ref::<Int64Array>().unwrap();
    (0..c.len()).map(|r| c.value(r)).collect()
}

#[test]
fn sql_over_the_archive_agrees_with_the_records() {
    let rules = rules();
    let c = city();
    // gen + replay into one archive, as `vigil gen --archive A` then `vigil replay --archive A`.
    let dir = scratch("sql");
    copy_dir(&c.archive, &dir);
    let inputs = archive::event_inputs(&dir, &rules, None).unwrap();
    let mut p = Pipeline::new(
        Arc::clone(&rules),
        Options {
            scores: ScoreDetail::Summary,
            score_levels: vigil_core::ScoreLevels(0b0111),
            score_filter: vigil_core::ScoreFilter::All,
            score_every: None,
        },
    );
    let mut w = ArchiveWriter::create(
        &dir,
        Arc::clone(&rules),
        Tables { events: false, results: true },
        Mode::Replace,
        "replay",
    )
    .unwrap();
    let mut mem = MemSink::default();
    struct Both<'a>(&'a mut ArchiveWriter, &'a mut MemSink);
    impl vigil_core::Output for Both<'_> {
        fn score(&mut self, r: vigil_model::record::ScoreRecord) {
            self.0.score(r.clone());
            self.1.score(r);
        }
        fn alert(&mut self, r: vigil_model::record::AlertRecord) {
            self.0.alert(r.clone());
            self.1.alert(r);
        }
    }
    impl vigil_replay::Sink for Both<'_> {
        fn rejected(&mut self, _: vigil_replay::Rejected) {}
        fn late(&mut self, _: vigil_replay::LateRecord) {}
    }
    vigil_replay::replay(&mut p, inputs, &mut Both(&mut w, &mut mem)).unwrap();
    w.finish().unwrap();

    let h = History::open(&dir).unwrap();
    let names: Vec<&str> = h.tables().iter().map(|t| t.name.as_str()).collect();
    for t in ["events", "events_police", "scores", "score_parts", "alerts"] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }

    // Alert records read back whole (what the bulletin explains episodes with): every field
    // the alert table keeps, evidence, response and deadline included.
    let key = |a: &vigil_model::record::AlertRecord| (a.alert_id.clone(), a.seq);
    let mut back = vigil_sql::read::alerts(&h).unwrap();
    back.sort_by_key(key);
    let mut want: Vec<_> = mem
        .alerts
        .iter()
        .cloned()
        .map(|mut a| {
            (a.window_start, a.date, a.top_regions) = (String::new(), None, Vec::new());
            a
        })
        .collect();
    want.sort_by_key(key);
    assert!(want.iter().any(|a| a.evidence.is_some()) && want.iter().any(|a| a.response.is_some()));
    // A level an override set names the rule and its trigger, and only such a level does.
    let floors: Vec<_> = mem.alerts.iter().filter(|a| a.reason == "override").collect();
    assert!(!floors.is_empty(), "the 60-day city has levels set by overrides");
    for a in &floors {
        let f = a.floor.as_ref().unwrap_or_else(|| panic!("{} has no floor", a.alert_id));
        assert_eq!(Some(f.level), a.level, "{}", a.alert_id);
        match f.rule.as_str() {
            "any_domain" => assert!(rules.domains.iter().any(|d| d.id == f.trigger) && a.scope == "composite"),
            "hard_indicator" => assert!(rules.indicators.iter().any(|i| i.id == f.trigger && i.hard)),
            other => panic!("unknown rule {other}"),
        }
    }
    assert!(mem.alerts.iter().filter(|a| a.reason != "override").all(|a| a.floor.is_none()));
    // serde_json parses floats to within one unit in the last place: p-values are compared so.
    let p = |a: &mut vigil_model::record::AlertRecord| a.evidence.as_mut().map(|e| std::mem::take(&mut e.p_value));
    assert_eq!(back.len(), want.len());
    for (b, w) in back.iter_mut().zip(want.iter_mut()) {
        let (pb, pw) = (p(b), p(w));
        assert!(pb.zip(pw).is_none_or(|(x, y)| (x - y).abs() <= 1e-15 * y.abs()), "{pb:?} {pw:?}");
        assert_eq!(b, w);
    }
    let composite = vigil_sql::read::composite(&h, "district").unwrap();
    let districts = mem.scores.iter().filter(|s| s.level == "district" && s.composite.is_some()).count();
    assert!(districts > 0);
    assert_eq!(composite.len(), districts);
    // The query of the issue (orange and red: this short city raises few red alerts), against
    // a count made from the records.
    let got = h
        .query(
            "SELECT region, count(*) AS n FROM alerts WHERE level IN ('orange', 'red') GROUP BY region ORDER BY 2 DESC, 1",
        )
        .unwrap();
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for a in mem.alerts.iter().filter(|a| a.level >= Some(Level::Orange)) {
        *want.entry(a.region.clone()).or_default() += 1;
    }
    let mut got_map = BTreeMap::new();
    for b in &got {
        for (r, n) in strings(b, 0).into_iter().zip(ints(b, 1)) {
            got_map.insert(r, n);
        }
    }
    assert!(!want.is_empty(), "the city has orange or red alerts");
    assert_eq!(got_map, want);
    // Events per source, and scores per level.
    let got = h.query("SELECT source, count(*) FROM events GROUP BY source ORDER BY source").unwrap();
    let got: BTreeMap<String, i64> = got.iter().flat_map(|b| strings(b, 0).into_iter().zip(ints(b, 1))).collect();
    let want: BTreeMap<String, i64> = c.lines.iter().map(|(s, l)| (s.clone(), l.len() as i64)).collect();
    assert_eq!(got, want);
    let got = h.query("SELECT count(*) FROM scores").unwrap();
    assert_eq!(ints(&got[0], 0), vec![mem.scores.len() as i64]);
    let got = h.query("SELECT count(*) FROM score_parts WHERE kind = 'domain'").unwrap();
    assert_eq!(ints(&got[0], 0), vec![mem.scores.iter().map(|s| s.domains.len() as i64).sum::<i64>()]);
    // A column no source declares is an error that names it, not a panic.
    let err = h.query("SELECT no_such_column FROM events").err().unwrap().to_string();
    assert!(err.contains("no_such_column"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn backtest_sees_a_threshold_change_and_nothing_when_rules_are_equal() {
    let base = rules();
    let c = city();
    let mut files = RuleFiles::load_dir(&rules_dir()).unwrap();
    let g = files.files.get_mut("grading.toml").unwrap();
    assert!(g.contains("enter = 42.0"));
    *g = g.replacen("enter = 42.0", "enter = 38.0", 1);
    let new = Arc::new(vigil_rules::compile(&files).unwrap());
    let inputs = |r: &RuleSet| archive::event_inputs(&c.archive, r, None).unwrap();
    let b = backtest::run(Arc::clone(&base), inputs(&base)).unwrap();
    let n = backtest::run(Arc::clone(&new), inputs(&new)).unwrap();
    let same = backtest::run(Arc::clone(&base), inputs(&base)).unwrap();

    let none = backtest::compare(&b, &same, None, None);
    assert!(none.changes.is_empty());
    let episodes = backtest::episodes(&b.alerts).len();
    assert_eq!(none.by_level.values().map(|r| r.unchanged).sum::<usize>(), episodes);

    let report = backtest::compare(&b, &n, None, None);
    assert!(!report.changes.is_empty(), "a lower yellow threshold changes something");
    let yellow = &report.by_level["yellow"];
    assert!(yellow.new > yellow.baseline, "{yellow:?}");
    // Every baseline and every new episode is accounted for exactly once.
    let rows: Vec<_> = report.by_level.values().collect();
    let sum = |f: fn(&backtest::LevelRow) -> usize| rows.iter().map(|r| f(r)).sum::<usize>();
    assert_eq!(sum(|r| r.baseline), episodes);
    assert_eq!(sum(|r| r.new), backtest::episodes(&n.alerts).len());
    assert_eq!(sum(|r| r.added) + sum(|r| r.changed) + sum(|r| r.unchanged), sum(|r| r.new));
    assert_eq!(sum(|r| r.removed) + sum(|r| r.changed) + sum(|r| r.unchanged), sum(|r| r.baseline));
    let text = report.to_string();
    assert!(text.contains("yellow") && text.contains("differences"), "{text}");
    // Restricting to a window keeps only episodes opening inside it.
    let from = vigil_model::time::parse_rfc3339("2026-01-20T00:00:00Z").unwrap();
    let late = backtest::compare(&b, &n, Some(from), None);
    assert!(late.changes.len() <= report.changes.len());
    let opened = |e: &backtest::Episode| vigil_model::time::parse_rfc3339(&e.opened).unwrap();
    assert!(late.changes.iter().all(|ch| match ch {
        backtest::Change::Added { new: e } | backtest::Change::Removed { baseline: e } => opened(e) >= from,
        backtest::Change::Changed { baseline, new } => opened(baseline) >= from || opened(new) >= from,
    }));
    // The ground truth scores both rule sets.
    let card = vigil_sim::scorecard(&c.truth.incidents, &n.alerts, &new.regions.specs(), 72);
    assert_eq!(card.incidents, c.truth.incidents.len());
}

#[test]
fn entropy_weights_from_the_archive_make_a_rule_set_that_compiles() {
    let rules = rules();
    let c = city();
    let dir = scratch("weights");
    copy_dir(&c.archive, &dir);
    let inputs = archive::event_inputs(&dir, &rules, None).unwrap();
    let mut p = Pipeline::new(
        Arc::clone(&rules),
        Options {
            scores: ScoreDetail::Full,
            score_levels: vigil_core::ScoreLevels(0b0010),
            score_filter: vigil_core::ScoreFilter::All,
            score_every: None,
        },
    );
    let mut w = ArchiveWriter::create(
        &dir,
        Arc::clone(&rules),
        Tables { events: false, results: true },
        Mode::Replace,
        "replay",
    )
    .unwrap();
    struct Only<'a>(&'a mut ArchiveWriter);
    impl vigil_core::Output for Only<'_> {
        fn score(&mut self, r: vigil_model::record::ScoreRecord) {
            self.0.score(r)
        }
        fn alert(&mut self, r: vigil_model::record::AlertRecord) {
            self.0.alert(r)
        }
    }
    impl vigil_replay::Sink for Only<'_> {
        fn rejected(&mut self, _: vigil_replay::Rejected) {}
        fn late(&mut self, _: vigil_replay::LateRecord) {}
    }
    vigil_replay::replay(&mut p, inputs, &mut Only(&mut w)).unwrap();
    w.finish().unwrap();
    let h = History::open(&dir).unwrap();
    let cal = weights::calibrate(&h, &rules, "district", None, None).unwrap();
    assert!(cal.domains.units > 100, "{}", cal.domains.units);
    for n in std::iter::once(&cal.domains).chain(&cal.categories).chain(&cal.indicators) {
        let s: f64 = n.children.iter().map(|c| c.2).sum();
        assert!((s - 1.0).abs() < 1e-9, "{} sums to {s}", n.node);
        assert!(n.children.iter().all(|c| c.2 >= 0.0));
    }
    assert!(cal.indicators.iter().any(|n| !n.equal_fallback), "indicator scores were archived");
    let toml = cal.to_toml();
    assert!(toml.contains("[indicator_weights]") && toml.contains("jq_incident_count_24h = "), "{toml}");
    let out = scratch("weights-rules");
    let changed = weights::apply(&cal, &rules_dir(), &out).unwrap();
    assert_eq!(changed, 4 + 30 + 60, "every weight line is rewritten");
    let applied = vigil_rules::load(&out).unwrap_or_else(|d| panic!("{d:?}"));
    // Never onto the rule set itself, inside it, or over a directory that holds files.
    let before = std::fs::read_to_string(rules_dir().join("index.toml")).unwrap();
    assert!(weights::apply(&cal, &rules_dir(), &rules_dir()).is_err());
    assert!(weights::apply(&cal, &rules_dir(), &rules_dir().join("weighted")).is_err());
    assert!(!rules_dir().join("weighted").exists());
    assert!(weights::apply(&cal, &rules_dir(), &out).is_err());
    assert_eq!(std::fs::read_to_string(rules_dir().join("index.toml")).unwrap(), before);
    let w0 = &applied.indicators[0];
    let want = cal.indicators.iter().flat_map(|n| &n.children).find(|c| c.0 == w0.id).unwrap().2;
    assert!((w0.weight - want).abs() < 1e-9);
}

/// The engine's way of writing: interleaved arrival order, one set of files per checkpoint
/// interval named by position. Replay puts each source back in event-time order, and a rewind
/// removes exactly the intervals at or after a position, leftover temporary files included,
/// and never another writer's files.
#[test]
fn engine_style_archive_replays_in_event_time_and_rewinds_by_position() {
    use vigil_core::{Archive, Position};
    let rules = rules();
    let c = city();
    let decoder = vigil_rules::decode::Decoder::new(&rules);
    let mut events = Vec::new();
    for (source, lines) in &c.lines {
        let hint = vigil_rules::decode::SourceHint::Fixed(rules.source_index(source).unwrap());
        for l in lines {
            let mut ev = vigil_model::Event::default();
            decoder.decode(hint, l.as_bytes(), &mut ev).unwrap();
            events.push(ev);
        }
    }
    events.sort_by_key(|e| e.ts);
    // Arrival order as partitions interleave it: every block of 300 events backwards.
    for block in events.chunks_mut(300) {
        block.reverse();
    }
    let dir = scratch("engine-style");
    let mut w = ArchiveWriter::create(
        &dir,
        Arc::clone(&rules),
        Tables { events: true, results: true },
        Mode::Append,
        "engine-t",
    )
    .unwrap();
    let at = |k: usize| Position { offsets: (k * 20_000) as u64, evaluated: 0 };
    for (k, chunk) in events.chunks(20_000).enumerate() {
        Archive::begin(&mut w, at(k));
        for e in chunk {
            Archive::event(&mut w, e);
        }
        Archive::commit(&mut w).unwrap();
    }
    let (want, _) = replay(&rules, json_inputs(&rules, &c.lines), ScoreDetail::Summary);
    let (got, summary) = replay(&rules, archive::event_inputs(&dir, &rules, None).unwrap(), ScoreDetail::Summary);
    assert_eq!(summary.late, 0, "event-time order per source: nothing late");
    assert_eq!(json(&got.alerts), json(&want.alerts));
    assert!(json(&got.scores) == json(&want.scores), "score records differ");

    // A crash leaves a temporary file; another writer's files sit next to ours.
    let police = dir.join("events/source=police");
    let date = std::fs::read_dir(&police).unwrap().next().unwrap().unwrap().path();
    std::fs::write(date.join(".part-engine-t-00000000000000099999-0000000000000-00000.parquet.tmp"), b"x").unwrap();
    let other = date.join("part-engine-t-canary-00000000000000000000-0000000000000-00000.parquet");
    std::fs::copy(
        std::fs::read_dir(&date)
            .unwrap()
            .find_map(|e| {
                let p = e.unwrap().path();
                p.extension().is_some_and(|x| x == "parquet").then_some(p)
            })
            .unwrap(),
        &other,
    )
    .unwrap();
    let after_two = w.count_after(at(1)).unwrap();
    assert!(after_two > 0);
    let removed = w.rewind(at(2), &ArchiveLog::default()).unwrap();
    assert_eq!(removed, after_two, "everything from position 2 on, and nothing before");
    assert!(other.exists(), "another writer's file stays");
    assert!(!date.join(".part-engine-t-00000000000000099999-0000000000000-00000.parquet.tmp").exists());
    std::fs::remove_file(&other).unwrap();
    let h = History::open(&dir).unwrap();
    let n = h.query("SELECT count(*) FROM events").unwrap();
    assert_eq!(ints(&n[0], 0), vec![40_000]);
}
