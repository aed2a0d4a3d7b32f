//! `vigil demo`: the whole system on one machine with nothing installed. An embedded Kafka
//! cluster (librdkafka's mock cluster) or `--brokers`, the synthetic city producing into the
//! event topics (a backfill of the warm-up weeks, then accelerated event time), the engine
//! consuming them, alerts printed as coloured lines, and metrics served over HTTP.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vigil_core::{Options, ScoreDetail};
use vigil_engine::{Engine, EngineConfig, OutputTopics};
use vigil_kafka::{Embedded, KafkaSettings};
use vigil_model::record::{AlertEvent, AlertRecord};
use vigil_model::time::{DAY, HOUR};
use vigil_model::{Duration as EvDuration, Level};
use vigil_rules::RuleSet;
use vigil_sim::{EventSink, GenConfig, Incident, IncidentKind, IncidentPlan};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Use these Kafka brokers instead of the embedded cluster.
    #[arg(long)]
    brokers: Option<String>,
    /// Rule set directory.
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
    /// Stop by itself after this long (e.g. 60s, 5m); default: run until interrupted.
    #[arg(long = "for")]
    run_for: Option<String>,
    /// Simulated seconds per wall-clock second after the backfill.
    #[arg(long, default_value_t = 3600.0)]
    speed: f64,
    /// Days of history produced at full speed before accelerated time starts.
    #[arg(long, default_value_t = 28)]
    backfill_days: u32,
    /// Address of the HTTP server (/metrics, /healthz, /readyz, /api/...).
    #[arg(long, alias = "metrics-addr", default_value = "127.0.0.1:9464")]
    http_addr: String,
    /// Bearer token required by the HTTP API (not by /healthz, /readyz or /metrics).
    #[arg(long, env = "VIGIL_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Partitions of each event topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Seed of the synthetic city.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print alerts as JSON lines instead of coloured text.
    #[arg(long)]
    json: bool,
    /// Write checkpoints (state and offsets) here every 10 s and on exit, and resume from them.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Archive decoded events, scores and alerts here as Parquet (`vigil sql --archive DIR`).
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Push alert episodes to this Alertmanager (API v2, `http://host:9093`): firing while
    /// open, re-sent every minute, resolved when they end (deploy/alertmanager/).
    #[arg(long, env = "VIGIL_ALERTMANAGER")]
    alertmanager: Option<String>,
    /// On exit, write the weekly bulletin (star ratings, movers, alert episodes) of the
    /// archive's last week here: `.html`, or `.pdf` with Chromium installed (`vigil report`).
    #[arg(long, requires = "archive")]
    report: Option<PathBuf>,
}

/// Produces generated events to Kafka, pacing them once event time passes the backfill.
struct KafkaSink {
    producer: vigil_kafka::OutputProducer,
    topics: Vec<(String, String)>,
    live_from: i64,
    speed: f64,
    wall_start: Option<Instant>,
    stop: Arc<AtomicBool>,
    sent: u64,
    debug: bool,
    /// Messages the engine has consumed: the generator stays at most `MAX_AHEAD` in front.
    consumed: Arc<AtomicU64>,
}

/// How many messages the generator may run ahead of the engine. The embedded broker keeps a
/// bounded log per partition and drops the oldest messages of one that runs too far ahead.
const MAX_AHEAD: u64 = 20_000;

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let pat = format!("\"{name}\":\"");
    let i = line.find(&pat)? + pat.len();
    let j = line[i..].find('"')? + i;
    Some(&line[i..j])
}

impl EventSink for KafkaSink {
    fn emit(&mut self, source: &str, line: &str) -> std::io::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("stopped"));
        }
        let topic = self.topics.iter().find(|(s, _)| s == source).map(|(_, t)| t.as_str()).unwrap_or(source);
        let ts = field(line, "ts").and_then(|t| vigil_model::time::parse_rfc3339(t).ok()).unwrap_or(0);
        if ts >= self.live_from {
            let start = *self.wall_start.get_or_insert_with(Instant::now);
            let due = Duration::from_secs_f64(((ts - self.live_from) as f64 / 1000.0 / self.speed).max(0.0));
            let elapsed = start.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        while self.sent >= self.consumed.load(Ordering::Relaxed) + MAX_AHEAD {
            if self.stop.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("stopped"));
            }
            vigil_kafka::poll(&self.producer);
            std::thread::sleep(Duration::from_millis(2));
        }
        let key = field(line, "region").unwrap_or_default();
        vigil_kafka::send(&self.producer, topic, key, line.as_bytes(), None).map_err(std::io::Error::other)?;
        self.sent += 1;
        if self.debug && self.sent.is_multiple_of(20_000) {
            eprintln!("debug: generator sent {} (event time {})", self.sent, vigil_model::time::format_utc(ts));
        }
        if self.sent.is_multiple_of(1024) {
            vigil_kafka::poll(&self.producer);
        }
        Ok(())
    }
}

