//! The indicator filter text must mean the same to DataFusion as to the streaming predicate.
//! Events with random attributes (some absent) are written through the archive writer, read by
//! DataFusion from the Parquet files, and every filter, random or shipped with the default rules,
//! must select exactly the events the compiled predicate passes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use arrow::array::{Array, TimestampMillisecondArray};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use vigil_model::Event;
use vigil_model::time::HOUR;
use vigil_rules::filter::{EvalCtx, Taxonomies, compile_filter};
use vigil_rules::{AttrType, RuleSet};
use vigil_sql::archive::{ArchiveWriter, Mode, Tables};
use vigil_sql::query::History;

fn rules() -> Arc<RuleSet> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    Arc::new(vigil_rules::load(&dir).expect("default rules compile"))
}

fn scratch() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "vigil-filter-sql-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A random event of `source`: every attribute absent one time in five, values anywhere in
/// the declared domain, times spread over every hour and weekday. `ts` is unique per event and
/// identifies it in query results.
fn event_strategy(rules: &RuleSet, source: u8, i: usize) -> impl Strategy<Value = Event> + use<> {
    let s = &rules.sources[source as usize];
    let regions = rules.regions.len() as u32;
    let attrs: Vec<BoxedStrategy<Option<i64>>> = s
        .attrs
        .iter()
        .map(|a| {
            let v: BoxedStrategy<i64> = match &a.ty {
                AttrType::Enum(vals) => (0..vals.len() as i64).boxed(),
                AttrType::Int { min, max } => (*min..=*max).boxed(),
                AttrType::Float { min, max, scale, .. } => {
                    ((min * *scale as f64).round() as i64..=(max * *scale as f64).round() as i64).boxed()
                }
                AttrType::Bool => (0..=1i64).boxed(),
            };
            prop_oneof![1 => Just(None), 4 => v.prop_map(Some)].boxed()
        })
        .collect();
    (0..regions, 0..HOUR, attrs).prop_map(move |(region, jitter, attrs)| {
        let mut ev = Event { source, region, ts: 1_767_225_600_000 + i as i64 * 5 * HOUR + jitter, ..Event::default() };
        for (k, v) in attrs.into_iter().enumerate() {
            if let Some(v) = v {
                ev.set(k, v);
            }
        }
        ev
    })
}

/// A literal for `attr` as filter text: declared values, numbers in and around the range
/// (with more decimals than declared, sometimes), booleans.
fn literal(ty: &AttrType) -> BoxedStrategy<String> {
    match ty {
        AttrType::Enum(vals) => proptest::sample::select(vals.clone()).prop_map(|v| format!("'{v}'")).boxed(),
        AttrType::Int { min, max } => (*min - 2..=*max + 2).prop_map(|v| v.to_string()).boxed(),
        AttrType::Float { min, max, .. } => {
            let (lo, hi) = (*min, *max);
            (0.0f64..1.0, 0u32..4)
                .prop_map(move |(u, d)| {
                    let x = lo - 1.0 + u * (hi - lo + 2.0);
                    format!("{x:.*}", d as usize)
                })
                .boxed()
        }
        AttrType::Bool => prop_oneof![Just("TRUE".to_string()), Just("FALSE".to_string())].boxed(),
    }
}

/// One condition over a single column.
fn atom(rules: &RuleSet, source: u8) -> BoxedStrategy<String> {
    let s = &rules.sources[source as usize];
    let mut options: Vec<BoxedStrategy<String>> = Vec::new();
    for a in &s.attrs {
        let name = a.name.clone();
        let lit = literal(&a.ty);
        let ops: Vec<&'static str> = match a.ty {
            AttrType::Enum(_) | AttrType::Bool => vec!["=", "<>"],
            _ => vec!["=", "<>", "<", "<=", ">", ">="],
        };
        let n = name.clone();
        options.push(
            (proptest::sample::select(ops), lit.clone(), any::<bool>())
                .prop_map(move |(op, l, flip)| if flip { format!("{l} {op} {n}") } else { format!("{n} {op} {l}") })
                .boxed(),
        );
        let n = name.clone();
        options.push(
            (proptest::collection::vec(lit.clone(), 1..4), any::<bool>())
                .prop_map(move |(ls, neg)| format!("{n} {}IN ({})", if neg { "NOT " } else { "" }, ls.join(", ")))
                .boxed(),
        );
        let n = name.clone();
        options
            .push(any::<bool>().prop_map(move |neg| format!("{n} IS {}NULL", if neg { "NOT " } else { "" })).boxed());
        if matches!(a.ty, AttrType::Int { .. } | AttrType::Float { .. }) {
            let n = name.clone();
            options.push(
                (lit.clone(), lit, any::<bool>())
                    .prop_map(move |(lo, hi, neg)| {
                        format!("{n} {}BETWEEN {lo} AND {hi}", if neg { "NOT " } else { "" })
                    })
                    .boxed(),
            );
        }
        if matches!(a.ty, AttrType::Bool) {
            options.push(Just(name).boxed());
        }
    }
    options.push(
        (proptest::sample::select(vec!["=", "<>", "<", "<=", ">", ">="]), 0i64..24)
            .prop_map(|(op, h)| format!("hour {op} {h}"))
            .boxed(),
    );
    options.push((1i64..=7, 1i64..=7).prop_map(|(a, b)| format!("dow BETWEEN {a} AND {b}")).boxed());
    proptest::strategy::Union::new(options).boxed()
}

