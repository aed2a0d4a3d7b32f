//! A report of the Kafka engine's speed and memory, with a baseline measured in the same run:
//! the synthetic city produced into the embedded cluster's event topics (4 partitions each,
//! keyed by region, in event-time order, the producer never more than `WINDOW` messages ahead
//! of the reader since the embedded cluster keeps a bounded log), read once by a bare consumer
//! that only touches each payload (the baseline: what reading the topics costs) and once by
//! the whole engine (decode, watermarks, alignment, scoring, alerts and scores produced back).
//! Each mode runs in a child process of its own, so peak memory is per mode.
//!
//! Prints a Markdown table and, with `VIGIL_BENCH_RECORD=1`, appends it to
//! `benches/results/engine.md`. Run: `cargo bench -p vigil-benches --bench engine_report`.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vigil_core::{Options, ScoreDetail};
use vigil_engine::{Engine, EngineConfig, Metrics, OutputTopics};
use vigil_kafka::{Embedded, KafkaSettings, Message};

/// How far the producer may run ahead of the reader.
const WINDOW: u64 = 50_000;

#[derive(Debug, Serialize, Deserialize)]
struct Result {
    mode: String,
    events: u64,
    secs: f64,
    /// From the start to the first event read (bare) or processed (engine): the consumer's
    /// start-up and the producer's first batch, in both modes.
    first_secs: f64,
    cpu_secs: f64,
    peak_kib: u64,
    evaluations: u64,
    eval_p50_ms: f64,
    eval_p99_ms: f64,
    alerts: u64,
}

/// A quantile from cumulative histogram buckets, interpolated inside the bucket as Prometheus'
/// `histogram_quantile` does.
fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return prev.0;
            }
            let within = if count > prev.1 { (rank - prev.1) / (count - prev.1) } else { 0.0 };
            return prev.0 + (le - prev.0) * within;
        }
        prev = (le, count);
    }
    prev.0
}

