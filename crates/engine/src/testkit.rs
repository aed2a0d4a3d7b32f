//! Test and benchmark support (feature `testkit`): a broker to run against (the embedded
//! cluster, or a real one named by `VIGIL_TEST_BROKERS`), a small generated city produced into
//! the event topics, an independent reader for output topics, and the alerts `vigil replay`
//! raises over the same events, which every Kafka run must reproduce.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_core::{Options, Pipeline, ScoreDetail};
use vigil_kafka::{Embedded, KafkaSettings, Message};
use vigil_model::time::{DAY, HOUR, format_utc};
use vigil_rules::RuleSet;
use vigil_sim::{GenConfig, Incident, IncidentKind, IncidentPlan, MemorySink};

use crate::OutputTopics;

/// The environment variable naming a real broker for the end-to-end tests.
pub const BROKERS_ENV: &str = "VIGIL_TEST_BROKERS";

/// The default rule set of the repository.
pub fn default_rules() -> Arc<RuleSet> {
    Arc::new(vigil_rules::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")).unwrap())
}

/// A broker for a test: the embedded cluster, or an external one (which must create topics
/// through the admin API; tansu does not create them on first use).
pub enum Broker {
    Embedded(Embedded),
    External(String),
}

impl Broker {
    pub fn embedded() -> Broker {
        Broker::Embedded(Embedded::start(1).unwrap())
    }

    /// The broker named by `VIGIL_TEST_BROKERS`, or the embedded cluster when it is unset.
    pub fn from_env() -> Broker {
        match std::env::var(BROKERS_ENV) {
            Ok(b) if !b.is_empty() => Broker::External(b),
            _ => Broker::embedded(),
        }
    }

    pub fn is_external(&self) -> bool {
        matches!(self, Broker::External(_))
    }

    pub fn settings(&self) -> KafkaSettings {
        match self {
            Broker::Embedded(e) => KafkaSettings::new(e.bootstrap_servers()),
            Broker::External(b) => KafkaSettings::new(b.clone()),
        }
    }

    pub fn create_topics(&self, topics: &[(String, i32)]) {
        match self {
            Broker::Embedded(e) => topics.iter().for_each(|(t, p)| e.create_topic(t, *p).unwrap()),
            Broker::External(_) => vigil_kafka::ensure_topics(&self.settings(), topics).unwrap(),
        }
    }
}

/// Topic names of one test run: unique per `tag` and process, so that runs sharing a broker
/// never read each other's messages.
#[derive(Clone, Debug)]
pub struct RunTopics {
    /// Source id -> event topic.
    pub events: BTreeMap<String, String>,
    pub outputs: OutputTopics,
}

impl RunTopics {
    pub fn new(rules: &RuleSet, tag: &str) -> RunTopics {
        let nonce = format!(
            "{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() % 1_000_000)
        );
        let events = rules.sources.iter().map(|s| (s.id.clone(), format!("{}.{nonce}", s.topic))).collect();
        let d = OutputTopics::default();
        let outputs = OutputTopics {
            scores: format!("{}.{nonce}", d.scores),
            alerts: format!("{}.{nonce}", d.alerts),
            dlq: format!("{}.{nonce}", d.dlq),
            late: format!("{}.{nonce}", d.late),
            commits: format!("{}.{nonce}", d.commits),
        };
        RunTopics { events, outputs }
    }

    /// Every topic with its partition count: `event_partitions` for the inputs, one for the
    /// alert, dead-letter and late topics (a single partition keeps their order comparable) and
    /// `SCORE_PARTITIONS` for scores, the bulkiest output: the embedded cluster keeps at most
    /// 5 MB per partition and drops the oldest messages beyond that.
    pub fn all(&self, event_partitions: i32) -> Vec<(String, i32)> {
        let o = &self.outputs;
        self.events
            .values()
            .map(|t| (t.clone(), event_partitions))
            .chain(
                [(&o.scores, SCORE_PARTITIONS), (&o.alerts, 1), (&o.dlq, 1), (&o.late, 1), (&o.commits, 1)]
                    .map(|(t, p)| (t.clone(), p)),
            )
            .collect()
    }

    /// The output topics alone.
    pub fn outputs_only(&self) -> Vec<(String, i32)> {
        self.all(1).split_off(self.events.len())
    }
}

/// Partitions of the score topic in tests.
pub const SCORE_PARTITIONS: i32 = 4;

/// A small generated city (a quarter of the default volume) with one strong burst of negative
/// opinion in a district after four weeks of history.
pub fn city(rules: &RuleSet, seed: u64, days: u32) -> MemorySink {
    let r = &rules.regions;
    let start = vigil_sim::default_start();
    let district = r.codes[r.levels.iter().position(|&l| l == 1).unwrap()].clone();
    let cfg = GenConfig {
        seed,
        days,
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
    vigil_sim::generate(&cfg, &r.specs(), &mut lines).unwrap();
    lines
}

/// Produces every line to its source's topic (keyed by region, as upstream systems do), all
/// sources interleaved in event-time order as live feeds arrive, and waits for the
/// acknowledgements. Returns how many messages were produced.
pub fn produce(settings: &KafkaSettings, topics: &BTreeMap<String, String>, lines: &MemorySink) -> u64 {
    let producer = vigil_kafka::producer(settings).unwrap();
    let mut all: Vec<(i64, &str, String, &str)> = Vec::new();
    for (source, ls) in &lines.lines {
        for l in ls {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            // Malformed lines (tests of refusals) sort by whatever time they carry, or first.
            let ts = match &v["ts"] {
                serde_json::Value::String(t) => vigil_model::time::parse_rfc3339(t).unwrap_or(0),
                other => other.as_i64().unwrap_or(0),
            };
            all.push((ts, &topics[source], v["region"].as_str().unwrap_or_default().to_string(), l));
        }
    }
    all.sort_by_key(|x| x.0);
    let mut total = 0u64;
    for (_, topic, key, line) in all {
        vigil_kafka::send(&producer, topic, &key, line.as_bytes(), None).unwrap();
        total += 1;
    }
    vigil_kafka::flush(&producer, Duration::from_secs(60)).unwrap();
    total
}

/// Everything on a topic, read by a separate consumer until it has been quiet for `quiet` (in
/// order for a single-partition topic; partitions interleave otherwise).
pub fn read_topic(settings: &KafkaSettings, topic: &str, quiet: Duration) -> Vec<String> {
    let consumer =
        vigil_kafka::assigned_consumer(settings, "reader", &[topic.to_string()], &Default::default()).unwrap().consumer;
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap());
            last = Instant::now();
        }
    }
    out
}

