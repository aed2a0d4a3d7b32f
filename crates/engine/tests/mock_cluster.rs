//! End to end on the embedded Kafka cluster: generated events produced to the event topics, the
//! engine consuming them, an independent consumer reading the alert topic; the alerts equal
//! those of `vigil replay` over the same events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vigil_core::{Options, Pipeline, ScoreDetail};
use vigil_engine::{Engine, EngineConfig, Metrics, OutputTopics};
use vigil_kafka::{Embedded, KafkaSettings, Message};
use vigil_model::record::AlertRecord;
use vigil_model::time::{DAY, HOUR, format_utc};
use vigil_sim::{GenConfig, Incident, IncidentKind, IncidentPlan, MemorySink};

/// The default rules and a small generated city with one strong incident after the warm-up,
/// produced to the embedded cluster's event topics. Returns the cluster (keep it alive), the
/// settings, the lines by source and how many events were produced.
fn setup() -> (Arc<vigil_rules::RuleSet>, Embedded, KafkaSettings, MemorySink, u64) {
    let rules =
        Arc::new(vigil_rules::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")).unwrap());
    let r = &rules.regions;
    let regions = r.specs();
    let start = vigil_sim::default_start();
    let district = r.codes[r.levels.iter().position(|&l| l == 1).unwrap()].clone();
    let cfg = GenConfig {
        seed: 3,
        days: 33,
        start,
        volume: 0.25,
        incidents: IncidentPlan::Explicit(vec![Incident {
            id: "t".into(),
            kind: IncidentKind::NegativeOpinionBurst,
            region: district,
            start: start + 29 * DAY + 10 * HOUR,
            duration_hours: 36,
            strength: 10.0,
        }]),
    };
    let mut lines = MemorySink::default();
    vigil_sim::generate(&cfg, &regions, &mut lines).unwrap();
    let cluster = Embedded::start(1).unwrap();
    let settings = KafkaSettings::new(cluster.bootstrap_servers());
    let outputs = OutputTopics::default();
    for s in &rules.sources {
        cluster.create_topic(&s.topic, 2).unwrap();
    }
    for t in [&outputs.scores, &outputs.alerts, &outputs.dlq, &outputs.late] {
        cluster.create_topic(t, 1).unwrap();
    }
    let producer = vigil_kafka::producer(&settings).unwrap();
    let mut total = 0u64;
    for (source, ls) in &lines.lines {
        let topic = &rules.sources[rules.source_index(source).unwrap() as usize].topic;
        for l in ls {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            vigil_kafka::send(&producer, topic, v["region"].as_str().unwrap(), l.as_bytes(), None).unwrap();
            total += 1;
        }
    }
    vigil_kafka::flush(&producer, Duration::from_secs(30)).unwrap();
    (rules, cluster, settings, lines, total)
}

/// Runs an engine until it has consumed `until` messages in this run, then stops it gracefully.
/// Returns the summary and the last hour evaluated.
fn run_engine(
    rules: &Arc<vigil_rules::RuleSet>,
    settings: &KafkaSettings,
    until: u64,
    checkpoint_dir: Option<std::path::PathBuf>,
) -> (vigil_engine::engine::RunSummary, i64) {
    let progress = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ecfg = EngineConfig {
        kafka: settings.clone(),
        group: "test".into(),
        outputs: OutputTopics::default(),
        idle_timeout: Duration::from_secs(60),
        options: Options { scores: ScoreDetail::None, score_levels: [false; 4] },
        progress: Some(Arc::clone(&progress)),
        checkpoint_dir,
        checkpoint_every: Duration::from_secs(3600),
    };
    let mut engine = Engine::new(Arc::clone(rules), ecfg, Metrics::default()).unwrap();
    let stopper = {
        let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
        std::thread::spawn(move || {
            let t = Instant::now();
            while progress.load(Ordering::Relaxed) < until && t.elapsed() < Duration::from_secs(120) {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let summary = engine.run(&stop, &mut |_| {}).unwrap();
    stopper.join().unwrap();
    (summary, engine.last_evaluated().unwrap())
}

/// Everything on a topic, read by an independent consumer until it is quiet.
fn read_topic(settings: &KafkaSettings, topic: &str) -> Vec<String> {
    let (consumer, _) =
        vigil_kafka::assigned_consumer(settings, "reader", &[topic.to_string()], &Default::default()).unwrap();
    let mut out = Vec::new();
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            quiet = Instant::now();
        }
    }
    out
}

/// The alerts `vigil replay` raises over the same events, up to `evaluated`.
fn replay_alerts(rules: &Arc<vigil_rules::RuleSet>, lines: &MemorySink, evaluated: i64) -> Vec<String> {
    let inputs = lines
        .lines
        .iter()
        .map(|(source, ls)| vigil_replay::Input {
            name: format!("{source}.jsonl"),
            source: rules.source_index(source),
            reader: Box::new(std::io::Cursor::new((ls.join("\n") + "\n").into_bytes())),
        })
        .collect();
    let mut p = Pipeline::new(Arc::clone(rules), Options { scores: ScoreDetail::None, score_levels: [false; 4] });
    let mut sink = vigil_replay::MemSink::default();
    vigil_replay::replay(&mut p, inputs, &mut sink).unwrap();
    sink.alerts
        .iter()
        .filter(|a: &&AlertRecord| a.window_end <= format_utc(evaluated))
        .map(|a| serde_json::to_string(a).unwrap())
        .collect()
}

#[test]
fn engine_on_the_mock_cluster_matches_replay() {
    let (rules, _cluster, settings, lines, total) = setup();
    let (summary, evaluated) = run_engine(&rules, &settings, total, None);
    assert_eq!(summary.consumed, total);
    assert_eq!((summary.rejected, summary.late), (0, 0));
    let from_kafka = read_topic(&settings, &OutputTopics::default().alerts);
    let from_replay = replay_alerts(&rules, &lines, evaluated);
    assert!(!from_replay.is_empty(), "the incident raises alerts");
    assert_same(&from_kafka, &from_replay);
}

/// Compares alert lists, printing only the first difference.
fn assert_same(kafka: &[String], replay: &[String]) {
    if kafka != replay {
        let i = kafka.iter().zip(replay).position(|(a, b)| a != b).unwrap_or(kafka.len().min(replay.len()));
        panic!(
            "alerts differ: kafka {} vs replay {}; first difference at {i}:\n kafka: {}\nreplay: {}",
            kafka.len(),
            replay.len(),
            kafka.get(i).map_or("-", |s| s.as_str()),
            replay.get(i).map_or("-", |s| s.as_str())
        );
    }
}

/// Stopped half-way and started again from its checkpoint, the engine raises exactly the
/// alerts of a straight run: none lost, none doubled.
#[test]
fn restart_from_checkpoint_equals_a_straight_run() {
    let (rules, _cluster, settings, lines, total) = setup();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("engine-checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
    let (first, _) = run_engine(&rules, &settings, total / 2, Some(dir.clone()));
    assert!(first.processed >= total / 2 && first.processed < total, "{first:?}");
    assert!(dir.join("checkpoint").exists());
    // Messages held back (not yet processed) at the stop are read again after the restart, so
    // the second run consumes at least the rest.
    let (second, evaluated) = run_engine(&rules, &settings, total - first.processed, Some(dir.clone()));
    assert_eq!(first.processed + second.processed, total, "every message processed once across the restart");
    let from_kafka = read_topic(&settings, &OutputTopics::default().alerts);
    let from_replay = replay_alerts(&rules, &lines, evaluated);
    assert!(!from_replay.is_empty());
    assert_same(&from_kafka, &from_replay);

    // A corrupt newest checkpoint falls back to the previous one, with a warning.
    let cp = dir.join("checkpoint");
    let bytes = std::fs::read(&cp).unwrap();
    std::fs::write(&cp, &bytes[..bytes.len() / 2]).unwrap();
    let mut warnings = Vec::new();
    let restored = vigil_engine::checkpoint::read(&dir, &mut |w| warnings.push(w)).unwrap();
    assert!(restored.is_some() && warnings.len() == 1, "{warnings:?}");
    std::fs::write(dir.join("checkpoint.prev"), b"garbage").unwrap();
    assert!(vigil_engine::checkpoint::read(&dir, &mut |_| {}).is_err());
}

/// Bad messages on the wire each land in the dead-letter topic with a reason, are counted, and
/// the engine goes on with the good ones.
#[test]
fn bad_messages_go_to_the_dead_letter_topic() {
    use rdkafka::producer::{BaseRecord, Producer};
    let rules =
        Arc::new(vigil_rules::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")).unwrap());
    let cluster = Embedded::start(1).unwrap();
    let settings = KafkaSettings::new(cluster.bootstrap_servers());
    let outputs = OutputTopics::default();
    for s in &rules.sources {
        cluster.create_topic(&s.topic, 1).unwrap();
    }
    for t in [&outputs.scores, &outputs.alerts, &outputs.dlq, &outputs.late] {
        cluster.create_topic(t, 1).unwrap();
    }
    let producer = vigil_kafka::producer(&settings).unwrap();
    let police = &rules.sources[rules.source_index("police").unwrap() as usize].topic;
    let good = r#"{"id":"g","region":"990101001001","ts":"2026-01-05T10:00:00+08:00","attrs":{"incident_type":"theft","priority":3}}"#;
    let big =
        format!(r#"{{"region":"990101001001","ts":"2026-01-05T10:00:00+08:00","pad":"{}"}}"#, "x".repeat(100_000));
    // (key, payload, expected reason)
    type Case<'a> = (Option<&'a str>, Option<Vec<u8>>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (Some("k"), Some(b"\xff\xfe not json".to_vec()), "not_utf8"),
        (Some("k"), Some(b"{not json".to_vec()), "malformed_json"),
        (Some("k"), Some(br#"[1,2,3]"#.to_vec()), "not_an_object"),
        (
            Some("k"),
            Some(br#"{"region":"990101001001","ts":"2026-01-05T10:00:00+08:00","attrs":{"incident_type":7}}"#.to_vec()),
            "wrong_type",
        ),
        (
            Some("k"),
            Some(
                br#"{"region":"nowhere","ts":"2026-01-05T10:00:00+08:00","attrs":{"incident_type":"theft"}}"#.to_vec(),
            ),
            "unknown_region",
        ),
        (Some("k"), Some(big.into_bytes()), "too_large"),
        (Some("k"), None, "empty"),
        (None, Some(br#"{"region":"990101001001"}"#.to_vec()), "missing_field"),
    ];
    for (key, payload, _) in &cases {
        let mut rec: BaseRecord<'_, str, [u8]> = BaseRecord::to(police);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(p) = payload {
            rec = rec.payload(p.as_slice());
        }
        producer.send(rec).map_err(|(e, _)| e).unwrap();
    }
    vigil_kafka::send(&producer, police, "990101001001", good.as_bytes(), None).unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let total = cases.len() as u64 + 1;

    let progress = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ecfg = EngineConfig {
        kafka: settings.clone(),
        group: "test".into(),
        outputs: outputs.clone(),
        idle_timeout: Duration::from_secs(60),
        options: Options::default(),
        progress: Some(Arc::clone(&progress)),
        checkpoint_dir: None,
        checkpoint_every: Duration::from_secs(3600),
    };
    let metrics = Metrics::default();
    let mut engine = Engine::new(Arc::clone(&rules), ecfg, metrics.clone()).unwrap();
    let stopper = {
        let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
        std::thread::spawn(move || {
            let t = Instant::now();
            while progress.load(Ordering::Relaxed) < total && t.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let summary = engine.run(&stop, &mut |_| {}).unwrap();
    stopper.join().unwrap();
    assert_eq!(summary.consumed, total);
    assert_eq!(summary.rejected, cases.len() as u64);

    let (consumer, _) =
        vigil_kafka::assigned_consumer(&settings, "reader", std::slice::from_ref(&outputs.dlq), &Default::default())
            .unwrap();
    let mut reasons = Vec::new();
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            assert_eq!(v["topic"], police.as_str());
            assert!(v["offset"].as_i64().is_some() && v.get("payload").is_none(), "{v}");
            reasons.push(v["reason"].as_str().unwrap().to_string());
            quiet = Instant::now();
        }
    }
    let want: Vec<String> = cases.iter().map(|c| c.2.to_string()).collect();
    assert_eq!(reasons, want);
    let mut text = String::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains(r#"vigil_events_rejected_total{source="police",reason="too_large"} 1"#), "{text}");
    assert!(text.contains(r#"vigil_events_consumed_total{source="police"} 9"#), "{text}");
}
