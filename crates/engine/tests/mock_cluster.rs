//! End to end on the embedded Kafka cluster: generated events produced to the event topics, the
//! engine consuming them, an independent consumer reading the alert topic; the alerts equal
//! those of `vigil replay` over the same events.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::run_engine;
use vigil_core::Options;
use vigil_engine::testkit::{self, Broker, RunTopics, assert_same};
use vigil_engine::{Engine, EngineConfig, Metrics, OutputTopics};
use vigil_kafka::{Embedded, KafkaSettings, Message};
use vigil_sim::MemorySink;

/// The default rules and a small generated city with one strong incident after the warm-up,
/// produced to the embedded cluster's event topics (two partitions each).
fn setup() -> (Arc<vigil_rules::RuleSet>, Broker, RunTopics, MemorySink, u64) {
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let topics = RunTopics::new(&rules, "mock");
    broker.create_topics(&topics.all(2));
    let lines = testkit::city(&rules, 3, 33);
    let total = testkit::produce(&broker.settings(), &topics.events, &lines);
    (rules, broker, topics, lines, total)
}

const LIMIT: Duration = Duration::from_secs(120);
const QUIET: Duration = Duration::from_secs(3);

#[test]
fn engine_on_the_mock_cluster_matches_replay() {
    let (rules, broker, topics, lines, total) = setup();
    let settings = broker.settings();
    let (summary, evaluated) = run_engine(&rules, &settings, &topics, total, None, LIMIT);
    assert_eq!(summary.consumed, total);
    assert_eq!((summary.rejected, summary.late), (0, 0));
    let from_kafka = testkit::read_topic(&settings, &topics.outputs.alerts, QUIET);
    let from_replay = testkit::replay_alerts(&rules, &lines, Some(evaluated));
    assert!(!from_replay.is_empty(), "the incident raises alerts");
    assert_same("alerts", &from_kafka, &from_replay);
}