/// Incidents timed to begin soon after the backfill, so the first minute shows alerts.
fn demo_incidents(rules: &RuleSet, start: i64, backfill_days: u32) -> Vec<Incident> {
    let live = start + backfill_days as i64 * DAY;
    let pick = |level: u8, n: usize| -> String {
        let codes: Vec<&String> = rules
            .regions
            .codes
            .iter()
            .enumerate()
            .filter(|(i, _)| rules.regions.levels[*i] == level)
            .map(|(_, c)| c)
            .collect();
        codes[n % codes.len().max(1)].clone()
    };
    vec![
        Incident {
            id: "demo-1-opinion".into(),
            kind: IncidentKind::NegativeOpinionBurst,
            region: pick(1, 1),
            start: live + 2 * HOUR,
            duration_hours: 30,
            strength: 8.0,
        },
        Incident {
            id: "demo-2-gathering".into(),
            kind: IncidentKind::MassGathering,
            region: pick(2, 12),
            start: live + 6 * HOUR,
            duration_hours: 36,
            strength: 10.0,
        },
        Incident {
            id: "demo-3-crime".into(),
            kind: IncidentKind::CrimeSpree,
            region: pick(1, 5),
            start: live + 10 * HOUR,
            duration_hours: 48,
            strength: 6.0,
        },
    ]
}

fn colour(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Red) => "\x1b[1;97;41m",
        Some(Level::Orange) => "\x1b[1;30;43m",
        Some(Level::Yellow) => "\x1b[1;33m",
        Some(Level::Blue) => "\x1b[1;34m",
        None => "\x1b[32m",
    }
}

