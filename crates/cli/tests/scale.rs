//! Scale-out across processes: two `vigil run --scale-out` instances in one consumer group share
//! the event partitions of a live feed (events keyed by district), and one of them is stopped
//! mid-stream (SIGTERM, or SIGKILL in a second test), so that its tasks move to the other, which
//! restores their checkpoints and runs to the end. The alerts and scores they publish together (city scores from the roll-up
//! included) must equal those of a single instance in the same mode over the same events:
//! none lost, every duplicate byte-identical to its first copy. A third test runs the SIGTERM case
//! in exactly-once mode. The pair shares no checkpoint directory: its tasks and roll-up
//! checkpoint to a state topic, so a task's state moves between the instances through the
//! brokers alone (the single instance checkpoints to a directory, so the two stores are
//! compared too). Every run also archives (each task and the roll-up in files of their own), the
//! pair's instances each to a directory of their own (a disk of their own), and the two
//! archives together must hold every event, score and alert once, as the single instance's
//! does: after SIGKILL the killed instance is started again on its own disk, as an operator or
//! Kubernetes would, and removes what it archived that no checkpoint covers. A last test runs two
//! instances outside scale-out on one state topic: the second stands by until the first stops.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use vigil_engine::testkit::{self, Broker, RunTopics, alert_key, assert_same, dedupe, free_addr, score_key};

/// Event partitions: four tasks.
const PARTITIONS: i32 = 4;

