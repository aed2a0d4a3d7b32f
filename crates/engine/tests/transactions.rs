//! Exactly-once delivery on the embedded cluster, whose transaction coordinator speaks the
//! whole protocol (producer ids and epochs, fencing, transactional offset commits, commit and
//! abort). What it does not do is act on an abort: librdkafka's mock cluster neither writes
//! abort markers nor filters aborted records for `read_committed` consumers, nor keeps
//! transactionally committed offsets (rdkafka_mock_handlers.c, EndTxn and TxnOffsetCommit).
//! Nor does it fence: a second registration of a transactional id gets a new producer id while
//! the first stays valid. These tests therefore prove what does not depend on the broker: every
//! record once across restarts, the step back from a checkpoint whose transaction did not
//! commit, and one instance per checkpoint directory. What a crash mid-transaction leaves
//! visible, and fencing, are the broker's part.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vigil_core::{Options, ScoreDetail};
use vigil_engine::engine::RunSummary;
use vigil_engine::testkit::{self, Broker, RunTopics, assert_same};
use vigil_engine::{Delivery, Engine, EngineConfig, Metrics};
use vigil_kafka::KafkaSettings;
use vigil_rules::RuleSet;

const LIMIT: Duration = Duration::from_secs(120);
const QUIET: Duration = Duration::from_secs(3);

fn config(settings: &KafkaSettings, topics: &RunTopics, dir: &Path, progress: &Arc<AtomicU64>) -> EngineConfig {
    EngineConfig {
        group: "txn-test".into(),
        outputs: topics.outputs.clone(),
        event_topics: topics.events.clone(),
        idle_timeout: Duration::from_secs(2),
        options: Options {
            scores: ScoreDetail::Summary,
            score_levels: vigil_core::ScoreLevels(0b0011),
            score_filter: vigil_core::ScoreFilter::All,
            score_every: None,
        },
        progress: Some(Arc::clone(progress)),
        state: Some(vigil_engine::StateLocation::Dir(dir.to_path_buf())),
        checkpoint_every: Duration::from_millis(200),
        delivery: Delivery::ExactlyOnce,
        ..EngineConfig::new(settings.clone())
    }
}

