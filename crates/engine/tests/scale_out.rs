//! Scale-out on the embedded cluster, in process: an event keyed by anything but its district
//! arrives on a partition whose task does not score that district, and must go to the
//! dead-letter topic with its reason rather than be counted or lost; the rest is scored. And a
//! task's state is its share of the city's, not the whole city's.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use std::sync::Arc;

use vigil_core::{Options, Pipeline};
use vigil_engine::testkit::{self, Broker, RunTopics};
use vigil_engine::{EngineConfig, Metrics, Task};
use vigil_kafka::Partitioner;

#[test]
fn events_on_another_tasks_partition_go_to_the_dead_letter_topic() {
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let settings = broker.settings();
    let topics = RunTopics::new(&rules, "misrouted");
    broker.create_topics(&topics.all(2));
    let lines = testkit::city(&rules, 9, 10);
    // Keyed by the event's own region (a grid cell or street), as a producer that ignores the
    // scale-out contract would.
    let total = testkit::produce(&settings, &topics.events, &lines);
    let mut misrouted = 0u64;
    for ls in lines.lines.values() {
        for l in ls {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let region = v["region"].as_str().unwrap();
            let district = testkit::district_key(&rules, region);
            if Partitioner::Crc32.partition(region.as_bytes(), 2)
                != Partitioner::Crc32.partition(district.as_bytes(), 2)
            {
                misrouted += 1;
            }
        }
    }
    assert!(misrouted > 0 && misrouted < total, "{misrouted} of {total}");

    let mut cfg = EngineConfig::new(settings.clone());
    cfg.group = format!("misrouted-{}", std::process::id());
    cfg.outputs = topics.outputs.clone();
    cfg.event_topics = topics.events.clone();
    cfg.idle_timeout = Duration::from_secs(1);
    cfg.exit_when_idle = Some(Duration::from_secs(2));
    cfg.scale_out = Some(Partitioner::Crc32);
    cfg.options = Options { score_levels: vigil_core::ScoreLevels(0b0011), ..Options::default() };
    let stop = AtomicBool::new(false);
    let summary =
        vigil_engine::scale::run(rules.clone(), cfg, Metrics::default(), &stop, None, None, &mut |_| {}).unwrap();
    assert_eq!(summary.consumed, total);
    assert_eq!(summary.rejected, misrouted, "{summary:?}");

    let dlq = testkit::read_topic(&settings, &topics.outputs.dlq, Duration::from_secs(3));
    assert_eq!(dlq.len() as u64, misrouted);
    for l in &dlq {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["reason"], "wrong_partition", "{l}");
        assert!(v["detail"].as_str().unwrap().contains("key events by district"), "{l}");
    }
    // The tasks scored their districts and the roll-up the city.
    let scores = testkit::read_topic(&settings, &topics.outputs.scores, Duration::from_secs(3));
    assert!(scores.iter().any(|l| l.contains("\"level\":\"city\"")));
    assert!(scores.iter().any(|l| l.contains("\"level\":\"district\"")));
}

/// Cut at the street level (`partition_level = 2`), tasks score streets and the cells below
/// them, and the roll-up makes every district and the city from the street records: each
/// district and city hour is published once, by the roll-up, and nothing is refused.
#[test]
fn partitioned_by_street_the_roll_up_scores_the_districts_and_the_city() {
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let settings = broker.settings();
    let topics = RunTopics::new(&rules, "by-street");
    broker.create_topics(&topics.all(4));
    let lines = testkit::city(&rules, 11, 3);
    let total = testkit::produce_keyed(
        &settings,
        &topics.events,
        &lines,
        &|region| testkit::partition_key(&rules, region, 2),
        None,
    );

    let mut cfg = EngineConfig::new(settings.clone());
    cfg.group = format!("by-street-{}", std::process::id());
    cfg.outputs = topics.outputs.clone();
    cfg.event_topics = topics.events.clone();
    cfg.idle_timeout = Duration::from_secs(1);
    cfg.exit_when_idle = Some(Duration::from_secs(2));
    cfg.scale_out = Some(Partitioner::Crc32);
    cfg.partition_level = 2;
    cfg.options = Options { score_levels: vigil_core::ScoreLevels(0b0100), ..Options::default() };
    let stop = AtomicBool::new(false);
    let summary =
        vigil_engine::scale::run(rules.clone(), cfg, Metrics::default(), &stop, None, None, &mut |_| {}).unwrap();
    assert_eq!((summary.consumed, summary.rejected), (total, 0), "{summary:?}");

    let scores = testkit::read_topic(&settings, &topics.outputs.scores, Duration::from_secs(3));
    let mut hours: std::collections::BTreeMap<(String, String), usize> = Default::default();
    let mut streets = 0;
    for l in &scores {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        match v["level"].as_str().unwrap() {
            "street" => streets += 1,
            "district" | "city" => {
                // Rolled up: no indicator of its own.
                assert!(v["indicators"].as_array().is_none_or(Vec::is_empty), "{l}");
                *hours.entry((v["region"].to_string(), v["window_end"].to_string())).or_default() += 1;
            }
            other => panic!("a {other} record: {l}"),
        }
    }
    let r = &rules.regions;
    let above = (0..r.len()).filter(|&i| r.levels[i] < 2).count();
    let evaluated = streets / (0..r.len()).filter(|&i| r.levels[i] == 2).count();
    assert!(evaluated >= 24, "{streets} street records");
    assert!(hours.values().all(|&n| n == 1), "each district and city hour once");
    // Every hour that every street published is rolled up for the districts and the city.
    assert!(hours.len() >= above * (evaluated - 1), "{} rolled-up records for {evaluated} hours", hours.len());
}