/// The alerts `vigil replay` raises over the same events (as JSON lines), up to the hour
/// `evaluated` when given.
pub fn replay_alerts(rules: &Arc<RuleSet>, lines: &MemorySink, evaluated: Option<i64>) -> Vec<String> {
    let inputs = lines
        .lines
        .iter()
        .map(|(source, ls)| {
            vigil_replay::Input::lines(
                format!("{source}.jsonl"),
                rules.source_index(source),
                Box::new(std::io::Cursor::new((ls.join("\n") + "\n").into_bytes())),
            )
        })
        .collect();
    let mut p = Pipeline::new(Arc::clone(rules), Options { scores: ScoreDetail::None, score_levels: [false; 4] });
    let mut sink = vigil_replay::MemSink::default();
    vigil_replay::replay(&mut p, inputs, &mut sink).unwrap();
    let until = evaluated.map(format_utc);
    sink.alerts
        .iter()
        .filter(|a| until.as_ref().is_none_or(|u| a.window_end <= *u))
        .map(|a| serde_json::to_string(a).unwrap())
        .collect()
}

/// Panics with the first difference (not the whole lists) when two record lists differ.
pub fn assert_same(what: &str, got: &[String], want: &[String]) {
    if got != want {
        let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!(
            "{what} differ: got {} vs want {}; first difference at {i}:\n got: {}\nwant: {}",
            got.len(),
            want.len(),
            got.get(i).map_or("-", |s| s.as_str()),
            want.get(i).map_or("-", |s| s.as_str())
        );
    }
}