/// A run's configuration; with `state_topic` its checkpoints go to the run's state topic,
/// otherwise to a directory of its own, every `every` ("300ms").
fn config(
    dir: &Path,
    brokers: &str,
    group: &str,
    topics: &RunTopics,
    delivery: &str,
    state_topic: bool,
    every: &str,
) -> PathBuf {
    let events: Vec<String> = topics.events.iter().map(|(s, t)| format!("{s} = \"{t}\"")).collect();
    let store = if state_topic {
        format!("state_topic = \"{}\"", topics.state)
    } else {
        format!("checkpoint_dir = \"{}\"", dir.join("checkpoints").display())
    };
    let o = &topics.outputs;
    let text = format!(
        r#"[kafka]
brokers = "{brokers}"
group = "{group}"

[topics]
scores = "{}"
alerts = "{}"
dlq = "{}"
late = "{}"
commits = "{}"
events = {{ {} }}

[engine]
rules = "{}"
{store}
archive_dir = "{}"
checkpoint_every = "{every}"
# Longer than the feed: no partition turns idle mid-stream, which would make the results depend
# on when events arrive (a partition that a busy broker leaves unfetched for the timeout moves
# time past its events), not on where tasks run. The run still ends on --exit-when-idle.
idle_timeout = "60s"
scale_out = true
delivery = "{delivery}"
score_levels = ["city", "district"]
"#,
        o.scores,
        o.alerts,
        o.dlq,
        o.late,
        o.commits,
        events.join(", "),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules").display(),
        dir.join("archive").display(),
    );
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("vigil.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `vigil run`; with `exit_when_idle`, it ends after that long with nothing to read.
fn start(config: &Path, http: &str, exit_when_idle: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(["run", "--config"]).arg(config).args(["--http-addr", http]);
    if let Some(quiet) = exit_when_idle {
        cmd.args(["--exit-when-idle", quiet]);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Waits for the process to exit by itself, within `limit`, and returns its standard error.
fn wait(mut child: Child, what: &str, limit: Duration) -> String {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("{what} did not finish within {limit:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{what} failed: {stderr}");
    stderr
}

fn consumed(addr: &str) -> f64 {
    testkit::metric_sum(addr, "vigil_events_consumed_total").unwrap_or(0.0)
}

/// The task sets an instance was assigned, in order, from its log.
fn assignments(stderr: &str) -> Vec<String> {
    stderr.lines().filter_map(|l| l.strip_prefix("vigil: assigned tasks ")).map(str::to_string).collect()
}

/// Stopped with SIGTERM, an instance hands its tasks over cleanly: each writes its final
/// checkpoint before the group moves it, so nothing is published twice.
#[test]
fn two_instances_one_stopped_mid_stream_publish_what_one_instance_does() {
    pair_with_one_stopped("TERM", "at-least-once");
}

/// Killed with SIGKILL, an instance leaves its tasks at their last checkpoint; the group moves
/// them once its session times out, and what they published since is published again, byte for
/// byte. If the survivor finished its own tasks before the group noticed, a third instance
/// started afterwards picks up the rest, as an operator's restart would.
#[test]
fn two_instances_one_killed_mid_stream_lose_nothing() {
    pair_with_one_stopped("KILL", "at-least-once");
}

/// In exactly-once mode each task commits its outputs and offsets in transactions of its own
/// (`transactional.id` per task), and the task that moves on SIGTERM resumes from the checkpoint
/// of its last committed transaction. A clean handover again publishes nothing twice, and a
/// `read_committed` reader sees what one instance in the same mode publishes. tansu 0.6 refuses
/// transactions, so this runs on the embedded cluster, which implements the coordinator.
#[test]
fn two_instances_in_exactly_once_mode_one_stopped_mid_stream_publish_what_one_instance_does() {
    pair_with_one_stopped("TERM", "exactly-once");
}

fn pair_with_one_stopped(signal: &str, delivery: &str) {
    let rules = testkit::default_rules();
    // A real broker when VIGIL_TEST_BROKERS names one (tansu in CI), the embedded cluster otherwise
    // and for transactions.
    let broker = if delivery == "exactly-once" { Broker::embedded() } else { Broker::from_env() };
    let settings = broker.settings();
    let tag = format!("{signal}-{delivery}");
    let single = RunTopics::new(&rules, &format!("scale-single-{tag}"));
    let mut pair = RunTopics::new(&rules, &format!("scale-pair-{tag}"));
    pair.events = single.events.clone();
    broker.create_topics(&single.all(PARTITIONS));
    broker.create_topics(&pair.outputs_only());
    let lines = testkit::city(&rules, 5, 40);
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scale-test-{tag}"));
    let _ = std::fs::remove_dir_all(&base);

    // The pair reads a live feed: the events arrive over 20 s. Its instances share no
    // checkpoint directory (each would have a disk of its own): state goes to the state topic.
    let (a_http, b_http) = (free_addr(), free_addr());
    let pair_group = format!("scale-pair-{tag}-{}", std::process::id());
    // The embedded cluster keeps at most 5 MB per partition and does not compact: checkpoints
    // every 300 ms (several MB of state each, every level scored) push older ones off the state
    // topic, which a real broker keeps (compaction keeps each key's newest record): a killed
    // instance's last checkpoints while its session times out (10 s), or a slot's manifest
    // written early in a run, which the checks below look for (the exactly-once pair lost
    // task-0's once, 2026-12-07). So a pair on the embedded cluster checkpoints every 3 s.
    let every = if broker.is_external() { "300ms" } else { "3s" };
    // Each instance archives to a directory of its own.
    let a_cfg = config(&base.join("pair/a"), &settings.brokers, &pair_group, &pair, delivery, true, every);
    let b_cfg = config(&base.join("pair/b"), &settings.brokers, &pair_group, &pair, delivery, true, every);
    let mut a = start(&a_cfg, &a_http, None);
    // B is quiet until the feed starts, which waits for A's tasks too: on two busy cores A's
    // assignment has taken longer than 4 s after B's (B then ended before the feed began).
    let mut b = start(&b_cfg, &b_http, Some("15s"));
    // The feed starts once the group has settled: each instance holds tasks, four in all.
    let tasks = |addr: &str| testkit::metric_sum(addr, "vigil_tasks").unwrap_or(0.0);
    let t = Instant::now();
    while !(tasks(&a_http) >= 1.0 && tasks(&b_http) >= 1.0 && tasks(&a_http) + tasks(&b_http) == 4.0) {
        if t.elapsed() > Duration::from_secs(60) || a.try_wait().unwrap().is_some() || b.try_wait().unwrap().is_some() {
            let (ta, tb) = (tasks(&a_http), tasks(&b_http));
            let _ = (a.kill(), b.kill());
            let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
            panic!(
                "the group did not settle (A {ta} tasks, B {tb}):\n--- A\n{}\n--- B\n{}",
                String::from_utf8_lossy(&oa.stderr),
                String::from_utf8_lossy(&ob.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let feed = {
        let (settings, topics, rules) = (settings.clone(), single.events.clone(), std::sync::Arc::clone(&rules));
        std::thread::spawn(move || {
            testkit::produce_keyed(
                &settings,
                &topics,
                &lines,
                &|region| testkit::district_key(&rules, region),
                Some(Duration::from_secs(20)),
            )
        })
    };
    // Both take part: each has consumed events of its own tasks.
    let t = Instant::now();
    while consumed(&a_http) < 1000.0 || consumed(&b_http) < 1000.0 {
        if t.elapsed() > Duration::from_secs(60) || a.try_wait().unwrap().is_some() {
            let (ca, cb) = (consumed(&a_http), consumed(&b_http));
            let _ = (a.kill(), b.kill());
            let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
            panic!(
                "both instances consume (A {ca}, B {cb}):\n--- A\n{}\n--- B\n{}",
                String::from_utf8_lossy(&oa.stderr),
                String::from_utf8_lossy(&ob.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stop A mid-stream. SIGTERM: its tasks write their final checkpoints and it leaves the
    // group. SIGKILL: nothing runs; the group notices when A's session times out.
    let a_consumed = consumed(&a_http);
    std::thread::sleep(Duration::from_secs(2));
    assert!(!feed.is_finished(), "A is stopped while events are still arriving");
    let status = Command::new("kill").args([&format!("-{signal}"), &a.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut a_err = String::new();
    a.stderr.take().unwrap().read_to_string(&mut a_err).unwrap();
    let a_status = a.wait().unwrap();
    if signal == "TERM" {
        assert!(a_status.success(), "instance A stops cleanly: {a_err}");
    }
    let clock = Instant::now();
    let total = feed.join().unwrap();
    eprintln!("feed done after {:?}", clock.elapsed());
    let b_err = wait(b, "instance B", Duration::from_secs(180));
    eprintln!("B done after {:?}", clock.elapsed());

    // A held some tasks, and they moved: to B, or (after a kill that the group noticed only
    // once B had finished its own) to A started again.
    let (a_tasks, b_tasks) = (assignments(&a_err), assignments(&b_err));
    assert!(a_tasks.first().is_some_and(|t| t != "{}"), "A was assigned tasks: {a_err}");
    let all = "{0, 1, 2, 3}";
    if signal == "TERM" {
        assert_eq!(b_tasks.last().map(String::as_str), Some(all), "B takes over A's tasks: {b_err}");
        assert!(b_tasks.len() >= 2, "B saw a rebalance: {b_tasks:?}");
    } else {
        // Killed, A is started again on its own disk: it judges what its killed run archived
        // there by the tasks' newest checkpoints (wherever they ran since), and finishes any task
        // B did not.
        let again = wait(start(&a_cfg, &free_addr(), Some("4s")), "A started again", Duration::from_secs(180));
        if b_tasks.last().map(String::as_str) != Some(all) {
            assert_eq!(assignments(&again).last().map(String::as_str), Some(all), "A takes every task: {again}");
            eprintln!("A, started again, finished its tasks");
        }
        // Its killed run's lock files are judged and gone; its new run's were removed when it
        // finished.
        let locks = std::fs::read_dir(base.join("pair/a/archive/.writers")).unwrap().count();
        assert_eq!(locks, 0, "lock files left in A's archive after its restart: {again}");
    }
    // The instances' archives gathered into one directory, as an operator would: file names
    // never collide.
    for instance in ["a", "b"] {
        vigil_sql::archive::gather(&base.join(format!("pair/{instance}/archive")), &base.join("pair/archive")).unwrap();
    }

    // Every task and the roll-up of the pair kept its state on the state topic (a manifest per
    // slot written: the chunks' keys end in their numbers).
    let keys = testkit::topic_keys(&settings, &pair.state);
    for part in ["task-0", "task-1", "task-2", "task-3", "rollup"] {
        let key = format!("{pair_group}.{part}/0");
        assert!(keys.contains(&key), "no checkpoint of {part} on the state topic: {keys:?}");
    }

    // One instance over the same events.
    let single_group = format!("scale-single-{tag}-{}", std::process::id());
    let single_cfg = config(&base.join("single"), &settings.brokers, &single_group, &single, delivery, false, every);
    wait(start(&single_cfg, &free_addr(), Some("4s")), "the single instance", Duration::from_secs(180));
    eprintln!("single done after {:?}", clock.elapsed());

    let quiet = Duration::from_secs(3);
    let (want_alerts, d) = dedupe("alert", &testkit::read_topic(&settings, &single.outputs.alerts, quiet), alert_key);
    assert_eq!(d, 0, "a single instance publishes every alert once");
    let (mut want_scores, d) =
        dedupe("score", &testkit::read_topic(&settings, &single.outputs.scores, quiet), score_key);
    assert_eq!(d, 0, "a single instance publishes every score once");
    assert!(!want_alerts.is_empty());
    // The roll-up made city scores for every hour it scored districts.
    let count = |scores: &[String], level: &str| {
        scores.iter().filter(|l| l.contains(&format!("\"level\":\"{level}\""))).count()
    };
    let (cities, districts) = (count(&want_scores, "city"), count(&want_scores, "district"));
    assert!(cities > 24 * 30 && districts >= 8 * cities, "{cities} city and {districts} district scores");
    let city_alerts = want_alerts.iter().filter(|l| l.contains("\"region_level\":\"city\"")).count();
    eprintln!("{cities} city scores, {city_alerts} city alerts");

    let (mut alerts, alert_dups) =
        dedupe("alert", &testkit::read_topic(&settings, &pair.outputs.alerts, quiet), alert_key);
    let (mut scores, score_dups) =
        dedupe("score", &testkit::read_topic(&settings, &pair.outputs.scores, quiet), score_key);
    eprintln!(
        "SIG{signal}, {delivery}: {total} events; single instance: {} alerts, {} scores; pair: {} alerts ({alert_dups} duplicates), {} scores \
         ({score_dups} duplicates); A consumed {a_consumed} before it was stopped",
        want_alerts.len(),
        want_scores.len(),
        alerts.len(),
        scores.len()
    );
    if signal == "TERM" {
        assert_eq!((alert_dups, score_dups), (0, 0), "a clean handover publishes nothing twice");
    }
    // Every event was keyed by district: nothing went to the dead-letter or late topics.
    let (dlq, late) = (
        testkit::read_topic(&settings, &pair.outputs.dlq, quiet),
        testkit::read_topic(&settings, &pair.outputs.late, quiet),
    );
    assert!(
        dlq.is_empty() && late.is_empty(),
        "{} dead letters, {} late events: {:?}",
        dlq.len(),
        late.len(),
        late.first()
    );

    // The archives: every event, score and alert once, the pair's equal to the single
    // instance's, whichever instance archived a task's files.
    // Rows of several writers: compared in one order.
    let sql = |dir: &Path, q: &str| {
        let mut rows = common::archive_sql(&dir.join("archive"), q);
        rows.sort();
        rows
    };
    // The events each archive holds first: a lost or doubled event explains any difference below.
    let events = "SELECT * FROM events";
    let (single_events, pair_events) = (sql(&base.join("single"), events), sql(&base.join("pair"), events));
    assert_eq!((single_events.len() as u64, pair_events.len() as u64), (total, total), "archived events");
    assert!(single_events == pair_events, "the archived events differ");
    // Tasks publish side by side: compare in one order.
    let mut want_alerts = want_alerts;
    for v in [&mut alerts, &mut want_alerts, &mut scores, &mut want_scores] {
        v.sort();
    }
    assert_same("alerts of the pair", &alerts, &want_alerts);
    assert_same("scores of the pair", &scores, &want_scores);
    let counts = common::ARCHIVE_COUNTS;
    let want = format!("{total},{n},{n},{m},{m}", n = want_alerts.len(), m = want_scores.len());
    assert_eq!(sql(&base.join("single"), counts), vec![want.clone()], "the single instance's archive");
    assert_eq!(sql(&base.join("pair"), counts), vec![want], "the pair's archive: nothing lost, nothing twice");
    for table in ["scores", "score_parts", "alerts"] {
        let q = format!("SELECT * FROM {table}");
        let (single, pair) = (sql(&base.join("single"), &q), sql(&base.join("pair"), &q));
        assert!(single == pair, "the archived {table} differ ({} rows vs {})", single.len(), pair.len());
    }
}

/// Outside scale-out, one instance of a group runs on a state topic at a time: a second one
/// started with the same configuration stands by (the lock: the one partition of
/// `<state topic>.lock`, held in the group `<group>.lock`) until the first stops, then takes
/// over from the first's final checkpoint on the state topic, with nothing left to read and
/// nothing published twice.
#[test]
fn a_second_instance_on_a_state_topic_stands_by_and_takes_over() {
    let rules = testkit::default_rules();
    let broker = Broker::from_env();
    let settings = broker.settings();
    let topics = RunTopics::new(&rules, "standby");
    broker.create_topics(&topics.all(2));
    if !broker.is_external() {
        // The embedded cluster takes no CreateTopics requests; on a real broker vigil makes it.
        broker.create_topics(&[(format!("{}.lock", topics.state), 1)]);
    }
    let lines = testkit::city(&rules, 11, 10);
    let total = testkit::produce_keyed(&settings, &topics.events, &lines, &|r| testkit::district_key(&rules, r), None);
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scale-test-standby");
    let _ = std::fs::remove_dir_all(&base);
    let group = format!("standby-{}", std::process::id());
    let cfg = config(&base, &settings.brokers, &group, &topics, "at-least-once", true, "1s");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("scale_out = true", "scale_out = false");
    std::fs::write(&cfg, text).unwrap();
    let a_http = free_addr();
    // The first stays 10 s after its last event: time for the second to join and stand by.
    let a = start(&cfg, &a_http, Some("10s"));
    // The second starts once the first runs (it has consumed events), so it must stand by.
    let t = Instant::now();
    while consumed(&a_http) < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(60), "the first instance consumes");
        std::thread::sleep(Duration::from_millis(50));
    }
    let b = start(&cfg, &free_addr(), Some("4s"));
    let a_err = wait(a, "the first instance", Duration::from_secs(180));
    let b_err = wait(b, "the second instance", Duration::from_secs(180));
    assert!(
        b_err.contains("standing by until it stops") && b_err.contains("took over the state topic"),
        "{b_err}\n--- the first instance:\n{a_err}"
    );
    assert!(!a_err.contains("standing by"), "{a_err}");
    assert!(a_err.contains(&format!("stopped after {total} events")), "the first read everything: {a_err}");
    assert!(b_err.contains("stopped after 0 events"), "the second resumed where the first stopped: {b_err}");
    let quiet = Duration::from_secs(3);
    let (alerts, dups) = dedupe("alert", &testkit::read_topic(&settings, &topics.outputs.alerts, quiet), alert_key);
    assert!(!alerts.is_empty());
    assert_eq!(dups, 0, "nothing published twice");
}