/// Runs an exactly-once engine until it has processed `until` messages (then stops it
/// gracefully); returns what it did and the last hour it evaluated.
fn run(
    rules: &Arc<RuleSet>,
    settings: &KafkaSettings,
    topics: &RunTopics,
    dir: &Path,
    until: u64,
) -> (RunSummary, i64) {
    let progress = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut engine =
        Engine::new(Arc::clone(rules), config(settings, topics, dir, &progress), Metrics::default()).unwrap();
    let stopper = {
        let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
        std::thread::spawn(move || {
            let t = Instant::now();
            // Stopped as soon as it gets there: a run that overshot by a few hundred
            // milliseconds' worth of messages left the next run nothing to do.
            while progress.load(Ordering::Relaxed) < until && t.elapsed() < LIMIT {
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    let summary = engine.run(&stop, &mut |_| {}).unwrap();
    stopper.join().unwrap();
    (summary, engine.last_evaluated().unwrap())
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Records keyed as consumers de-duplicate them; panics on a key seen twice.
fn once(what: &str, lines: &[String], key: impl Fn(&serde_json::Value) -> String) {
    let mut seen = std::collections::HashSet::new();
    for l in lines {
        let k = key(&serde_json::from_str(l).unwrap());
        assert!(seen.insert(k.clone()), "{what} {k} published twice");
    }
}

fn alert_key(v: &serde_json::Value) -> String {
    format!("{}#{}", v["alert_id"], v["seq"])
}

fn score_key(v: &serde_json::Value) -> String {
    format!("{}@{}", v["region"], v["window_end"])
}

/// The checkpoint numbers on the commit topic, in order.
fn commits(settings: &KafkaSettings, topics: &RunTopics) -> Vec<u64> {
    testkit::read_topic(settings, &topics.outputs.commits, QUIET)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["group"], "txn-test");
            v["checkpoint"].as_u64().unwrap()
        })
        .collect()
}

/// Stopped twice and restarted, an exactly-once engine publishes every alert and score once,
/// the alerts equal a replay's, and each checkpoint's transaction is on the commit topic in
/// order, the last one being the checkpoint the directory holds.
#[test]
fn exactly_once_across_restarts_publishes_every_record_once() {
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let settings = broker.settings();
    let topics = RunTopics::new(&rules, "txn");
    broker.create_topics(&topics.all(2));
    let lines = testkit::city(&rules, 5, 33);
    let total = testkit::produce(&settings, &topics.events, &lines);
    let dir = fresh_dir("txn-restarts");
    let (a, _) = run(&rules, &settings, &topics, &dir, total / 3);
    let (b, _) = run(&rules, &settings, &topics, &dir, (total * 2 / 3).saturating_sub(a.processed).max(1));
    let (c, evaluated) = run(&rules, &settings, &topics, &dir, total.saturating_sub(a.processed + b.processed));
    assert_eq!(a.processed + b.processed + c.processed, total, "every message processed once");
    assert!(a.processed < total && b.processed > 0, "the restarts fell mid-stream: {a:?} {b:?}");

    let alerts = testkit::read_topic(&settings, &topics.outputs.alerts, QUIET);
    once("alert", &alerts, alert_key);
    let scores = testkit::read_topic(&settings, &topics.outputs.scores, QUIET);
    once("score", &scores, score_key);
    assert!(!scores.is_empty());
    let from_replay = testkit::replay_alerts(&rules, &lines, Some(evaluated));
    assert!(!from_replay.is_empty());
    assert_same("alerts in exactly-once mode", &alerts, &from_replay);

    let numbers = commits(&settings, &topics);
    assert!(numbers.len() >= 3, "a transaction per checkpoint, at least one per run: {numbers:?}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "numbered in order: {numbers:?}");
    let held = vigil_engine::checkpoint::read(&dir, &mut |_| {}).unwrap().unwrap();
    assert_eq!(held.txn, numbers.last().copied(), "the directory holds the last committed checkpoint");
}

/// A crash after a checkpoint file was written but before its transaction committed leaves the
/// directory one step ahead of the commit topic. The restart steps back to the committed
/// checkpoint (the forged newer one claims every message consumed; resuming it would skip the
/// rest of the stream) and the run still equals a replay, each alert once.
#[test]
fn a_checkpoint_whose_transaction_did_not_commit_is_stepped_back_from() {
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let settings = broker.settings();
    let topics = RunTopics::new(&rules, "txn-step");
    broker.create_topics(&topics.all(2));
    let lines = testkit::city(&rules, 6, 33);
    let total = testkit::produce(&settings, &topics.events, &lines);
    let dir = fresh_dir("txn-step-back");
    let (a, _) = run(&rules, &settings, &topics, &dir, total / 2);
    let committed = vigil_engine::checkpoint::read(&dir, &mut |_| {}).unwrap().unwrap();
    let mut ahead = committed.clone();
    ahead.txn = committed.txn.map(|t| t + 1);
    for (_, _, offset) in &mut ahead.offsets {
        *offset += 1_000_000;
    }
    vigil_engine::checkpoint::write(&dir, &ahead).unwrap();

    let (b, evaluated) = run(&rules, &settings, &topics, &dir, total - a.processed);
    assert_eq!(a.processed + b.processed, total, "resumed from the committed checkpoint");
    let alerts = testkit::read_topic(&settings, &topics.outputs.alerts, QUIET);
    once("alert", &alerts, alert_key);
    assert_same("alerts after a step back", &alerts, &testkit::replay_alerts(&rules, &lines, Some(evaluated)));
    // Numbers go on past the uncommitted one: no two checkpoints share a number.
    let numbers = commits(&settings, &topics);
    let skipped = ahead.txn.unwrap();
    assert!(!numbers.contains(&skipped) && numbers.iter().any(|&n| n > skipped), "{numbers:?}");
}

/// A second instance cannot take over a checkpoint directory while the first one runs: it
/// refuses to start, saying why, before it registers its producer (which on a real broker
/// would fence the first one off), so the first one goes on unharmed.
#[test]
fn a_second_instance_cannot_share_the_checkpoint_directory() {
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let settings = broker.settings();
    let topics = RunTopics::new(&rules, "txn-lock");
    broker.create_topics(&topics.all(2));
    let lines = testkit::city(&rules, 7, 33);
    let total = testkit::produce(&settings, &topics.events, &lines);
    let dir = fresh_dir("txn-lock");
    let progress = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let first = {
        let (rules, cfg, stop) = (Arc::clone(&rules), config(&settings, &topics, &dir, &progress), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut engine = Engine::new(rules, cfg, Metrics::default()).unwrap();
            engine.run(&stop, &mut |_| {})
        })
    };
    let t = Instant::now();
    while progress.load(Ordering::Relaxed) < total / 4 && t.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = Engine::new(Arc::clone(&rules), config(&settings, &topics, &dir, &Arc::default()), Metrics::default());
    let err = second.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("in use by another vigil instance"), "{err}");
    stop.store(true, Ordering::Relaxed);
    let summary = first.join().unwrap().expect("the first instance goes on");
    assert!(summary.processed >= total / 4);
}
