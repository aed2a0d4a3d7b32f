//! A report of the scoring core's speed and memory on the synthetic city, with the baseline
//! measured in the same run. Prints a Markdown table and, with `VIGIL_BENCH_RECORD=1`, appends
//! it to `benches/results/core.md`. Run: `cargo bench -p vigil-benches --bench core_report`.
//!
//! Figures: events/s on one core through decode, through routing (filter + bin update for every
//! indicator of the event's source, for its region and each ancestor), and through the whole
//! core with hourly evaluation of all 60 indicators for every region; the naive hash-map
//! routing of the same events as the baseline (and, for decode, the three-pass reference
//! decoder); bytes of state per (region, indicator) series;
//! peak resident memory.

use std::hint::black_box;
use std::time::Instant;

use vigil_core::{Options, Pipeline, ScoreDetail, VecOutput};
use vigil_model::Event;
use vigil_model::record::Rejection;
use vigil_rules::decode::{DecodeInfo, Decoder, SourceHint};

fn best_of<F: FnMut() -> f64>(runs: usize, mut f: F) -> f64 {
    (0..runs).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let days: u32 = std::env::var("VIGIL_BENCH_DAYS").ok().and_then(|d| d.parse().ok()).unwrap_or(30);
    let rules = vigil_benches::default_rules();
    let mut report = format!(
        "## core benchmark, {}\n\nMachine: {}. Default rules: {} regions ({} scored), {} indicators.\n",
        vigil_model::time::format_utc(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        ),
        vigil_benches::machine(),
        rules.regions.len(),
        vigil_benches::scored_chains(&rules)
            .iter()
            .enumerate()
            .filter(|(r, c)| c.first() == Some(&(*r as u32)))
            .count(),
        rules.indicators.len(),
    );
    // The synthetic city at its own volume, then at ten times the event rate (evaluation work
    // per hour is the same; routing work scales with events).
    for (volume, days) in [(1.0, days), (10.0, (days / 4).max(3))] {
        report.push_str(&run(&rules, days, volume));
    }
    let peak = vigil_benches::peak_rss_kib().unwrap_or(0);
    report.push_str(&format!("\nPeak RSS of the benchmark process: {:.1} MiB.\n", peak as f64 / 1024.0));
    println!("{report}");
    if std::env::var_os("VIGIL_BENCH_RECORD").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/core.md");
        let mut old = std::fs::read_to_string(&path).unwrap_or_default();
        old.push_str(&report);
        old.push('\n');
        std::fs::write(&path, old).expect("write results");
    }
}

/// The best of three timings of decoding every line with `decode` (a [`Decoder`] method).
fn decode_secs(
    rules: &vigil_rules::RuleSet,
    lines: &[(u8, String)],
    decode: impl Fn(&Decoder<'_>, SourceHint, &[u8], &mut Event) -> Result<DecodeInfo, Rejection>,
) -> f64 {
    best_of(3, || {
        let decoder = Decoder::new(rules);
        let mut ev = Event::default();
        let t = Instant::now();
        for (s, l) in lines {
            black_box(decode(&decoder, SourceHint::Fixed(*s), l.as_bytes(), &mut ev).ok());
        }
        t.elapsed().as_secs_f64()
    })
}

fn run(rules: &std::sync::Arc<vigil_rules::RuleSet>, days: u32, volume: f64) -> String {
    let lines = vigil_benches::city_lines(rules, days, 7, volume);
    let events = vigil_benches::decode_all(rules, &lines);
    let chains = vigil_benches::scored_chains(rules);
    let n = events.len() as f64;
    let opts = Options {
        scores: ScoreDetail::None,
        score_levels: vigil_core::ScoreLevels::NONE,
        score_filter: vigil_core::ScoreFilter::All,
        score_every: None,
    };

    let decode_s = decode_secs(rules, &lines, |d, h, b, e| d.decode(h, b, e));
    // The decoder as it was before it read each message once: the envelope, a count of its
    // undeclared fields, then `attrs`, three passes (kept as the reference the one-pass
    // decoder is tested against).
    let decode_ref_s = decode_secs(rules, &lines, |d, h, b, e| d.decode_reference(h, b, e));
    let ingest_s = best_of(3, || {
        let mut p = Pipeline::new(rules.clone(), opts);
        let t = Instant::now();
        for ev in &events {
            black_box(p.ingest(ev));
        }
        t.elapsed().as_secs_f64()
    });
    let mut alerts = 0;
    let mut evaluations = 0;
    let full_s = best_of(2, || {
        let mut p = Pipeline::new(rules.clone(), opts);
        let mut out = VecOutput::default();
        let t = Instant::now();
        for ev in &events {
            p.advance(ev.ts, &mut out);
            p.ingest(ev);
        }
        let s = t.elapsed().as_secs_f64();
        alerts = out.alerts.len();
        evaluations = p.counters().evaluations;
        s
    });
    let baseline_s = best_of(3, || {
        let t = Instant::now();
        let n = vigil_benches::hashmap_routing(rules, &chains, &events);
        black_box(n);
        t.elapsed().as_secs_f64()
    });
    let p = Pipeline::new(rules.clone(), opts);
    let (avg_bytes, max_bytes) = p.state_bytes_per_series();
    let eval_ns = (full_s - ingest_s).max(0.0) * 1e9 / evaluations.max(1) as f64;
    format!(
        "\n### {days} days at {volume}x the default event rate: {} events\n\n\
| stage | time (s) | events/s (one core) |\n|---|---|---|\n\
| decode (JSON -> Event) | {decode_s:.3} | {:.0} |\n\
| baseline: decode in three passes (`decode_reference`) | {decode_ref_s:.3} | {:.0} |\n\
| routing: filter + bin update (every indicator of the source, region + scored ancestors) | {ingest_s:.3} | {:.0} |\n\
| whole core: routing + hourly evaluation, scoring, roll-up, grading | {full_s:.3} | {:.0} |\n\
| baseline: the same routing into a HashMap<(indicator, region, bin), count> | {baseline_s:.3} | {:.0} |\n\n\
Decoding is {:.2}x the three-pass decoder's speed; routing is {:.2}x the baseline's. Whole core: {evaluations} indicator evaluations ({eval_ns:.0} ns each, \
roll-up and grading included), {alerts} alert events. State per (scored region, indicator) series: {avg_bytes:.0} \
bytes on average, {max_bytes} at most.\n",
        events.len(),
        n / decode_s,
        n / decode_ref_s,
        n / ingest_s,
        n / full_s,
        n / baseline_s,
        decode_ref_s / decode_s,
        baseline_s / ingest_s,
    )
}
