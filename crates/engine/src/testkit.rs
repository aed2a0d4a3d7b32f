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

/// Fails the test under `CI=true` when `what` (an environment variable that `.ci/run` sets for a
/// real broker or tool) is missing, so that a CI that lost a component cannot stay green; a
/// local run without it goes on with what it has.
pub fn require_in_ci(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {what} is not set: .ci/run starts that component and sets it");
    }
}

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
            _ => {
                require_in_ci(BROKERS_ENV);
                Broker::embedded()
            }
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
    /// A state topic, for runs that checkpoint to Kafka.
    pub state: String,
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
        RunTopics { events, outputs, state: format!("vigil.state.{nonce}") }
    }

    /// Every topic with its partition count: `event_partitions` for the inputs, one for the
    /// alert, dead-letter and late topics (a single partition keeps their order comparable) and
    /// `SCORE_PARTITIONS` for scores and state, the bulkiest: the embedded cluster keeps at most
    /// 5 MB per partition and drops the oldest messages beyond that.
    pub fn all(&self, event_partitions: i32) -> Vec<(String, i32)> {
        let o = &self.outputs;
        self.events
            .values()
            .map(|t| (t.clone(), event_partitions))
            .chain(
                [
                    (&o.scores, SCORE_PARTITIONS),
                    (&o.alerts, 1),
                    (&o.dlq, 1),
                    (&o.late, 1),
                    (&o.commits, 1),
                    (&self.state, SCORE_PARTITIONS),
                ]
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
    produce_keyed(settings, topics, lines, &|region| region.to_string(), None)
}

/// The key of an event of `region` in a scale-out deployment: its district's code (the region's
/// own code above the district level).
pub fn district_key(rules: &RuleSet, region: &str) -> String {
    partition_key(rules, region, 1)
}

/// The key of an event of `region` when tasks are cut at region level `level`: the code of its
/// region at that level (the region's own code above it).
pub fn partition_key(rules: &RuleSet, region: &str, level: u8) -> String {
    let r = &rules.regions;
    match r.lookup(region) {
        Some(i) => {
            let chain = &r.chains[i as usize];
            let d = chain.iter().find(|&&a| r.levels[a as usize] == level).copied().unwrap_or(i);
            r.codes[d as usize].clone()
        }
        None => region.to_string(),
    }
}

/// [`produce`] with the key of each event made from its region by `key`, spread evenly over
/// `over` of wall time when given (a live feed), at once otherwise.
pub fn produce_keyed(
    settings: &KafkaSettings,
    topics: &BTreeMap<String, String>,
    lines: &MemorySink,
    key: &dyn Fn(&str) -> String,
    over: Option<Duration>,
) -> u64 {
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
            all.push((ts, &topics[source], key(v["region"].as_str().unwrap_or_default()), l));
        }
    }
    all.sort_by_key(|x| x.0);
    let started = Instant::now();
    let n = all.len().max(1) as f64;
    let mut total = 0u64;
    for (i, (_, topic, key, line)) in all.into_iter().enumerate() {
        if let Some(over) = over
            && i % 200 == 0
        {
            let due = over.mul_f64(i as f64 / n);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            vigil_kafka::poll(&producer);
        }
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

/// The distinct keys of every record on `topic` (read to its end, `read_committed`).
pub fn topic_keys(settings: &KafkaSettings, topic: &str) -> std::collections::BTreeSet<String> {
    let mut keys = std::collections::BTreeSet::new();
    vigil_kafka::scan_committed(settings, topic, &mut |k, _| {
        keys.insert(String::from_utf8_lossy(k.unwrap_or_default()).into_owned());
    })
    .unwrap();
    keys
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
    let mut p = Pipeline::new(
        Arc::clone(rules),
        Options {
            scores: ScoreDetail::None,
            score_levels: vigil_core::ScoreLevels::NONE,
            score_filter: vigil_core::ScoreFilter::All,
            score_every: None,
        },
    );
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

/// De-duplicates records by key, checking that every duplicate equals the first copy byte for
/// byte. Returns the first copies in order and the number of duplicates.
pub fn dedupe(what: &str, lines: &[String], key: impl Fn(&serde_json::Value) -> String) -> (Vec<String>, usize) {
    let mut first: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out: Vec<String> = Vec::new();
    let mut dups = 0;
    for l in lines {
        let k = key(&serde_json::from_str(l).unwrap());
        match first.get(&k) {
            Some(&i) => {
                assert_eq!(&out[i], l, "a duplicate {what} differs from its first copy");
                dups += 1;
            }
            None => {
                first.insert(k, out.len());
                out.push(l.clone());
            }
        }
    }
    (out, dups)
}

/// The de-duplication key of an alert record: (`alert_id`, `seq`).
pub fn alert_key(v: &serde_json::Value) -> String {
    format!("{}#{}", v["alert_id"], v["seq"])
}

/// The de-duplication key of a score record: (region, window end).
pub fn score_key(v: &serde_json::Value) -> String {
    format!("{}@{}", v["region"], v["window_end"])
}

/// A local address nobody listens on yet.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// The sum of every series of a metric on a running vigil's `/metrics` (`None` while it does not
/// answer), e.g. `vigil_events_consumed_total`.
pub fn metric_sum(addr: &str, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let total = body
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    Some(total)
}
