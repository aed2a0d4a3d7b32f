//! A report of backtest speed over a Parquet archive, with DataFusion as the baseline measured in
//! the same run: the synthetic city (505 regions) is archived once, then, each in a child
//! process of its own so that peak memory is per mode,
//! - `datafusion`: DataFusion alone computes the windowed counts of every `count` indicator of
//!   the default rules (its filter, its window and hop, every region and its scored ancestors)
//!   as one SQL query over the same archive;
//! - `replay`: vigil replays the archive under one rule set (Parquet decode, all 60 indicators,
//!   scoring, roll-up, grading, alerts);
//! - `backtest`: `vigil backtest`'s work: the archive under two rule sets (one threshold
//!   changed) and the comparison of their alert episodes.
//!
//! Prints a Markdown table and, with `VIGIL_BENCH_RECORD=1`, appends it to
//! `benches/results/history.md`. Run: `cargo bench -p vigil-benches --bench history_report`.
//! `VIGIL_BENCH_DAYS` sets the days of history (default 60).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use vigil_rules::{Measure, RuleFiles, RuleSet};
use vigil_sql::archive::{self, ArchiveWriter, Mode, Tables};
use vigil_sql::backtest;
use vigil_sql::query::History;

#[derive(Debug, Serialize, Deserialize)]
struct Outcome {
    mode: String,
    events: u64,
    secs: f64,
    cpu_secs: f64,
    peak_kib: u64,
    /// What the mode produced: result rows, alerts, or changed episodes.
    output: u64,
}

fn archive_dir(days: u32) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("history-bench-{days}d"))
}

/// Writes the city's events into an archive (once per number of days).
fn prepare(rules: &Arc<RuleSet>, days: u32) -> u64 {
    let dir = archive_dir(days);
    let lines = vigil_benches::city_lines(rules, days, 7, 1.0);
    let events = vigil_benches::decode_all(rules, &lines);
    let mut w =
        ArchiveWriter::create(&dir, Arc::clone(rules), Tables { events: true, results: false }, Mode::Replace, "gen")
            .expect("open the archive");
    for e in &events {
        w.event(e);
    }
    w.finish().expect("write the archive");
    events.len() as u64
}

/// The rule set with the yellow entry threshold lowered, as in the README's tour.
fn edited_rules() -> Arc<RuleSet> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let mut files = RuleFiles::load_dir(&dir).expect("read rules");
    let g = files.files.get_mut("grading.toml").expect("grading.toml");
    *g = g.replacen("enter = 42.0", "enter = 38.0", 1);
    Arc::new(vigil_rules::compile(&files).expect("edited rules compile"))
}

fn interval(ms: i64) -> String {
    format!("INTERVAL '{} seconds'", ms / 1000)
}

/// The windowed counts of every count indicator as one SQL statement: hop-wide bins per region
/// and scored ancestor, summed over the window with a RANGE frame. Returns the statement and the
/// number of indicators it covers.
fn windowed_counts_sql(rules: &RuleSet) -> (String, usize) {
    // The synthetic city's zone is a fixed offset, so local bins are UTC bins shifted by it.
    assert!(rules.zone.is_fixed(), "the SQL baseline bins by a fixed offset");
    let origin = vigil_model::time::format_utc(-rules.zone.offset_at(0));
    let mut parts = Vec::new();
    for ind in rules.indicators.iter().filter(|i| matches!(i.measure, Measure::Count) && i.compare.is_none()) {
        let source = &rules.sources[ind.source as usize].id;
        let filter = if ind.filter_sql.is_empty() { "TRUE".to_string() } else { ind.filter_sql.clone() };
        parts.push(format!(
            "SELECT '{id}' AS indicator, region, bin, sum(n) OVER (PARTITION BY region ORDER BY bin \
             RANGE BETWEEN {frame} PRECEDING AND CURRENT ROW) AS value FROM ( \
               SELECT c.ancestor AS region, date_bin({hop}, e.ts, TIMESTAMP '{origin}') AS bin, count(*) AS n \
               FROM events_{source} e JOIN chains c ON e.region = c.region WHERE {filter} GROUP BY 1, 2)",
            id = ind.id,
            frame = interval(ind.window.ms() - ind.hop.ms()),
            hop = interval(ind.hop.ms()),
        ));
    }
    let n = parts.len();
    (format!("SELECT count(*) AS windows, sum(value) AS total FROM ({})", parts.join(" UNION ALL ")), n)
}

/// Region -> each scored ancestor (itself included), as a table for the join.
fn chains(rules: &RuleSet) -> RecordBatch {
    let (mut from, mut to) = (Vec::new(), Vec::new());
    for (r, chain) in rules.regions.chains.iter().enumerate() {
        for &a in chain {
            if rules.is_scored(a as usize) {
                from.push(rules.regions.codes[r].clone());
                to.push(rules.regions.codes[a as usize].clone());
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("ancestor", DataType::Utf8, false),
    ]));
    let cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(from)), Arc::new(StringArray::from(to))];
    RecordBatch::try_new(schema, cols).expect("chains batch")
}