/// One readable line per alert: time, level, region, scope, score and the top reasons (for an
/// evidence alarm, its sentence).
pub fn alert_line(a: &AlertRecord, rules: &RuleSet) -> String {
    let t = vigil_model::time::parse_rfc3339(&a.window_end).map(|t| rules.zone.format(t)).unwrap_or_default();
    let level = a.level.map_or("clear", |l| l.as_str()).to_uppercase();
    let arrow = match a.event {
        AlertEvent::Opened => "opened",
        AlertEvent::Escalated => "up",
        AlertEvent::Deescalated => "down",
        AlertEvent::Resolved => "resolved",
    };
    let mut reasons: Vec<String> = if let Some(e) = &a.evidence {
        vec![e.summary.clone()]
    } else {
        a.top_contributors
            .iter()
            .take(3)
            .map(|c| {
                let v = c.value.map_or("-".into(), |v| format!("{v}"));
                let e = c.expected.map_or("-".into(), |e| format!("{e:.1}"));
                let name = c.name.as_ref().map_or(c.indicator.as_str(), |n| n.en.as_str());
                format!("{name} {v} (exp {e}, {:.0})", c.score.unwrap_or(0.0))
            })
            .collect()
    };
    // A level an override set says so first, with what triggered it.
    if let Some(f) = &a.floor {
        let name = rules
            .domains
            .iter()
            .find(|d| d.id == f.trigger)
            .map(|d| d.name.en.as_str())
            .or_else(|| rules.indicators.iter().find(|i| i.id == f.trigger).map(|i| i.name.en.as_str()))
            .unwrap_or(&f.trigger);
        reasons.insert(0, f.describe(name));
    }
    // What to do and by when (grading.toml `response` and `deadline`), in the zone's time.
    let todo = match (&a.response, &a.deadline) {
        (Some(r), Some(d)) => {
            let by = vigil_model::time::parse_rfc3339(d).map(|t| rules.zone.format(t)).unwrap_or_default();
            format!(" -> {r} (by {})", &by[..16.min(by.len())])
        }
        (Some(r), None) => format!(" -> {r}"),
        _ => String::new(),
    };
    format!(
        "{} {}{:<6}\x1b[0m {:<8} {} {} [{}] {} {:.1}  {}{}",
        &t[..16.min(t.len())],
        colour(a.level),
        level,
        arrow,
        a.region_name,
        a.region,
        a.region_level,
        a.scope,
        a.score.unwrap_or(0.0),
        reasons.join("; "),
        todo
    )
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let rules = crate::load_rules(&args.rules)?;
    let run_for = args
        .run_for
        .as_deref()
        .map(|s| EvDuration::parse(s).map(|d| Duration::from_millis(d.0 as u64)).map_err(anyhow::Error::msg))
        .transpose()?;
    let embedded = match &args.brokers {
        Some(_) => None,
        None => Some(Embedded::start(1).context("start the embedded Kafka cluster")?),
    };
    let settings = match (&args.brokers, &embedded) {
        (Some(b), _) => KafkaSettings::new(b.clone()),
        (None, Some(e)) => KafkaSettings::new(e.bootstrap_servers()),
        (None, None) => unreachable!("an embedded cluster is started when no brokers are given"),
    };
    let outputs = OutputTopics::default();
    let mut topics: Vec<(String, i32)> = rules.sources.iter().map(|s| (s.topic.clone(), args.partitions)).collect();
    for t in [&outputs.scores, &outputs.alerts, &outputs.dlq, &outputs.late] {
        topics.push((t.clone(), args.partitions));
    }
    match &embedded {
        // The mock cluster creates topics through its own API.
        Some(e) => {
            for (t, p) in &topics {
                e.create_topic(t, *p).with_context(|| format!("create topic {t}"))?;
            }
        }
        None => vigil_kafka::ensure_topics(&settings, &topics).context("create topics")?,
    }

    let service = crate::service::start(&args.http_addr, args.api_token.clone(), Some(args.rules.clone()), &rules)?;
    let (stop, metrics) = (Arc::clone(&service.stop), service.metrics.clone());
    eprintln!(
        "vigil demo: Kafka at {} ({}), rules {} ({}), console at http://{}/console/, metrics at http://{4}/metrics, \
         API at http://{4}/api/",
        settings.brokers,
        if args.brokers.is_some() { "external" } else { "embedded" },
        rules.name,
        rules.version,
        service.addr
    );
    eprintln!(
        "backfilling {} days of the synthetic city, then {}x accelerated event time{}",
        args.backfill_days,
        args.speed,
        run_for.map_or(String::new(), |d| format!("; stopping after {}s", d.as_secs()))
    );

    // The generator: its own producer, on its own thread.
    let regions = rules.regions.specs();
    let start = vigil_sim::default_start();
    let gen_cfg = GenConfig {
        seed: args.seed,
        days: args.backfill_days + 30,
        start,
        incidents: IncidentPlan::Explicit(demo_incidents(&rules, start, args.backfill_days)),
        volume: 1.0,
    };
    let consumed = Arc::new(AtomicU64::new(0));
    let mut sink = KafkaSink {
        producer: vigil_kafka::producer(&settings)?,
        topics: rules.sources.iter().map(|s| (s.id.clone(), s.topic.clone())).collect(),
        live_from: start + args.backfill_days as i64 * DAY,
        speed: args.speed.max(1.0),
        wall_start: None,
        stop: Arc::clone(&stop),
        sent: 0,
        debug: std::env::var_os("VIGIL_DEBUG").is_some(),
        consumed: Arc::clone(&consumed),
    };
    let generator = std::thread::spawn(move || {
        let r = vigil_sim::generate(&gen_cfg, &regions, &mut sink);
        let _ = vigil_kafka::flush(&sink.producer, Duration::from_secs(10));
        r.map(|_| sink.sent)
    });
    if let Some(d) = run_for {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(d);
            stop.store(true, Ordering::Relaxed);
        });
    }

    let cfg = EngineConfig {
        group: "vigil-demo".into(),
        outputs,
        idle_timeout: Duration::from_secs(30),
        options: Options {
            scores: ScoreDetail::Summary,
            // City, districts and streets: the console draws their recent history from these.
            score_levels: vigil_core::ScoreLevels(0b0111),
            score_filter: vigil_core::ScoreFilter::All,
            score_every: None,
        },
        progress: Some(consumed),
        state: args.checkpoint_dir.clone().map(vigil_engine::StateLocation::Dir),
        checkpoint_every: Duration::from_secs(10),
        score_tap: Some(service.score_tap()),
        ..EngineConfig::new(settings.clone())
    };
    let mut engine = Engine::new(Arc::clone(&rules), cfg, metrics)?;
    engine.attach(service.inbox);
    if let Some(dir) = &args.archive {
        engine.set_archive(crate::history::engine_archive(dir, &rules, "demo")?)?;
    }
    let json = args.json;
    let am = crate::run_cmd::alertmanager(args.alertmanager.as_deref(), &args.http_addr, &service.metrics)?;
    let console = service.console.clone();
    let mut print = |a: &AlertRecord| {
        console.alert(a);
        if let Some(am) = &am {
            am.send(a);
        }
        if json {
            println!("{}", serde_json::to_string(a).unwrap_or_default());
        } else {
            println!("{}", alert_line(a, &rules));
        }
    };
    let summary = engine.run(&stop, &mut print)?;
    stop.store(true, Ordering::Relaxed);
    let sent = generator.join().map_err(|_| anyhow::anyhow!("generator thread panicked"))?;
    eprintln!(
        "vigil demo: consumed {} events ({} rejected, {} late), {} alert events; generator sent {}",
        summary.consumed,
        summary.rejected,
        summary.late,
        summary.alerts,
        sent.map_or_else(|e| format!("until stopped ({e})"), |n| n.to_string())
    );
    // The archive is complete once the engine (its writer) is gone.
    drop(engine);
    if let (Some(out), Some(archive)) = (&args.report, &args.archive) {
        let line = crate::report_cmd::write(archive, &rules, vigil_report::PeriodKind::Week, None, None, "zh", out)?;
        eprintln!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
