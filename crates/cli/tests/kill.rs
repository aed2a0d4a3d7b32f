//! Crash recovery of `vigil run`, as a separate process against the embedded cluster (reached
//! over TCP like any broker): the process is killed with SIGKILL at random points — during
//! start-up, between checkpoints, while outputs are in flight — restarted from its checkpoint
//! each time, and finally run to the end of the stream. The alerts and scores it published
//! must equal those of a straight run: none lost, and every duplicate (outputs after the last
//! checkpoint are published again) byte-identical to the first copy and de-duplicable by key.
//!
//! The Parquet archive the runs write along the way must hold every consumed event, score and
//! alert exactly once: files committed after the checkpoint a restart resumes from are
//! discarded before that interval is archived again.
//!
//! `VIGIL_KILLS` sets the number of kills (default 20) and `VIGIL_KILL_SEED` the seed of the
//! kill points (printed, so a failure can be reproduced).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use vigil_engine::testkit::{self, Broker, RunTopics, alert_key, assert_same, dedupe, free_addr, score_key};

/// Writes the configuration of one run: the shared event topics, this run's output topics, a
/// short checkpoint interval so that kills land between checkpoints, and a short idle timeout.
fn config(dir: &Path, brokers: &str, topics: &RunTopics, http: &str, delivery: &str) -> PathBuf {
    let events: Vec<String> = topics.events.iter().map(|(s, t)| format!("{s} = \"{t}\"")).collect();
    let o = &topics.outputs;
    let text = format!(
        r#"[kafka]
brokers = "{brokers}"
group = "kill-test"

[topics]
scores = "{}"
alerts = "{}"
dlq = "{}"
late = "{}"
commits = "{}"
events = {{ {} }}

[engine]
rules = "{}"
checkpoint_dir = "{}"
archive_dir = "{}"
checkpoint_every = "150ms"
idle_timeout = "1s"
delivery = "{delivery}"
# City and district scores: the street level would outgrow what the embedded cluster keeps.
score_levels = ["city", "district"]
http_addr = "{http}"
"#,
        o.scores,
        o.alerts,
        o.dlq,
        o.late,
        o.commits,
        events.join(", "),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules").display(),
        dir.join("checkpoints").display(),
        dir.join("archive").display(),
    );
    let path = dir.join("vigil.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &Path, exit_when_idle: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(["run", "--config"]).arg(config).stdout(Stdio::null()).stderr(Stdio::piped());
    if exit_when_idle {
        cmd.args(["--exit-when-idle", "2s"]);
    }
    cmd.spawn().unwrap()
}

/// Events consumed by the running process so far, from its metrics endpoint.
fn consumed(addr: &str) -> Option<u64> {
    testkit::metric_sum(addr, "vigil_events_consumed_total").map(|x| x as u64)
}

/// When the run's current checkpoint was written, if there is one.
fn checkpoint_time(run: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(run.join("checkpoints/checkpoint")).and_then(|m| m.modified()).ok()
}

/// Runs to the end of the stream and checks the exit.
fn finish(config: &Path) {
    let out = start(config, true).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vigil run failed: {stderr}");
}

#[test]
fn killed_at_random_points_vigil_run_publishes_what_a_straight_run_does() {
    kill_loop("at-least-once");
}

/// The same in exactly-once mode: every restart resumes from the checkpoint whose transaction
/// the commit topic shows last, never refuses to start, and loses nothing. The embedded cluster
/// does not hide what an aborted transaction wrote (see crates/engine/tests/transactions.rs), so
/// duplicates of an interval cut short by a kill can still be read here, byte-identical.
#[test]
fn killed_at_random_points_in_exactly_once_mode_vigil_run_loses_nothing() {
    kill_loop("exactly-once");
}

fn kill_loop(delivery: &str) {
    let kills: usize = std::env::var("VIGIL_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("VIGIL_KILL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("kills: {kills}, VIGIL_KILL_SEED={seed}");
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        // xorshift64: enough to spread kill points; the seed makes a run repeatable.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };

    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let brokers = broker.settings().brokers;
    let straight = RunTopics::new(&rules, &format!("straight-{delivery}"));
    let mut killed = RunTopics::new(&rules, &format!("killed-{delivery}"));
    killed.events = straight.events.clone();
    broker.create_topics(&straight.all(2));
    // The killed run publishes much twice (in exactly-once mode the embedded cluster does not
    // hide what a killed transaction wrote): four times the score partitions keep its copies
    // within the 5 MB the embedded cluster keeps per partition, which one run outgrew.
    let outputs: Vec<(String, i32)> = killed
        .outputs_only()
        .into_iter()
        .map(|(t, p)| if t == killed.outputs.scores { (t, 4 * p) } else { (t, p) })
        .collect();
    broker.create_topics(&outputs);
    let lines = testkit::city(&rules, 11, 33);
    let total = testkit::produce(&broker.settings(), &straight.events, &lines);

    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kill-test-{delivery}"));
    let _ = std::fs::remove_dir_all(&base);
    let (a, b) = (base.join("straight"), base.join("killed"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    finish(&config(&a, &brokers, &straight, &free_addr(), delivery));

    let mut checkpoints = 0;
    let mut last_written = None;
    for round in 0..kills {
        let http = free_addr();
        let cfg = config(&b, &brokers, &killed, &http, delivery);
        let mut child = start(&cfg, false);
        // Every third kill lands during start-up or restore; the others once the process has
        // consumed a random share of the stream.
        let t = Instant::now();
        if round % 3 == 0 {
            std::thread::sleep(Duration::from_millis(50 + next(700)));
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                panic!("vigil run exited ({status}) before it was killed: {err}");
            }
        } else {
            // These rounds are killed between checkpoints: first the round waits for one (the
            // engine also checkpoints while idle). Catching up on a backlog, an interval can
            // take far longer than `checkpoint_every` (the archive's Parquet files are written
            // at each checkpoint), and a kill on consumption alone then often fell before the
            // first one.
            while t.elapsed() < Duration::from_secs(30) && checkpoint_time(&b) == last_written {
                assert!(child.try_wait().unwrap().is_none(), "vigil run exited before it was killed");
                std::thread::sleep(Duration::from_millis(5));
            }
            // A threshold beyond what is left after the restore is never reached: the process
            // then goes quiet and is killed once it has been for a second.
            let threshold = 1 + next(total / 2);
            let (mut last, mut changed) = (None, Instant::now());
            while t.elapsed() < Duration::from_secs(90) && changed.elapsed() < Duration::from_secs(1) {
                assert!(child.try_wait().unwrap().is_none(), "vigil run exited before it was killed");
                let c = consumed(&http);
                if c.is_some_and(|c| c >= threshold) {
                    break;
                }
                if c.is_some() && c != last {
                    (last, changed) = (c, Instant::now());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        child.kill().unwrap(); // SIGKILL: no shutdown path runs.
        child.wait().unwrap();
        // Count the rounds that wrote a checkpoint before they were killed.
        let written = checkpoint_time(&b);
        if written.is_some() && written != last_written {
            checkpoints += 1;
        }
        last_written = written;
    }
    finish(&config(&b, &brokers, &killed, &free_addr(), delivery));
    // A guard on the test itself (kill points are random; a round killed before its first
    // checkpoint still tests a restart, only not one between checkpoints).
    assert!(checkpoints >= kills / 5, "only {checkpoints} of {kills} rounds checkpointed before the kill");

    let quiet = Duration::from_secs(3);
    let settings = broker.settings();
    let want_alerts = testkit::read_topic(&settings, &straight.outputs.alerts, quiet);
    let want_scores = testkit::read_topic(&settings, &straight.outputs.scores, quiet);
    assert!(!want_alerts.is_empty() && !want_scores.is_empty());
    let (straight_alerts, d) = dedupe("alert", &want_alerts, alert_key);
    assert_eq!(d, 0, "a straight run publishes every alert once");
    let (mut want_scores, d) = dedupe("score", &want_scores, score_key);
    assert_eq!(d, 0, "a straight run publishes every score once");
    // Nothing fell off the topic: every hour from the first to the last has all 9 regions.
    let hours: std::collections::BTreeSet<String> = want_scores
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["window_end"].as_str().unwrap().to_string())
        .collect();
    let span = |s: &String| vigil_model::time::parse_rfc3339(s).unwrap();
    let n_hours = (span(hours.last().unwrap()) - span(hours.first().unwrap())) / vigil_model::time::HOUR + 1;
    assert_eq!((hours.len() as i64, want_scores.len() as i64), (n_hours, 9 * n_hours), "complete score topic");

    let (alerts, alert_dups) =
        dedupe("alert", &testkit::read_topic(&settings, &killed.outputs.alerts, quiet), alert_key);
    let (mut scores, score_dups) =
        dedupe("score", &testkit::read_topic(&settings, &killed.outputs.scores, quiet), score_key);
    eprintln!(
        "{delivery}, {kills} kills ({checkpoints} after a checkpoint of their own): {} alerts ({alert_dups} duplicates), {} scores ({score_dups} duplicates)",
        alerts.len(),
        scores.len()
    );
    assert_same("alerts after kills", &alerts, &straight_alerts);
    // Scores are spread over partitions by region: compare them in one order.
    scores.sort();
    want_scores.sort();
    assert_same("scores after kills", &scores, &want_scores);

    // The archives: every event once, every score and alert once, equal to the straight run's.
    let sql = |dir: &Path, q: &str| common::archive_sql(&dir.join("archive"), q);
    let counts = common::ARCHIVE_COUNTS;
    let want = format!("{total},{n},{n},{m},{m}", n = straight_alerts.len(), m = want_scores.len());
    assert_eq!(sql(&a, counts), vec![want.clone()], "the straight run's archive");
    assert_eq!(sql(&b, counts), vec![want], "the killed run's archive: nothing lost, nothing twice");
    // Events of one source, region and time can tie; sorted whole rows compare as a multiset.
    let all_events = "SELECT * FROM events";
    let (mut ea, mut eb) = (sql(&a, all_events), sql(&b, all_events));
    ea.sort();
    eb.sort();
    assert!(ea == eb, "the archived events differ");
    let all_alerts = "SELECT * FROM alerts ORDER BY alert_id, seq";
    assert_same("archived alerts", &sql(&b, all_alerts), &sql(&a, all_alerts));

    if delivery == "exactly-once" {
        // The last transaction on the commit topic is the checkpoint the directory holds.
        let numbers: Vec<u64> = testkit::read_topic(&settings, &killed.outputs.commits, quiet)
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["checkpoint"].as_u64().unwrap())
            .collect();
        let held = vigil_engine::checkpoint::read(&b.join("checkpoints"), &mut |_| {}).unwrap().unwrap();
        assert!(held.txn.is_some() && held.txn == numbers.last().copied(), "{:?} vs {numbers:?}", held.txn);
        assert_eq!(numbers.iter().max(), numbers.last(), "transaction numbers only grow");
    }
}

/// Without checkpoints every start reads the topics from the beginning and archives what it
/// reads: the run before's files, covered by no checkpoint, go first, so that two runs to the
/// end of the stream leave every event archived once.
#[test]
fn without_checkpoints_a_second_run_archives_every_event_once() {
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let settings = broker.settings();
    let topics = RunTopics::new(&rules, "no-checkpoints");
    broker.create_topics(&topics.all(2));
    let total = testkit::produce(&settings, &topics.events, &testkit::city(&rules, 13, 5));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kill-test-no-checkpoints");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = config(&dir, &settings.brokers, &topics, &free_addr(), "at-least-once");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text: String = text.lines().filter(|l| !l.starts_with("checkpoint_dir")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&cfg, text).unwrap();
    let count = || common::archive_sql(&dir.join("archive"), "SELECT count(*) FROM events");
    finish(&cfg);
    assert_eq!(count(), vec![total.to_string()], "the first run archives every event");
    finish(&cfg);
    assert_eq!(count(), vec![total.to_string()], "the second run archives every event again, in place of the first's");
}
