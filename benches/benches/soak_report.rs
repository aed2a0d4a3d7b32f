//! A soak test of the Kafka engine: the synthetic city is generated and produced into the
//! embedded cluster at a sustained rate for `VIGIL_SOAK_SECS` seconds (default 600) while the
//! engine consumes it, and the process's resident memory is sampled every 30 s. After the first
//! third of the run, every region of two districts stops sending events: their state must not
//! grow either (vigil's state per region and indicator is fixed-size rings, so memory should be
//! flat once the longest baselines have filled).
//!
//! The embedded cluster runs in a child process (this binary again, with `VIGIL_SOAK_BROKER`), so
//! that the resident memory sampled for the engine's process does not include the broker's log;
//! the broker's is sampled beside it. The engine checkpoints every 10 s into a temporary
//! directory, and the checkpoint's size (the serialised pipeline state) is sampled too: the
//! state itself, apart from allocator and buffer effects.
//!
//! Prints a Markdown report and, with `VIGIL_BENCH_RECORD=1`, appends it to
//! `benches/results/soak.md`. Run: `cargo bench -p vigil-benches --bench soak_report`.
//! `VIGIL_SOAK_RATE` sets the produced events per second (default 3000).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vigil_core::{Options, ScoreDetail};
use vigil_engine::{Engine, EngineConfig, Metrics, OutputTopics};
use vigil_kafka::{Embedded, KafkaSettings};
use vigil_sim::{EventSink, GenConfig, IncidentPlan};

/// How far the producer may run ahead of the engine (the embedded cluster keeps a bounded log).
const WINDOW: u64 = 50_000;

fn rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Produces generated lines at a fixed rate until the deadline, never more than `WINDOW` ahead
/// of the engine; drops the events of the silenced districts once `silence_after` has passed.
struct RateSink {
    producer: vigil_kafka::OutputProducer,
    topics: Vec<(String, String)>,
    progress: Arc<AtomicU64>,
    sent: u64,
    dropped: u64,
    rate: f64,
    started: Instant,
    deadline: Instant,
    silence_after: Instant,
    silenced: Vec<String>,
}

impl EventSink for RateSink {
    fn emit(&mut self, source: &str, line: &str) -> std::io::Result<()> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(std::io::Error::other("deadline"));
        }
        let key = line.split("\"region\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
        if now >= self.silence_after && self.silenced.iter().any(|d| key.starts_with(d.as_str())) {
            self.dropped += 1;
            return Ok(());
        }
        // Pace: the n-th event goes out no earlier than n / rate seconds after the start.
        let due = self.started + Duration::from_secs_f64(self.sent as f64 / self.rate);
        while Instant::now() < due || self.sent > self.progress.load(Ordering::Relaxed) + WINDOW {
            vigil_kafka::poll(&self.producer);
            std::thread::sleep(Duration::from_micros(200));
        }
        let topic = &self.topics.iter().find(|(s, _)| s == source).expect("known source").1;
        vigil_kafka::send(&self.producer, topic, key, line.as_bytes(), None).map_err(std::io::Error::other)?;
        self.sent += 1;
        Ok(())
    }
}