/// Stopped half-way and started again from its checkpoint, the engine raises exactly the
/// alerts of a straight run: none lost, none doubled.
#[test]
fn restart_from_checkpoint_equals_a_straight_run() {
    let (rules, broker, topics, lines, total) = setup();
    let settings = broker.settings();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("engine-checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
    let (first, _) = run_engine(&rules, &settings, &topics, total / 2, Some(dir.clone()), LIMIT);
    assert!(first.processed >= total / 2 && first.processed < total, "{first:?}");
    assert!(dir.join("checkpoint").exists());
    // Messages held back (not yet processed) at the stop are read again after the restart, so
    // the second run consumes at least the rest.
    let (second, evaluated) = run_engine(&rules, &settings, &topics, total - first.processed, Some(dir.clone()), LIMIT);
    assert_eq!(first.processed + second.processed, total, "every message processed once across the restart");
    let from_kafka = testkit::read_topic(&settings, &topics.outputs.alerts, QUIET);
    let from_replay = testkit::replay_alerts(&rules, &lines, Some(evaluated));
    assert!(!from_replay.is_empty());
    assert_same("alerts", &from_kafka, &from_replay);

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
    let rules = testkit::default_rules();
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
        // Eleven months ahead of the broker's timestamp (set below to the good event's time).
        (
            Some("k"),
            Some(br#"{"region":"990101001001","ts":"2026-12-05T10:00:00+08:00","attrs":{"incident_type":"theft","priority":3}}"#.to_vec()),
            "timestamp_in_future",
        ),
    ];
    let sent_at = vigil_model::time::parse_rfc3339("2026-01-05T10:00:00+08:00").unwrap();
    for (key, payload, _) in &cases {
        let mut rec: BaseRecord<'_, str, [u8]> = BaseRecord::to(police).timestamp(sent_at);
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
        group: "test".into(),
        outputs: outputs.clone(),
        idle_timeout: Duration::from_secs(2),
        options: Options::default(),
        progress: Some(Arc::clone(&progress)),
        state: None,
        checkpoint_every: Duration::from_secs(3600),
        ..EngineConfig::new(settings.clone())
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

    let consumer =
        vigil_kafka::assigned_consumer(&settings, "reader", std::slice::from_ref(&outputs.dlq), &Default::default())
            .unwrap()
            .consumer;
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
    assert!(text.contains(r#"vigil_events_rejected_total{source="police",reason="timestamp_in_future"} 1"#), "{text}");
    assert!(text.contains(r#"vigil_events_consumed_total{source="police"} 10"#), "{text}");
}

/// With the wall-clock advance on, a quiet cluster still has its hours evaluated up to the wall
/// clock (minus the largest allowed delay); without it, time stops at the last event.
#[test]
fn wall_clock_advance_evaluates_quiet_hours() {
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let topics = RunTopics::new(&rules, "wallclock");
    broker.create_topics(&topics.all(1));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let hour = vigil_model::time::HOUR;
    let producer = vigil_kafka::producer(&broker.settings()).unwrap();
    let ts = vigil_model::time::format_utc(now - 5 * hour);
    // One generated event per source, moved to five hours ago.
    let city = testkit::city(&rules, 1, 1);
    for (source, lines) in &city.lines {
        let mut v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        v["ts"] = ts.clone().into();
        let key = v["region"].as_str().unwrap().to_string();
        vigil_kafka::send(&producer, &topics.events[source], &key, v.to_string().as_bytes(), None).unwrap();
    }
    vigil_kafka::flush(&producer, Duration::from_secs(10)).unwrap();
    let max_delay = rules.sources.iter().map(|s| s.allowed_delay.0).max().unwrap();
    for advance in [false, true] {
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = EngineConfig {
            outputs: topics.outputs.clone(),
            event_topics: topics.events.clone(),
            idle_timeout: Duration::from_millis(500),
            wall_clock_advance: advance,
            ..EngineConfig::new(broker.settings())
        };
        let mut engine = Engine::new(Arc::clone(&rules), cfg, Metrics::default()).unwrap();
        let stopper = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(4));
                stop.store(true, Ordering::Relaxed);
            })
        };
        let summary = engine.run(&stop, &mut |_| {}).unwrap();
        stopper.join().unwrap();
        assert_eq!(summary.rejected, 0, "{summary:?}");
        let evaluated = engine.last_evaluated().unwrap();
        if advance {
            let want = (now - max_delay).div_euclid(hour) * hour;
            assert!(evaluated >= want, "evaluated {} < {}", evaluated, want);
        } else {
            assert!(evaluated <= now - 5 * hour, "without the advance time stops at the last event");
        }
    }
}

/// Identity-like fields added upstream — as extra fields, as the value of a declared attribute,
/// as a region code — never reach any output topic or metric: undeclared fields are dropped at
/// decode, and refusals name the problem without repeating the value.
#[test]
fn identity_fields_never_reach_any_output() {
    const NAME: &str = "张三丰";
    const PHONE: &str = "13800138000";
    const ID: &str = "110101199003074514";
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let topics = RunTopics::new(&rules, "privacy");
    broker.create_topics(&topics.all(1));
    let mut lines = testkit::city(&rules, 9, 3);
    for ls in lines.lines.values_mut() {
        for (i, l) in ls.iter_mut().enumerate() {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["name"] = NAME.into();
            v["phone"] = PHONE.into();
            v["attrs"]["id_card"] = ID.into();
            v["attrs"]["device_id"] = PHONE.into();
            // Every 50th event carries the phone number where a value belongs: refused.
            if i % 50 == 0 {
                v["region"] = PHONE.into();
            } else if i % 50 == 1 {
                v["ts"] = PHONE.parse::<i64>().unwrap().into();
            }
            *l = v.to_string();
        }
    }
    let total = testkit::produce(&broker.settings(), &topics.events, &lines);
    let metrics = Metrics::default();
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let cfg = EngineConfig {
        outputs: topics.outputs.clone(),
        event_topics: topics.events.clone(),
        idle_timeout: Duration::from_secs(1),
        progress: Some(Arc::clone(&progress)),
        options: Options {
            scores: vigil_core::ScoreDetail::Full,
            score_levels: vigil_core::ScoreLevels::ALL,
            score_filter: vigil_core::ScoreFilter::All,
            score_every: None,
        },
        ..EngineConfig::new(broker.settings())
    };
    let mut engine = Engine::new(Arc::clone(&rules), cfg, metrics.clone()).unwrap();
    let stopper = {
        let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
        std::thread::spawn(move || {
            let t = Instant::now();
            while progress.load(Ordering::Relaxed) < total && t.elapsed() < LIMIT {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_secs(2));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let summary = engine.run(&stop, &mut |_| {}).unwrap();
    stopper.join().unwrap();
    assert!(summary.rejected > 0 && summary.processed == total, "{summary:?}");
    let settings = broker.settings();
    let o = &topics.outputs;
    let mut seen = 0;
    for topic in [&o.scores, &o.alerts, &o.dlq, &o.late] {
        for record in testkit::read_topic(&settings, topic, Duration::from_secs(2)) {
            seen += 1;
            for secret in [NAME, PHONE, ID, "138001", "id_card", "device_id"] {
                assert!(!record.contains(secret), "{topic} carries {secret}: {record}");
            }
        }
    }
    assert!(seen > total as usize / 100, "outputs were read ({seen})");
    let mut text = String::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for secret in [NAME, PHONE, ID, "138001"] {
        assert!(!text.contains(secret), "metrics carry {secret}");
    }
}

/// The broker goes away mid-stream: the first half of the city is produced and consumed, the
/// embedded cluster's only broker is taken down for 7 s (longer than the idle timeout), brought
/// back, and the second half produced. Silence from a broker that cannot be reached is not
/// idleness, so event time stands still through the outage; the engine rides it out, processes
/// every message once and raises exactly the alerts of a replay.
#[test]
fn broker_down_for_a_while_changes_nothing() {
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let Broker::Embedded(cluster) = &broker else { unreachable!("an embedded broker") };
    let topics = RunTopics::new(&rules, "outage");
    broker.create_topics(&topics.all(2));
    let lines = testkit::city(&rules, 3, 33);
    // Split at the median event time: producing both halves in turn gives every partition the
    // order one run of `produce` would.
    let ts = |l: &String| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        vigil_model::time::parse_rfc3339(v["ts"].as_str().unwrap()).unwrap()
    };
    let mut all: Vec<i64> = lines.lines.values().flatten().map(ts).collect();
    all.sort();
    let cut = all[all.len() / 2];
    let half = |early: bool| MemorySink {
        lines: lines
            .lines
            .iter()
            .map(|(s, ls)| (s.clone(), ls.iter().filter(|l| (ts(l) < cut) == early).cloned().collect()))
            .collect(),
    };
    let settings = broker.settings();
    let first = testkit::produce(&settings, &topics.events, &half(true));
    let progress = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = Metrics::default();
    let engine = {
        let (rules, settings, topics) = (Arc::clone(&rules), settings.clone(), topics.clone());
        let (progress, stop, metrics) = (Arc::clone(&progress), Arc::clone(&stop), metrics.clone());
        std::thread::spawn(move || {
            let cfg = EngineConfig {
                group: "test".into(),
                outputs: topics.outputs.clone(),
                event_topics: topics.events.clone(),
                idle_timeout: Duration::from_secs(3),
                options: Options {
                    scores: vigil_core::ScoreDetail::None,
                    score_levels: vigil_core::ScoreLevels::NONE,
                    score_filter: vigil_core::ScoreFilter::All,
                    score_every: None,
                },
                progress: Some(progress),
                ..EngineConfig::new(settings)
            };
            let mut engine = Engine::new(rules, cfg, metrics).unwrap();
            let summary = engine.run(&stop, &mut |_| {});
            (summary, engine.last_evaluated())
        })
    };
    let wait_for = |n: u64| {
        let t = Instant::now();
        while progress.load(Ordering::Relaxed) < n && t.elapsed() < LIMIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        progress.load(Ordering::Relaxed)
    };
    assert_eq!(wait_for(first), first, "the first half is consumed before the outage");
    cluster.broker_down(1).unwrap();
    let down = Instant::now();
    // The engine finishes the hour boundaries its last messages passed (settled: no change for
    // half a second), then time stands still: no partition may turn idle (and let time run on)
    // while the broker cannot be reached, although the outage outlasts the idle timeout.
    let (mut evaluations, mut since) = (metrics.evaluations.get(), Instant::now());
    while since.elapsed() < Duration::from_millis(500) && down.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(20));
        if metrics.evaluations.get() != evaluations {
            (evaluations, since) = (metrics.evaluations.get(), Instant::now());
        }
    }
    std::thread::sleep(Duration::from_secs(7).saturating_sub(down.elapsed()));
    assert_eq!(metrics.evaluations.get(), evaluations, "event time stands still while the broker is down");
    cluster.broker_up(1).unwrap();
    let second = testkit::produce(&settings, &topics.events, &half(false));
    let total = first + second;
    wait_for(total);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (summary, evaluated) = engine.join().unwrap();
    let summary = summary.expect("the engine survives the outage");
    assert_eq!((summary.processed, summary.rejected, summary.late), (total, 0, 0));
    let from_kafka = testkit::read_topic(&settings, &topics.outputs.alerts, QUIET);
    let from_replay = testkit::replay_alerts(&rules, &lines, evaluated);
    assert!(!from_replay.is_empty());
    assert_same("alerts after a broker outage", &from_kafka, &from_replay);
}