fn child(mode: &str, days: u32) -> Result {
    let rules = vigil_benches::default_rules();
    let lines = vigil_benches::city_lines(&rules, days, 7, 1.0);
    let total = lines.len() as u64;
    let cluster = Embedded::start(1).unwrap();
    let settings = KafkaSettings::new(cluster.bootstrap_servers());
    let outputs = OutputTopics::default();
    for s in &rules.sources {
        cluster.create_topic(&s.topic, 4).unwrap();
    }
    for t in [&outputs.scores, &outputs.alerts, &outputs.dlq, &outputs.late] {
        cluster.create_topic(t, 4).unwrap();
    }
    let topics: Vec<String> = rules.sources.iter().map(|s| s.topic.clone()).collect();
    let progress = Arc::new(AtomicU64::new(0));
    // The events' producer is idempotent (as vigil's own producers are), and such a producer
    // sends nothing before the brokers give it a producer id: about half a second on the
    // embedded cluster, which both modes used to wait through on the clock. It gets its id
    // first, with a record of its own, before the clock starts.
    let p = vigil_kafka::producer(&settings).unwrap();
    cluster.create_topic("bench.warm-up", 1).unwrap();
    vigil_kafka::send(&p, "bench.warm-up", "", b"warm-up", None).unwrap();
    vigil_kafka::flush(&p, Duration::from_secs(60)).unwrap();
    let cpu0 = vigil_benches::cpu_secs();
    let started = Instant::now();
    let producer = {
        let (progress, topics) = (Arc::clone(&progress), topics.clone());
        std::thread::spawn(move || {
            for (sent, (source, line)) in lines.iter().enumerate() {
                while sent as u64 > progress.load(Ordering::Relaxed) + WINDOW {
                    vigil_kafka::poll(&p);
                    std::thread::sleep(Duration::from_micros(200));
                }
                // The key is the region code, as upstream systems key events.
                let key = line.split("\"region\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
                vigil_kafka::send(&p, &topics[*source as usize], key, line.as_bytes(), None).unwrap();
            }
            vigil_kafka::flush(&p, Duration::from_secs(60)).unwrap();
        })
    };
    let metrics = Metrics::default();
    let mut alerts = 0;
    let mut first_secs = 0.0;
    if mode == "bare" {
        let consumer =
            vigil_kafka::assigned_consumer(&settings, "bare", &topics, &Default::default()).unwrap().consumer;
        let (mut n, mut bytes) = (0u64, 0usize);
        while n < total {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                bytes += m.payload().map_or(0, |p| p.len());
                if n == 0 {
                    first_secs = started.elapsed().as_secs_f64();
                }
                n += 1;
                progress.store(n, Ordering::Relaxed);
            }
        }
        std::hint::black_box(bytes);
    } else {
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = EngineConfig {
            outputs,
            idle_timeout: Duration::from_secs(2),
            options: Options {
                scores: ScoreDetail::Summary,
                score_levels: vigil_core::ScoreLevels(0b0011),
                score_filter: vigil_core::ScoreFilter::All,
                score_every: None,
            },
            progress: Some(Arc::clone(&progress)),
            ..EngineConfig::new(settings.clone())
        };
        let mut engine = Engine::new(Arc::clone(&rules), cfg, metrics.clone()).unwrap();
        let stopper = {
            let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
            std::thread::spawn(move || {
                let mut first = None;
                while progress.load(Ordering::Relaxed) < total {
                    if first.is_none() && progress.load(Ordering::Relaxed) > 0 {
                        first = Some(started.elapsed().as_secs_f64());
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                stop.store(true, Ordering::Relaxed);
                first.unwrap_or(0.0)
            })
        };
        let summary = engine.run(&stop, &mut |_| {}).unwrap();
        first_secs = stopper.join().unwrap();
        alerts = summary.alerts;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = vigil_benches::cpu_secs() - cpu0;
    producer.join().unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("vigil_evaluation_duration_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, count) = l.split_once("\"} ")?;
            Some((if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? }, count.parse().ok()?))
        })
        .collect();
    Result {
        mode: mode.into(),
        events: total,
        secs,
        first_secs,
        cpu_secs: cpu,
        peak_kib: vigil_benches::peak_rss_kib().unwrap_or(0),
        evaluations: buckets.last().map_or(0, |b| b.1 as u64),
        eval_p50_ms: quantile(&buckets, 0.5) * 1e3,
        eval_p99_ms: quantile(&buckets, 0.99) * 1e3,
        alerts,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let days: u32 = std::env::var("VIGIL_BENCH_DAYS").ok().and_then(|d| d.parse().ok()).unwrap_or(35);
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let r = child(&args[i + 1], days);
        println!("{}", serde_json::to_string(&r).unwrap());
        return;
    }
    let run = |mode: &str| -> Result {
        let out = Command::new(&args[0]).args(["--child", mode]).output().expect("run the benchmark child");
        assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(text.lines().last().unwrap_or("")).expect("child result")
    };
    let bare = run("bare");
    let engine = run("engine");
    let rate = |r: &Result| r.events as f64 / r.secs;
    // The rate once events flow: the fixed start-up (the consumer connecting, the producer's
    // first batch; about the same in both modes) left out.
    let flowing = |r: &Result| r.events as f64 / (r.secs - r.first_secs).max(1e-9);
    let per_cpu = |r: &Result| r.events as f64 / r.cpu_secs;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let row = |name: &str, r: &Result| {
        format!(
            "| {name} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.1} |\n",
            r.secs,
            rate(r),
            r.first_secs,
            flowing(r),
            r.cpu_secs,
            per_cpu(r),
            r.peak_kib as f64 / 1024.0
        )
    };
    let mut report = format!(
        "## engine benchmark, {}\n\nMachine: {}. {days} days of the synthetic city at the default rate: {} events \
         on the embedded cluster (4 partitions per topic), produced concurrently by a second thread.\n\n\
         | mode | wall (s) | events/s | first event after (s) | events/s after it | CPU (s, all threads) | events per CPU-second | peak RSS (MiB) |\n\
         |---|---|---|---|---|---|---|---|\n",
        vigil_model::time::format_utc(now),
        vigil_benches::machine(),
        engine.events,
    );
    report.push_str(&row("baseline: bare consumer (poll + touch payload)", &bare));
    report.push_str(&row("engine: decode, watermarks, scoring, outputs produced", &engine));
    // What one evaluation covers, as the default rules say.
    let rules = vigil_benches::default_rules();
    let count =
        |at: fn(&vigil_rules::RuleSet, usize) -> bool| (0..rules.regions.len()).filter(|&i| at(&rules, i)).count();
    report.push_str(&format!(
        "\nThe engine runs at {:.2}x the bare consumer's rate ({:.2}x once events flow, {:.2}x its events per \
         CPU-second). \
         {} evaluations (one per hour boundary: {} indicators x {} scored regions, {} of them alerting, \
         roll-up, grading, score records for the city and districts): p50 {:.2} ms, p99 {:.2} ms (from the \
         `vigil_evaluation_duration_seconds` histogram, interpolated within buckets). {} alert events.\n",
        rate(&engine) / rate(&bare),
        flowing(&engine) / flowing(&bare),
        per_cpu(&engine) / per_cpu(&bare),
        engine.evaluations,
        rules.indicators.len(),
        count(vigil_rules::RuleSet::is_scored),
        count(vigil_rules::RuleSet::raises_alerts),
        engine.eval_p50_ms,
        engine.eval_p99_ms,
        engine.alerts
    ));
    println!("{report}");
    if std::env::var_os("VIGIL_BENCH_RECORD").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/engine.md");
        let mut old = std::fs::read_to_string(&path).unwrap_or_default();
        old.push_str(&report);
        old.push('\n');
        std::fs::write(&path, old).expect("write results");
    }
}