/// One sample of the run.
#[derive(Clone, Copy)]
struct Sample {
    t: f64,
    consumed: u64,
    rss: f64,
    broker_rss: f64,
    state_mib: f64,
    evaluated: u64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rules = vigil_benches::default_rules();
    let outputs = OutputTopics::default();
    let mut topics: Vec<&String> = rules.sources.iter().map(|s| &s.topic).collect();
    topics.extend([&outputs.scores, &outputs.alerts, &outputs.dlq, &outputs.late]);
    if std::env::var_os("VIGIL_SOAK_BROKER").is_some() {
        // The broker process: the cluster and its topics, the address on standard output, and
        // then wait until the parent closes standard input (or dies).
        let cluster = Embedded::start(1).unwrap();
        for t in &topics {
            cluster.create_topic(t, 4).unwrap();
        }
        println!("{}", cluster.bootstrap_servers());
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        return;
    }
    let secs: u64 = std::env::var("VIGIL_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(600);
    let rate: f64 = std::env::var("VIGIL_SOAK_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(3000.0);
    let mut broker = std::process::Command::new(std::env::current_exe().unwrap())
        .env("VIGIL_SOAK_BROKER", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut address = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(broker.stdout.take().unwrap()), &mut address).unwrap();
    let settings = KafkaSettings::new(address.trim());
    let broker_pid = broker.id().to_string();
    let checkpoints = std::env::temp_dir().join(format!("vigil-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&checkpoints);
    let metrics = Metrics::default();
    // The two districts that fall silent: the last two district codes of the registry.
    let districts: Vec<String> = (0..rules.regions.len())
        .filter(|&r| rules.regions.level_name(r as u32) == "district")
        .map(|r| rules.regions.codes[r].clone())
        .collect();
    let silenced: Vec<String> = districts.iter().rev().take(2).cloned().collect();
    let progress = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let engine = {
        let (rules, settings, progress, stop, metrics) =
            (Arc::clone(&rules), settings.clone(), Arc::clone(&progress), Arc::clone(&stop), metrics.clone());
        let checkpoints = checkpoints.clone();
        std::thread::spawn(move || {
            let cfg = EngineConfig {
                outputs,
                idle_timeout: Duration::from_secs(5),
                // Alerts only: score records would outgrow what the embedded cluster keeps.
                options: Options {
                    scores: ScoreDetail::None,
                    score_levels: vigil_core::ScoreLevels::NONE,
                    score_filter: vigil_core::ScoreFilter::All,
                    score_every: None,
                },
                progress: Some(progress),
                state: Some(vigil_engine::StateLocation::Dir(checkpoints)),
                checkpoint_every: Duration::from_secs(10),
                ..EngineConfig::new(settings)
            };
            let mut engine = Engine::new(rules, cfg, metrics).unwrap();
            let summary = engine.run(&stop, &mut |_| {}).unwrap();
            (summary, engine.last_evaluated())
        })
    };
    let samples = Arc::new(std::sync::Mutex::new(Vec::<Sample>::new()));
    let sample = {
        let (progress, metrics, broker_pid) = (Arc::clone(&progress), metrics.clone(), broker_pid.clone());
        move || Sample {
            t: started.elapsed().as_secs_f64(),
            consumed: progress.load(Ordering::Relaxed),
            rss: rss_mib("self"),
            broker_rss: rss_mib(&broker_pid),
            state_mib: metrics.checkpoint_size.get() as f64 / (1024.0 * 1024.0),
            evaluated: metrics.evaluations.get(),
        }
    };
    let sampler = {
        let (samples, stop, sample) = (Arc::clone(&samples), Arc::clone(&stop), sample.clone());
        std::thread::spawn(move || {
            let mut next = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                if started.elapsed() >= next {
                    samples.lock().unwrap().push(sample());
                    next += Duration::from_secs(30);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let source_topics = rules.sources.iter().map(|s| (s.id.clone(), s.topic.clone())).collect();
    let mut sink = RateSink {
        producer: vigil_kafka::producer(&settings).unwrap(),
        topics: source_topics,
        progress: Arc::clone(&progress),
        sent: 0,
        dropped: 0,
        rate,
        started,
        deadline: started + Duration::from_secs(secs),
        silence_after: started + Duration::from_secs(secs / 3),
        silenced: silenced.clone(),
    };
    // More days than the run can use: the deadline ends generation.
    let days = ((rate * secs as f64) / 5000.0).ceil() as u32 + 30;
    let cfg = GenConfig { seed: 7, days, incidents: IncidentPlan::Auto, ..GenConfig::default() };
    let _ = vigil_sim::generate(&cfg, &rules.regions.specs(), &mut sink);
    vigil_kafka::flush(&sink.producer, Duration::from_secs(60)).unwrap();
    let sent = sink.sent;
    let t = Instant::now();
    while progress.load(Ordering::Relaxed) < sent && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = started.elapsed().as_secs_f64();
    samples.lock().unwrap().push(sample());
    stop.store(true, Ordering::Relaxed);
    let (summary, evaluated) = engine.join().unwrap();
    sampler.join().unwrap();
    drop(broker.stdin.take());
    let _ = broker.wait();
    let _ = std::fs::remove_dir_all(&checkpoints);
    let samples = samples.lock().unwrap().clone();

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let mut report = format!(
        "## soak, {}\n\nMachine: {}. {secs} s at a target of {rate:.0} events/s into the embedded cluster (4 \
         partitions per topic), generated as it goes; after {} s the regions of districts {} stop sending \
         ({} events dropped). The engine consumed {} events ({:.0} events/s over the run; {} late, {} rejected), \
         raised {} alert events and evaluated through {}. The broker runs in a child process; the state \
         is the size of the engine's checkpoint (taken every 10 s).\n\n| elapsed (s) | events consumed | indicator \
         evaluations | engine RSS (MiB) | state (MiB) | broker RSS (MiB) |\n|---|---|---|---|---|---|\n",
        vigil_model::time::format_utc(now),
        vigil_benches::machine(),
        secs / 3,
        silenced.join(", "),
        sink.dropped,
        summary.consumed,
        summary.consumed as f64 / wall,
        summary.late,
        summary.rejected,
        summary.alerts,
        evaluated.map_or("-".into(), vigil_model::time::format_utc),
    );
    for s in &samples {
        report.push_str(&format!(
            "| {:.0} | {} | {} | {:.1} | {:.2} | {:.1} |\n",
            s.t, s.consumed, s.evaluated, s.rss, s.state_mib, s.broker_rss
        ));
    }
    // Warm-up: the first minute (topics, consumer, first baselines).
    let after_warmup: Vec<&Sample> = samples.iter().filter(|s| s.t >= 60.0).collect();
    if let (Some(first), Some(last)) = (after_warmup.first(), after_warmup.last()) {
        let mid = after_warmup[after_warmup.len() / 2];
        let max = after_warmup.iter().map(|s| s.rss).fold(0.0, f64::max);
        report.push_str(&format!(
            "\nAfter the first minute: engine RSS {:.1} MiB at {:.0} s, {:.1} MiB at {:.0} s (middle), {:.1} MiB at \
             {:.0} s (end), at most {max:.1} MiB; end vs. start {:+.1}%. State {:.2} / {:.2} / {:.2} MiB.\n",
            first.rss,
            first.t,
            mid.rss,
            mid.t,
            last.rss,
            last.t,
            100.0 * (last.rss - first.rss) / first.rss,
            first.state_mib,
            mid.state_mib,
            last.state_mib,
        ));
    }
    println!("{report}");
    if std::env::var_os("VIGIL_BENCH_RECORD").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/soak.md");
        let mut old = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            "# Soak results\n\n`cargo bench -p vigil-benches --bench soak_report` (append with `VIGIL_BENCH_RECORD=1`; \
             `VIGIL_SOAK_SECS`, `VIGIL_SOAK_RATE`).\n\n"
                .to_string()
        });
        old.push_str(&report);
        old.push('\n');
        std::fs::write(&path, old).expect("write results");
    }
}