fn child(mode: &str, days: u32) -> Outcome {
    let rules = vigil_benches::default_rules();
    let dir = archive_dir(days);
    let (cpu0, t0) = (vigil_benches::cpu_secs(), Instant::now());
    let (events, output) = match mode {
        "datafusion" => {
            let h = History::open(&dir).expect("open the archive");
            h.register_batches("chains", vec![chains(&rules)]).expect("register chains");
            let (sql, _) = windowed_counts_sql(&rules);
            let out = h.query(&sql).expect("windowed counts");
            let windows =
                out[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().map_or(0, |a| a.value(0));
            let events = h.query("SELECT count(*) FROM events").expect("count");
            let events =
                events[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().map_or(0, |a| a.value(0));
            (events as u64, windows as u64)
        }
        "replay" => {
            let run = backtest::run(Arc::clone(&rules), archive::event_inputs(&dir, &rules, None).expect("inputs"))
                .expect("replay");
            (run.summary.accepted + run.summary.accepted_late, run.alerts.len() as u64)
        }
        "backtest" => {
            let new = edited_rules();
            let b = backtest::run(Arc::clone(&rules), archive::event_inputs(&dir, &rules, None).expect("inputs"))
                .expect("baseline");
            let n =
                backtest::run(Arc::clone(&new), archive::event_inputs(&dir, &new, None).expect("inputs")).expect("new");
            let report = backtest::compare(&b, &n, None, None);
            // Both rule sets read every event.
            (2 * (b.summary.accepted + b.summary.accepted_late), report.changes.len() as u64)
        }
        other => panic!("unknown mode {other}"),
    };
    Outcome {
        mode: mode.into(),
        events,
        secs: t0.elapsed().as_secs_f64(),
        cpu_secs: vigil_benches::cpu_secs() - cpu0,
        peak_kib: vigil_benches::peak_rss_kib().unwrap_or(0),
        output,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let days: u32 = std::env::var("VIGIL_BENCH_DAYS").ok().and_then(|d| d.parse().ok()).unwrap_or(60);
    if let Some(i) = args.iter().position(|a| a == "--child") {
        println!("{}", serde_json::to_string(&child(&args[i + 1], days)).unwrap());
        return;
    }
    let rules = vigil_benches::default_rules();
    let t = Instant::now();
    let archived = prepare(&rules, days);
    let prepare_secs = t.elapsed().as_secs_f64();
    let files = archive::table_files(&archive_dir(days).join("events/source=police")).map_or(0, |f| f.len());
    let bytes: u64 = walk_bytes(&archive_dir(days));
    let run = |mode: &str| -> Outcome {
        let out = Command::new(&args[0]).args(["--child", mode]).output().expect("run the benchmark child");
        assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(text.lines().last().unwrap_or("")).expect("child result")
    };
    let results: BTreeMap<&str, Outcome> =
        ["datafusion", "replay", "backtest"].into_iter().map(|m| (m, run(m))).collect();
    let (_, count_indicators) = windowed_counts_sql(&rules);
    let rate = |r: &Outcome| r.events as f64 / r.secs;
    let per_cpu = |r: &Outcome| r.events as f64 / r.cpu_secs.max(1e-9);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let row = |name: &str, r: &Outcome| {
        format!(
            "| {name} | {:.2} | {:.0} | {:.2} | {:.0} | {:.1} | {} |\n",
            r.secs,
            rate(r),
            r.cpu_secs,
            per_cpu(r),
            r.peak_kib as f64 / 1024.0,
            r.output
        )
    };
    let df = &results["datafusion"];
    let rp = &results["replay"];
    let bt = &results["backtest"];
    let mut report = format!(
        "## history benchmark, {}\n\nMachine: {}. {days} days of the synthetic city (505 regions): {archived} events \
         archived as Parquet ({:.1} MiB, {files} police files, written in {prepare_secs:.1} s).\n\n\
         | mode | wall (s) | events/s | CPU (s) | events per CPU-second | peak RSS (MiB) | output |\n\
         |---|---|---|---|---|---|---|\n",
        vigil_model::time::format_utc(now),
        vigil_benches::machine(),
        bytes as f64 / (1024.0 * 1024.0),
    );
    report.push_str(&row(
        &format!("baseline: DataFusion, windowed counts of the {count_indicators} count indicators (one SQL query)"),
        df,
    ));
    report.push_str(&row("vigil replay of the archive, one rule set (all 60 indicators, scoring, alerts)", rp));
    report.push_str(&row("vigil backtest: two rule sets and the episode comparison", bt));
    report.push_str(&format!(
        "\nOutput: windows with events (DataFusion), alert records (replay), changed episodes (backtest). \
         The replay takes {:.2}x DataFusion's wall time for its windowed counts alone (backtest: {:.2}x, for twice \
         the events); per CPU-second vigil processes {:.2}x DataFusion's events (DataFusion uses every core; \
         vigil's replay is one thread). DataFusion's query counts only windows that have events; vigil evaluates \
         every scored region every hour and scores all 60 indicators.\n",
        rp.secs / df.secs,
        bt.secs / df.secs,
        per_cpu(rp) / per_cpu(df),
    ));
    println!("{report}");
    if std::env::var_os("VIGIL_BENCH_RECORD").is_some() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/history.md");
        let mut old = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            "# History benchmark results\n\n`cargo bench -p vigil-benches --bench history_report` (append with \
             `VIGIL_BENCH_RECORD=1`). Each mode runs in a child process of its own over the same Parquet archive.\n\n"
                .to_string()
        });
        old.push_str(&report);
        old.push('\n');
        std::fs::write(&path, old).expect("write results");
    }
}

fn walk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.filter_map(|e| e.ok())
            .map(|e| {
                let p = e.path();
                if p.is_dir() { walk_bytes(&p) } else { e.metadata().map_or(0, |m| m.len()) }
            })
            .sum()
    })
}