/// Conditions combined with AND, OR and NOT up to three levels deep.
fn filter(rules: &RuleSet, source: u8) -> BoxedStrategy<String> {
    atom(rules, source)
        .prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
                inner.prop_map(|a| format!("NOT ({a})")),
            ]
        })
        .boxed()
}

/// Writes `events` into a fresh archive and opens it for SQL.
fn archive(rules: &Arc<RuleSet>, events: &[Event]) -> (History, PathBuf) {
    let dir = scratch();
    let mut w =
        ArchiveWriter::create(&dir, Arc::clone(rules), Tables { events: true, results: false }, Mode::Replace, "t")
            .unwrap();
    for e in events {
        w.event(e);
    }
    w.finish().unwrap();
    (History::open(&dir).unwrap(), dir)
}

fn sql_selects(h: &History, source: &str, where_: &str) -> BTreeSet<i64> {
    let q = format!("SELECT ts FROM events_{source} WHERE {where_}");
    let mut out = BTreeSet::new();
    for b in h.query(&q).unwrap_or_else(|e| panic!("DataFusion refused `{q}`: {e}")) {
        let c = b.column(0).as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
        out.extend((0..c.len()).map(|i| c.value(i)));
    }
    out
}

fn stream_selects(rules: &RuleSet, pred: &vigil_rules::filter::Pred, events: &[Event]) -> BTreeSet<i64> {
    events.iter().filter(|e| pred.matches(&EvalCtx::new(e, &rules.zone))).map(|e| e.ts).collect()
}

#[test]
fn random_filters_agree_with_datafusion() {
    let rules = rules();
    let mut runner = TestRunner::new(Config { cases: 12, failure_persistence: None, ..Config::default() });
    for source in 0..rules.sources.len() as u8 {
        let events = (0..150).map(|i| event_strategy(&rules, source, i)).collect::<Vec<_>>();
        let strategy = (events, proptest::collection::vec(filter(&rules, source), 10));
        let id = rules.sources[source as usize].id.clone();
        let r = Arc::clone(&rules);
        runner
            .run(&strategy, |(events, filters)| {
                let (h, dir) = archive(&r, &events);
                let mut compiled = 0;
                for text in &filters {
                    // Random text may still be refused (say, a BETWEEN of an enum); what compiles
                    // must agree.
                    let Ok(f) = compile_filter(text, &r.sources[source as usize], &Taxonomies::new()) else { continue };
                    compiled += 1;
                    let want = stream_selects(&r, &f.pred, &events);
                    let got = sql_selects(&h, &id, &f.sql);
                    prop_assert_eq!(&got, &want, "filter `{}` (SQL `{}`) on source {}", text, f.sql, id);
                }
                let _ = std::fs::remove_dir_all(dir);
                prop_assert!(compiled > 0, "no generated filter compiled");
                Ok(())
            })
            .unwrap();
    }
}

/// Every filter of the shipped rules, with its taxonomies expanded, selects the same events in
/// DataFusion as in the stream.
#[test]
fn shipped_indicator_filters_agree_with_datafusion() {
    let rules = rules();
    let mut runner = TestRunner::new(Config { cases: 4, failure_persistence: None, ..Config::default() });
    for source in 0..rules.sources.len() as u8 {
        let events = (0..400).map(|i| event_strategy(&rules, source, i)).collect::<Vec<_>>();
        let r = Arc::clone(&rules);
        runner
            .run(&events, |events| {
                let (h, dir) = archive(&r, &events);
                let id = &r.sources[source as usize].id;
                for ind in r.indicators.iter().filter(|i| i.source == source && !i.filter_sql.is_empty()) {
                    let want = stream_selects(&r, &ind.filter, &events);
                    let got = sql_selects(&h, id, &ind.filter_sql);
                    prop_assert_eq!(&got, &want, "indicator {} filter `{}`", ind.id, ind.filter_sql);
                }
                let _ = std::fs::remove_dir_all(dir);
                Ok(())
            })
            .unwrap();
    }
}

/// Found by the random test: DataFusion's expression simplifier turned
/// `x NOT IN (a) OR x NOT IN (b)` (disjoint lists) into TRUE, passing rows where `x` is NULL.
/// vigil's sessions run without that rule; this filter must agree on every event.
#[test]
fn regression_not_in_or_not_in_on_an_absent_value() {
    let rules = rules();
    let text = "((priority IS NOT NULL) AND ((response_minutes NOT IN (903, 1181.852, 480.359)) \
                OR (response_minutes NOT IN (817.663)))) AND ((hour <= 12) OR (4 = priority))";
    let f = compile_filter(text, &rules.sources[0], &Taxonomies::new()).unwrap();
    let mut runner = TestRunner::new(Config { cases: 4, failure_persistence: None, ..Config::default() });
    let events = (0..200).map(|i| event_strategy(&rules, 0, i)).collect::<Vec<_>>();
    runner
        .run(&events, |events| {
            assert!(events.iter().any(|e| e.get(2).is_none()), "some events lack response_minutes");
            let (h, dir) = archive(&rules, &events);
            let want = stream_selects(&rules, &f.pred, &events);
            let got = sql_selects(&h, "police", &f.sql);
            let _ = std::fs::remove_dir_all(dir);
            prop_assert_eq!(got, want);
            Ok(())
        })
        .unwrap();
}