/// With the default rules split four ways by district, each task's state (a fresh pipeline's
/// snapshot: every ring is allocated up front) is about its share of the scored regions times
/// the whole engine's, and the four together are no more than the whole.
/// `cargo test -p vigil-engine --test scale_out -- --nocapture state` prints the sizes.
#[test]
fn a_tasks_state_is_its_share_of_the_citys() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
    let rules = Arc::new(vigil_core::compile_rules(&vigil_rules::RuleFiles::load_dir(&dir).unwrap()).unwrap());
    let scored = |owned: Option<&[bool]>| {
        (0..rules.regions.len()).filter(|&r| rules.is_scored(r) && owned.is_none_or(|o| o[r])).count()
    };
    let whole = Pipeline::new(Arc::clone(&rules), Options::default()).snapshot().unwrap().len();
    let all = scored(None);
    println!("whole engine: {all} scored regions, {whole} bytes");
    let mut sum = 0;
    for p in 0..4 {
        let task = Task { partition: p, partitions: 4, partitioner: Partitioner::Crc32, level: 1 };
        let owned = task.owned(&rules);
        let size = Pipeline::scoped(Arc::clone(&rules), Options::default(), Some(&owned)).snapshot().unwrap().len();
        let share = scored(Some(&owned)) as f64 / all as f64;
        println!(
            "task {p}: {} scored regions, {size} bytes ({:.3} of the whole)",
            scored(Some(&owned)),
            size as f64 / whole as f64
        );
        assert!(share > 0.0 && share < 1.0, "task {p} owns {share} of the regions");
        assert!(
            (size as f64) < whole as f64 * share * 1.1 + 65_536.0,
            "task {p}: {size} bytes for {share} of the regions"
        );
        sum += size;
    }
    assert!(sum <= whole, "the tasks hold {sum} bytes together, the whole engine {whole}");
}

/// A task lost to the group (its instance's session lapsed, so another instance may have
/// resumed it from its last checkpoint already) stops without writing anything more: aborted,
/// the engine ends with `TaskLost` and no checkpoint, where a stop writes its final one.
#[test]
fn a_task_lost_to_the_group_stops_without_a_checkpoint() {
    use vigil_engine::{Engine, EngineError, StateLocation};
    let rules = testkit::default_rules();
    let broker = Broker::embedded();
    let settings = broker.settings();
    let topics = RunTopics::new(&rules, "lost");
    broker.create_topics(&topics.all(1));
    testkit::produce(&settings, &topics.events, &testkit::city(&rules, 5, 3));
    for lost in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = EngineConfig {
            group: format!("lost-{lost}-{}", std::process::id()),
            outputs: topics.outputs.clone(),
            event_topics: topics.events.clone(),
            state: Some(StateLocation::Dir(dir.path().to_path_buf())),
            checkpoint_every: Duration::from_secs(3600),
            ..EngineConfig::new(settings.clone())
        };
        let mut engine = Engine::new(Arc::clone(&rules), cfg, Metrics::default()).unwrap();
        let (abort, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        engine.abort_when(Arc::clone(&abort));
        let signal = {
            let flag = Arc::clone(if lost { &abort } else { &stop });
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(2));
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            })
        };
        let result = engine.run(&stop, &mut |_| {});
        signal.join().unwrap();
        let written = dir.path().join("checkpoint").exists();
        if lost {
            assert!(matches!(result, Err(EngineError::TaskLost)), "{:?}", result.map(|s| s.consumed));
            assert!(!written, "a lost task writes no checkpoint");
        } else {
            assert!(result.unwrap().consumed > 0);
            assert!(written, "a stopped task writes its final checkpoint");
        }
    }
}
